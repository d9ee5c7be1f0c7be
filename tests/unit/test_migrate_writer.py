"""The import writer (netmaster/migrate/writer.py) on MemoryKV: bounded txns, intent record,
idempotence, merge and rollback."""

from __future__ import annotations

import json

import pytest

from contivpy.common.kv.base import Put
from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.netmaster.migrate.convert import INTENT_KEY, MigrateError
from contivpy.netmaster.migrate.writer import MAX_BYTES, MAX_OPS, batches, rollback, write


class CountingKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__()
        self.txn_sizes: list[tuple[int, int]] = []

    async def txn(self, compares, success, failure=()):
        self.txn_sizes.append((len(compares), len(success)))
        return await super().txn(compares, success, failure)


def plan(n: int, size: int = 10) -> dict[str, str]:
    return {f"/contiv.io/state/eps/n.t-{i:05d}": "x" * size for i in range(n)}


def test_batches_respect_ops_and_bytes():
    items = [(f"k{i}", "v" * 100_000) for i in range(20)]
    got = list(batches(items))
    assert all(sum(len(k) + len(v) for k, v in b) <= MAX_BYTES for b in got)
    assert [len(b) for b in got] == [5, 5, 5, 5]
    assert [len(b) for b in batches([(str(i), "") for i in range(200)])] == [MAX_OPS, MAX_OPS, 8]


async def test_write_in_bounded_txns_then_idempotent():
    kv = CountingKV()
    target = plan(1000)
    res = await write(kv, target, "d1", now=1.0)
    assert (res.written, res.txns) == (1000, 11 + 2)
    assert all(c <= 1 and s <= MAX_OPS + 1 for c, s in kv.txn_sizes)
    items, _ = await kv.get_prefix(keys.ROOT)
    assert len(items) == 1001
    intent = json.loads((await kv.get(INTENT_KEY)).value)
    assert (intent["state"], intent["written"], intent["keys"]) == ("done", 1000, 1000)
    await kv.put("/contiv.io/state/eps/n.t-00001", "changed later by netmaster")
    again = await write(kv, target, "d1")
    assert again.already_done and again.written == 0
    assert (await kv.get("/contiv.io/state/eps/n.t-00001")).value == "changed later by netmaster"


async def test_refusals_write_nothing():
    kv = MemoryKV()
    await kv.put(keys.LEADER_LOCK, "127.0.0.1:9999")
    with pytest.raises(MigrateError, match="a netmaster is running against the target etcd"):
        await write(kv, plan(3), "d")
    await kv.delete(keys.LEADER_LOCK)
    await kv.put("/contiv.io/state/eps/n.t-00001", "other")
    with pytest.raises(MigrateError, match="already holds contivpy state .* use --merge"):
        await write(kv, plan(3), "d")
    with pytest.raises(MigrateError, match="--merge: the target holds these keys with other values"):
        await write(kv, plan(3), "d", merge=True)
    items, _ = await kv.get_prefix(keys.ROOT)
    assert [i.key for i in items] == ["/contiv.io/state/eps/n.t-00001"]


async def test_merge_adds_beside_unrelated_keys_and_rollback_refused():
    kv = MemoryKV()
    await kv.put("/contiv.io/auth/users/admin", "{}")
    target = plan(5)
    res = await write(kv, target, "d", merge=True)
    assert res.written == 5
    with pytest.raises(MigrateError, match="cannot be rolled back"):
        await rollback(kv, target, "d")
    with pytest.raises(MigrateError, match="holds an import of another source"):
        await write(kv, target, "other")


async def test_resume_then_rollback():
    kv = MemoryKV()
    target = plan(300)
    target[keys.addr_alloc("n.t", "10.0.0.3")] = '{"created":1}'

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        await write(kv, target, "d", progress=stop)
    assert json.loads((await kv.get(INTENT_KEY)).value)["state"] == "writing"
    # the resumed run has a later record time: the record written before the crash is kept
    later = dict(target)
    later[keys.addr_alloc("n.t", "10.0.0.3")] = '{"created":2}'
    res = await write(kv, later, "d")
    assert res.resumed and res.written == 301 - MAX_OPS
    assert (await kv.get(keys.addr_alloc("n.t", "10.0.0.3"))).value == '{"created":1}'
    await kv.txn([], [Put("/contiv.io/auth/users/admin", "{}")])
    res = await rollback(kv, later, "d")
    assert res.deleted == 301
    items, _ = await kv.get_prefix(keys.ROOT)
    assert [i.key for i in items] == ["/contiv.io/auth/users/admin"]


async def test_import_and_rollback_drop_the_index_markers():
    """Imported endpoint states / networks are indexed by the next leader (netmaster/addridx.py,
    subnetidx.py): the import deletes the markers of the indexes its keys belong in, a rollback the
    address index's (its rebuild drops the entries of the endpoints removed)."""
    from contivpy.netmaster import addridx, subnetidx

    kv = MemoryKV()
    await kv.put(addridx.BUILT, "1")
    await kv.put(subnetidx.BUILT, "1")
    await kv.put("/contiv.io/state/nets/other.t", "{}")  # contivpy state already there: --merge
    await write(kv, plan(3), "d1", merge=True)
    assert await kv.get(addridx.BUILT) is None
    assert await kv.get(subnetidx.BUILT) is not None  # no network imported
    await kv.put(addridx.BUILT, "1")
    nets = {keys.obj_key("network", "t:n1"): "{}"}
    kv2 = MemoryKV()
    for k in (addridx.BUILT, subnetidx.BUILT):
        await kv2.put(k, "1")
    await write(kv2, nets, "d2", merge=True)
    assert await kv2.get(subnetidx.BUILT) is None and await kv2.get(addridx.BUILT) is not None
    kv3 = MemoryKV()
    await write(kv3, plan(3), "d3")
    await kv3.put(addridx.BUILT, "1")  # a netmaster ran and built the index since
    await rollback(kv3, plan(3), "d3")
    assert await kv3.get(addridx.BUILT) is None
