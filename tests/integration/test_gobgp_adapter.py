"""The GoBGP adapter (netplugin/gobgp) against two real gobgpd speakers in a network namespace of the
test's own (``tnpgb<pid>``, a veth with 192.0.2.1 and .2; BGP refuses loopback next hops), their
APIs on unix sockets: global AS/router-id and a neighbor with graceful restart come up established,
advertised /32s are learned by the other side with our router id as next hop, a withdrawal is seen,
a killed gobgpd is started again and re-advertises, a config change restarts the speaker, and a new
adapter adopts a running gobgpd without resetting its session. ``watch`` (WatchEvent) delivers an
announcement and a withdrawal as events within a second, and resets with the full table on reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess

import pytest

from contivpy.common.errors import ExternalServiceError
from contivpy.netplugin.gobgp import BgpConfig, GoBgp

pytestmark = pytest.mark.skipif(shutil.which("gobgpd") is None, reason="gobgpd is not installed")


A, B = "192.0.2.1", "192.0.2.2"  # TEST-NET-1, only inside the test's namespace


@pytest.fixture
def ns():
    name = f"tnpgb{os.getpid()}"
    ip = ["ip", "-n", name]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run([*ip, "link", "set", "lo", "up"], check=True)
        subprocess.run([*ip, "link", "add", "d0", "type", "veth", "peer", "name", "d1"], check=True)
        for a in (A, B):
            subprocess.run([*ip, "addr", "add", f"{a}/24", "dev", "d0"], check=True)
        for d in ("d0", "d1"):
            subprocess.run([*ip, "link", "set", d, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


async def until(pred, timeout: float = 30.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        try:
            last = await pred()
            if last:
                return last
        except ExternalServiceError as e:
            last = e
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
async def pair(tmp_path, ns):
    wrap = ("ip", "netns", "exec", ns)
    a = GoBgp(tmp_path / "a", api=f"unix://{tmp_path}/a.sock", wrap=wrap)
    b = GoBgp(tmp_path / "b", api=f"unix://{tmp_path}/b.sock", wrap=wrap)
    ca = BgpConfig(A, 65001, B, 65002, local_address=A, restart_time=30)
    cb = BgpConfig(B, 65002, A, 65001, local_address=B, restart_time=30)
    try:
        yield a, b, ca, cb
    finally:
        await a.stop()
        await b.stop()


async def established(g: GoBgp):
    return (await g.neighbor()).get("state") == "established"


async def test_session_routes_restart_and_adoption(pair, tmp_path):
    a, b, ca, cb = pair
    await a.ensure(ca, {"10.1.1.1/32", "10.1.1.2/32"})
    await b.ensure(cb, {"10.1.1.3/32"})
    await until(lambda: established(a), what="session established")
    n = await a.neighbor()
    assert n["neighbor"] == B and n["admin"] == "up"

    async def b_learned(want):
        got = {(r.prefix, r.next_hop) for r in await b.learned()}
        return got == want

    await until(lambda: b_learned({("10.1.1.1/32", A), ("10.1.1.2/32", A)}),
                what="b learns a's /32s")  # fmt: skip
    assert [r.prefix for r in await a.learned()] == ["10.1.1.3/32"]
    assert await a.advertised() == ["10.1.1.1/32", "10.1.1.2/32"]
    n = await a.neighbor()
    assert n["advertised"] >= 2 and (n["received"], n["accepted"]) == (1, 1), n  # (+ b's, sent back)

    # withdraw one
    await a.ensure(ca, {"10.1.1.1/32"})
    await until(lambda: b_learned({("10.1.1.1/32", A)}), what="withdrawal seen by b")

    # gobgpd dies: ensure() starts it again and re-advertises
    old = a.pid
    os.kill(old, signal.SIGKILL)
    await until(lambda: asyncio.sleep(0, result=not a.running()), what="a's gobgpd gone")
    await a.ensure(ca)
    assert a.pid != old and a.restarts == 1
    await until(lambda: established(a), what="session back after restart")
    await until(lambda: b_learned({("10.1.1.1/32", A)}), what="re-advertised after restart")

    # a new adapter (agent restart) adopts the running gobgpd: same PID, session not reset
    pid = a.pid
    await a.close()
    a2 = GoBgp(tmp_path / "a", api=a.api, wrap=a.wrap)
    await a2.ensure(ca, {"10.1.1.1/32"})
    assert a2.pid == pid and await established(a2)
    # an AS change restarts the speaker (StopBgp/StartBgp) and the neighbor sees the new AS
    ca2 = BgpConfig(**{**ca.__dict__, "asn": 65011})
    cb2 = BgpConfig(**{**cb.__dict__, "neighbor_as": 65011})
    await b.ensure(cb2)
    await a2.ensure(ca2)
    await until(lambda: established(a2), what="session with the new AS")
    await until(lambda: b_learned({("10.1.1.1/32", A)}), what="routes with the new AS")
    # a deliberate stop withdraws at once (no stale routes kept for the graceful-restart window)
    await a2.stop()
    assert not a2.running()
    await until(lambda: b_learned(set()), timeout=5, what="routes withdrawn by stop()")


async def test_watch_follows_announce_and_withdraw(pair):
    a, b, ca, cb = pair
    await a.ensure(ca, {"10.1.2.1/32"})
    await b.ensure(cb, set())
    await until(lambda: established(a), what="session established")
    await until(lambda: _has(b, "10.1.2.1/32"), what="initial route")
    table: dict[str, str] = {}
    seen: asyncio.Queue = asyncio.Queue()

    async def follow():
        async for kind, x in b.watch():
            if kind == "reset":
                table.clear()
                table.update({r.prefix: r.next_hop for r in x})
            elif kind == "add":
                table[x.prefix] = x.next_hop
            else:
                table.pop(x, None)
            seen.put_nowait((kind, x, asyncio.get_running_loop().time()))

    task = asyncio.create_task(follow())
    try:
        kind, routes, _ = await asyncio.wait_for(seen.get(), 5)
        assert kind == "reset" and [(r.prefix, r.next_hop) for r in routes] == [("10.1.2.1/32", A)]
        loop = asyncio.get_running_loop()
        for want, present in (({"10.1.2.1/32", "10.1.2.2/32"}, True), ({"10.1.2.2/32"}, False)):
            t0 = loop.time()
            await a.ensure(ca, want)  # announce .2, then withdraw .1

            async def arrived(present=present):
                return ("10.1.2.2/32" in table) if present else ("10.1.2.1/32" not in table)

            await until(arrived, timeout=5, what="event applied")
            took = loop.time() - t0
            assert took < 1.0, f"event took {took:.2f} s"
        assert table == {"10.1.2.2/32": A}
        # gobgpd of b restarts: the stream fails, a new watch starts with the full table (reset)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        old = b.pid
        os.kill(old, signal.SIGKILL)
        await until(lambda: asyncio.sleep(0, result=not b.running()), what="b's gobgpd gone")
        await b.ensure(cb)
        await until(lambda: _has(b, "10.1.2.2/32"), what="b relearns after restart")
        table["10.9.9.9/32"] = "stale"
        while not seen.empty():  # the first follower's init events
            seen.get_nowait()
        task = asyncio.create_task(follow())
        kind, routes, _ = await asyncio.wait_for(seen.get(), 5)
        assert kind == "reset" and table == {"10.1.2.2/32": A}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _has(g: GoBgp, prefix: str) -> bool:
    return prefix in {r.prefix for r in await g.learned()}


async def test_missing_binary_is_a_clear_error(tmp_path):
    g = GoBgp(tmp_path, api=f"unix://{tmp_path}/x.sock", binary="tnp-no-such-gobgpd")
    with pytest.raises(ExternalServiceError, match="not found"):
        await g.ensure(BgpConfig(A, 65001, B, 65002))
