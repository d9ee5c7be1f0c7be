"""The Docker event stream's parsing and the event follower's robustness (no root).

A real dockerd never sends a malformed event, so this test serves the ``/events`` stream itself,
from an aiohttp server on a unix socket in tmp_path: garbage lines, non-objects, an over-long
line, events of a wrong shape, split across chunks, then well-formed events. The real engine
paths (start/die, reconnection, dockerd restart) are in tests/integration/test_docker_events.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from contivpy.common.dockerapi import DockerClient, since_param, split_events
from contivpy.netplugin.docker.events import ContainerEvents, event_fields
from contivpy.netplugin.docker.resolver import NetworkResolver


def ev(action: str, cid: str, ns: int) -> bytes:
    return json.dumps(
        {"Type": "container", "Action": action, "Actor": {"ID": cid}, "time": ns // 10**9, "timeNano": ns}
    ).encode()


def test_split_events_keeps_incomplete_tail_and_counts_bad_lines():
    good = ev("start", "c1", 5)
    out, rest, bad = split_events(b"nope\n[1,2]\n\n" + good + b"\n" + good[:7])
    assert out == [json.loads(good)] and rest == good[:7] and bad == 2
    out, rest, bad = split_events(b"\xff\xfe\n" + b"[" * 100000 + b"\n")
    assert out == [] and rest == b"" and bad == 2


def test_event_fields_rejects_wrong_shapes():
    assert event_fields(json.loads(ev("start", "c1", 7))) == (7, "c1", "start")
    assert event_fields({"status": "die", "id": "c2", "time": 3}) == (3 * 10**9, "c2", "die")
    connect = {"Type": "network", "Action": "connect", "Actor": {"ID": "n1", "Attributes": {"container": "c3"}},
               "timeNano": 9}  # fmt: skip
    assert event_fields(connect) == (9, "c3", "connect")
    for bad in (
        None,
        [],
        {"Type": "network", "Action": "start", "Actor": {"ID": "x"}, "timeNano": 1},
        {"Action": "exec_start", "Actor": {"ID": "x"}, "timeNano": 1},
        {"Action": "start", "Actor": {"ID": 5}, "timeNano": 1},
        {"Action": "start", "Actor": "x", "timeNano": 1},
        {"Action": "start", "Actor": {"ID": "x"}, "timeNano": "1"},
        {"Action": "start", "Actor": {"ID": "x"}, "timeNano": True},
        {"Action": "start", "Actor": {"ID": "x"}, "timeNano": -1},
        {"Type": "network", "Action": "connect", "Actor": {"ID": "n1"}, "timeNano": 1},
        {
            "Type": "network",
            "Action": "connect",
            "Actor": {"ID": "n1", "Attributes": {"container": 3}},
            "timeNano": 1,
        },
        {
            "Type": "network",
            "Action": "disconnect",
            "Actor": {"ID": "n1", "Attributes": {"container": "c"}},
            "timeNano": 1,
        },
    ):
        assert event_fields(bad) is None, bad


def test_since_param_pads_nanoseconds():
    assert since_param(1_700_000_000_000_000_042) == "1700000000.000000042"


class FakeEngine:
    """Serves /events (one stream, then closes), /info, /containers/json, /containers/<id>/json."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.since: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/events", self.events)
        self.app.router.add_get("/info", self.info)
        self.app.router.add_get("/containers/json", self.ps)
        self.app.router.add_get("/containers/{cid}/json", self.inspect)

    async def events(self, request):
        self.since.append(request.query.get("since", ""))
        resp = web.StreamResponse()
        await resp.prepare(request)
        for c in self.chunks:
            await resp.write(c)
            await asyncio.sleep(0.01)
        self.chunks = []  # later connections: an empty stream
        await asyncio.sleep(0.2)
        return resp

    async def info(self, request):
        return web.json_response({"SystemTime": "2026-01-01T00:00:00.5Z"})

    async def ps(self, request):
        return web.json_response([{"Id": "weird", "NetworkSettings": "not an object"}, "garbage"])

    async def inspect(self, request):
        cid = request.match_info["cid"]
        if cid == "gone":
            return web.json_response({"message": "No such container: gone"}, status=404)
        return web.json_response({"Id": cid, "State": {"Running": True}, "NetworkSettings": {"Networks": 7}})


@pytest.fixture
async def engine(tmp_path):
    started = []

    async def make(chunks):
        fake = FakeEngine(chunks)
        runner = web.AppRunner(fake.app)
        await runner.setup()
        site = web.UnixSite(runner, str(tmp_path / "docker.sock"))
        await site.start()
        started.append(runner)
        return fake, DockerClient(str(tmp_path / "docker.sock"))

    yield make
    for r in started:
        await r.cleanup()


async def test_client_stream_skips_malformed_and_over_long_lines(engine):
    good1, good2 = ev("start", "c1", 10**18), ev("die", "c1", 10**18 + 5)
    chunks = [
        b"garbage\n",
        good1[:10],
        good1[10:] + b"\n",
        b"x" * (1 << 20) + b"y" * 100,
        b"\n",
        b"3\n",
        good2 + b"\n",
    ]
    fake, client = await engine(chunks)
    bad = [0]
    opened = []
    got = [
        e async for e in client.events("1.000000000", {"type": ["container"]}, bad, lambda: opened.append(1))
    ]
    assert got == [json.loads(good1), json.loads(good2)]
    assert bad == [3] and opened == [1] and fake.since == ["1.000000000"]


async def test_follower_survives_malformed_events_and_resumes_since(engine):
    base = 1_800_000_000 * 10**9
    chunks = [
        b"{not json\n",
        json.dumps({"Type": "container", "Action": "start", "Actor": {"ID": 42}, "timeNano": base}).encode()
        + b"\n",
        ev("start", "gone", base + 1) + b"\n",  # inspect 404: skipped
        ev("start", "odd", base + 2) + b"\n",  # NetworkSettings of the wrong type: nothing recorded
        ev("die", "gone", base + 3) + b"\n",
    ]
    fake, client = await engine(chunks)
    recorded = []

    async def record(*a):
        recorded.append(a)

    async def exists(sid):
        return True

    f = ContainerEvents(client, NetworkResolver(kv=None, engine=client), exists, record, max_backoff=0.2)  # type: ignore[arg-type]
    task = asyncio.create_task(f.run())
    try:
        for _ in range(200):
            if len(fake.since) >= 2:
                break
            await asyncio.sleep(0.05)
        await f.idle()
        assert not task.done(), "the follower stopped"
        assert f.malformed == 2 and recorded == [] and f.stats["errors"] == 0
        assert f.stats["start"] == 2 and f.stats["die"] == 1
        # the first connection starts at the engine's clock; the next one at the newest event seen
        assert fake.since[0] == "1767225600.500000000"
        assert fake.since[1] == since_param(base + 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
