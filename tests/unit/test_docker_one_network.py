"""common/dockerapi.one_network: same-named duplicates (Docker 20.10 does not lock CheckDuplicate, so
netmaster and the netplugin of its engine's host can both create a network) reduce to the oldest."""

from __future__ import annotations

from contivpy.common.dockerapi import DockerApiError, one_network


class FakeEngine:
    def __init__(self, nets: list[dict], busy: set[str] = frozenset()) -> None:
        self.nets = nets
        self.busy = set(busy)
        self.deleted: list[str] = []

    async def list_networks(self, driver=None):
        return [dict(n) for n in self.nets]

    async def delete_network(self, nid: str) -> bool:
        if nid in self.busy:
            raise DockerApiError("error while removing network: network has active endpoints", 403)
        self.deleted.append(nid)
        self.nets = [n for n in self.nets if n["Id"] != nid]
        return True


def net(nid: str, created: str, name: str = "test-net", driver: str = "netplugin") -> dict:
    return {"Id": nid, "Name": name, "Driver": driver, "Created": created}


async def test_oldest_kept_others_deleted_whatever_the_fraction_digits():
    # Docker trims trailing zeros: .5 (500 ms) is later than .1234 although longer strings sort first
    eng = FakeEngine([net("bbb", "2026-01-01T10:00:00.5Z"), net("aaa", "2026-01-01T10:00:00.1234Z"),
                      net("ccc", "2026-01-01T11:00:00.000000001+01:00"), net("x", "2020-01-01T00:00:00Z", "other")])  # fmt: skip
    kept = await one_network(eng, "test-net", "netplugin")
    assert kept["Id"] == "ccc"  # 10:00:00 UTC, the oldest
    assert sorted(eng.deleted) == ["aaa", "bbb"]
    assert await one_network(eng, "test-net", "netplugin") == kept and len(eng.deleted) == 2


async def test_same_time_tie_broken_by_id_and_busy_duplicate_left():
    eng = FakeEngine([net("b2", "2026-01-01T10:00:00Z"), net("a1", "2026-01-01T10:00:00Z")], busy={"b2"})
    assert (await one_network(eng, "test-net", "netplugin"))["Id"] == "a1"
    assert eng.deleted == [] and len(eng.nets) == 2  # in use: left for a later pass, no exception


async def test_absent_and_other_driver():
    eng = FakeEngine([net("o1", "2026-01-01T10:00:00Z", driver="bridge")])
    assert await one_network(eng, "nothere", "netplugin") is None
    assert (await one_network(eng, "test-net", "netplugin"))["Driver"] == "bridge"
    assert eng.deleted == []
