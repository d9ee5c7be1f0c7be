"""netplugin's NetmasterClient target choice: leader lock first, else the service registry (leader first).

Two real HTTP servers on 127.0.0.1 (port 0) stand in for a follower and a leader netmaster; the
registrations are written with ``contivpy.common.registry`` exactly as netmaster writes them.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from contivpy.common.errors import ExternalServiceError
from contivpy.common.registry import ServiceInfo, ServiceRegistry
from contivpy.model import keys
from contivpy.netplugin.netmaster_client import NetmasterClient


@pytest.fixture
async def two_netmasters():
    """Two servers answering POST /plugin/x with their name; returns {name: (port, hits)}."""
    runners, out = [], {}
    for name in ("a", "b"):
        hits: list[str] = []

        async def handler(request: web.Request, name=name, hits=hits) -> web.Response:
            hits.append(request.path)
            return web.json_response({"who": name})

        app = web.Application()
        app.router.add_post("/plugin/x", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        out[name] = (runner.addresses[0][1], hits)
    try:
        yield out
    finally:
        for r in runners:
            await r.cleanup()


async def test_registry_fallback_prefers_role_leader(kv, two_netmasters):
    # the follower is the one whose key sorts first, so store order alone would pick it
    (first, (p1, hits1)), (second, (p2, hits2)) = sorted(
        two_netmasters.items(), key=lambda kv_: f"127.0.0.1:{kv_[1][0]}"
    )
    reg = ServiceRegistry(kv)
    client = NetmasterClient(kv, retries=1, retry_delay=0)
    try:
        await reg.register(ServiceInfo(keys.SVC_NETMASTER, "127.0.0.1", p1))
        await reg.register(ServiceInfo(keys.SVC_NETMASTER, "127.0.0.1", p2, role="leader"))
        assert await client._targets() == [f"127.0.0.1:{p2}", f"127.0.0.1:{p1}"]
        assert await client.post("/plugin/x", {}) == {"who": second}
        assert hits2 == ["/plugin/x"] and hits1 == []
        # the leader lock, when held, wins over the registry
        await kv.put(keys.LEADER_LOCK, f"127.0.0.1:{p1}")
        assert await client.post("/plugin/x", {}) == {"who": first}
        assert hits1 == ["/plugin/x"]
    finally:
        await client.close()
        await reg.close()
        await kv.delete(keys.LEADER_LOCK)


async def test_no_netmaster_is_a_clear_error(kv):
    client = NetmasterClient(kv, retries=1, retry_delay=0)
    try:
        with pytest.raises(ExternalServiceError, match="netmaster not found"):
            await client.post("/plugin/x", {})
    finally:
        await client.close()


async def test_route_is_reused_for_a_second_and_read_again_at_once_when_it_fails(kv, two_netmasters):
    """The leader lock is read once for a burst of calls (not once per call); a leader that went
    away within that second costs one failed connection and a fresh read, not the retry pause."""
    import time

    port_b, hits_b = two_netmasters["b"]

    async def gone(_request: web.Request) -> web.Response:
        return web.json_response({"who": "c"})

    app = web.Application()
    app.router.add_post("/plugin/x", gone)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port_c = runner.addresses[0][1]
    client = NetmasterClient(kv, retries=3, retry_delay=5)
    reads = []
    real = kv.get_many

    async def get_many(ks):
        reads.append(list(ks))
        return await real(ks)

    kv.get_many = get_many
    try:
        await kv.put(keys.LEADER_LOCK, f"127.0.0.1:{port_c}")
        for _ in range(5):
            assert await client.post("/plugin/x", {}) == {"who": "c"}
        assert len(reads) == 2  # the first call learns the pin's key, the second caches the route
        await runner.cleanup()  # c goes away; b holds the lock now
        runner = None
        await kv.put(keys.LEADER_LOCK, f"127.0.0.1:{port_b}")
        t0 = time.monotonic()
        assert await client.post("/plugin/x", {}) == {"who": "b"}
        assert time.monotonic() - t0 < 2.0  # not the 5 s retry pause
        assert hits_b == ["/plugin/x"] and len(reads) == 3
    finally:
        kv.get_many = real
        await client.close()
        if runner is not None:
            await runner.cleanup()
