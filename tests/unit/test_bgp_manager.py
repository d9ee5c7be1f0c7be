"""BgpManager (netplugin/managers/bgp.py) on the FakeDatapath with a recording stand-in for the gobgpd
adapter (the adapter itself is tested against real gobgpd in tests/integration/test_gobgp_adapter.py):
only this host's config, only in routing mode; the advertised set follows the vlan endpoints; a learned
prefix goes to the tenant of the vlan network containing it, with the next hop's MAC, and not at all
without such a network or an unresolved next hop; a mode switch or a deleted config tears down."""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import SimpleNamespace

import pytest

from contivpy.common.errors import ExternalServiceError, ValidationError
from contivpy.netplugin.datapath import EpSpec, NetSpec
from contivpy.netplugin.fakedatapath import FakeDatapath
from contivpy.netplugin.gobgp import LearnedRoute
from contivpy.netplugin.managers import bgp as M

STATE = json.dumps({"hostname": "h1", "router-ip": "192.168.100.1/24", "as": "65001", "neighbor-as": "65000",
                    "neighbor": "192.168.100.254"})  # fmt: skip


class StandIn:
    def __init__(self):
        self.cfg, self.advertised, self.learned_routes, self.stopped, self.pid, self.restarts = (
            None,
            set(),
            [],
            0,
            7,
            0,
        )

    async def ensure(self, cfg, advertise=None):
        self.cfg = cfg
        if advertise is not None:
            self.advertised = set(advertise)

    async def learned(self):
        return self.learned_routes

    async def neighbor(self):
        return {"neighbor": "192.168.100.254", "state": "established", "admin": "up", "received": 1,
                "accepted": 1, "advertised": len(self.advertised)}  # fmt: skip

    def running(self):
        return self.cfg is not None

    async def stop(self):
        self.cfg, self.stopped = None, self.stopped + 1

    async def close(self):
        pass


@pytest.fixture
async def mgr(monkeypatch):
    dp = FakeDatapath()
    net = NetSpec("n1.t1", "t1", "vlan", 140, 0, "", 24, "10.140.1.0/24")
    await dp.add_network(net)
    await dp.add_local_endpoint(EpSpec("ep1", net, "10.140.1.1", "02:02:0a:8c:01:01", ofport=3))

    async def neighbor_mac(ip):
        return "02:aa:00:00:00:01" if ip == "192.168.100.254" else ""

    monkeypatch.setattr(M.links, "neighbor_mac", neighbor_mac)
    cfg = SimpleNamespace(host="h1", fwdmode="routing", gobgp_dir="/nonexistent")
    return M.BgpManager(cfg, dp, gobgp=StandIn()), dp


async def test_applies_own_config_in_routing_mode_and_installs_learned(mgr):
    m, dp = mgr
    m.on_update("h2", STATE)
    await m.reconcile(M.KEY)
    assert m.applied is None and dp.router_port is None
    m.on_update("h1", STATE)
    await m.reconcile(M.KEY)
    assert (m.gobgp.cfg.asn, m.gobgp.cfg.router_id, m.gobgp.cfg.neighbor_as) == (
        65001,
        "192.168.100.1",
        65000,
    )
    assert dp.router_port[1] == "192.168.100.1/24" and m.gobgp.advertised == {"10.140.1.1/32"}
    m.apply_event("reset", [
        LearnedRoute("10.140.1.2/32", "192.168.100.254", "192.168.100.254"),
        LearnedRoute("10.99.0.1/32", "192.168.100.254", "192.168.100.254"),  # in no local network
        LearnedRoute("10.140.1.3/32", "192.168.100.77", "192.168.100.254"),  # next hop unresolved
    ])  # fmt: skip
    await m.sync()
    assert dp.bgp_routes == {("10.140.1.2/32", "t1"): "02:aa:00:00:00:01"}
    ins = m.inspect()
    assert ins["Peers"][0]["State"]["SessionState"] == "established" and len(ins["Dsts"]) == 3


async def test_mode_switch_and_delete_tear_down(mgr):
    m, dp = mgr
    m.on_update("h1", STATE)
    await m.reconcile(M.KEY)
    m.set_fwd_mode("bridge")
    await m.reconcile(M.KEY)
    assert m.gobgp.stopped == 1 and dp.router_port is None and m.applied is None
    assert m.inspect()["Peers"] == []
    m.set_fwd_mode("routing")
    await m.reconcile(M.KEY)
    assert m.applied is not None
    m.on_update("h1", None)
    await m.reconcile(M.KEY)
    assert m.gobgp.stopped == 2 and dp.router_port is None


async def test_watch_events_install_and_remove_and_reconnect_resyncs(mgr):
    m, dp = mgr
    feed: asyncio.Queue = asyncio.Queue()
    streams = []

    async def watch():
        streams.append(1)
        yield "reset", [LearnedRoute("10.140.1.2/32", "192.168.100.254", "192.168.100.254")]
        while True:
            item = await feed.get()
            if item is None:
                raise ExternalServiceError("gobgpd WatchEvent: stream ended")
            yield item

    m.gobgp.watch = watch
    m.on_update("h1", STATE)
    await m.reconcile(M.KEY)
    task = asyncio.create_task(m.watch())
    try:
        r2, r4 = ("10.140.1.2/32", "t1"), ("10.140.1.4/32", "t1")
        await until(lambda: r2 in dp.bgp_routes)
        feed.put_nowait(("add", LearnedRoute("10.140.1.4/32", "192.168.100.254", "192.168.100.254")))
        await until(lambda: r4 in dp.bgp_routes)  # installed on the event, no periodic round
        feed.put_nowait(("del", "10.140.1.2/32"))
        await until(lambda: r2 not in dp.bgp_routes)
        assert m.events == 2 and m.resyncs == 1
        feed.put_nowait(None)  # the stream breaks: reconnect, and the reset replaces the whole table
        await until(lambda: m.resyncs == 2)
        assert set(dp.bgp_routes) == {r2} and len(streams) == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(pred, timeout: float = 3.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


def test_bad_state_is_a_validation_error():
    for bad in ('{"router-ip": "1.2.3.4", "as": "1", "neighbor-as": "2", "neighbor": "1.2.3.5"}',
                '{"router-ip": "1.2.3.4/24", "as": "x", "neighbor-as": "2", "neighbor": "1.2.3.5"}',
                '{"router-ip": "1.2.3.4/24", "as": "0", "neighbor-as": "2", "neighbor": "1.2.3.5"}',
                "not json"):  # fmt: skip
        with pytest.raises(ValidationError):
            M.parse_state(bad)


def test_agent_start_does_not_load_the_gobgp_adapter_without_bgp():
    """The gobgpd adapter (grpc + protobuf: ~30-40 ms of import CPU at every agent start) loads only
    when this host has a Bgp config in routing mode."""
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "import contivpy.netplugin.__main__, contivpy.netplugin.daemon\n"
        "from types import SimpleNamespace\n"
        "from contivpy.netplugin.fakedatapath import FakeDatapath\n"
        "from contivpy.netplugin.managers.bgp import BgpManager\n"
        "m = BgpManager(SimpleNamespace(host='h1', fwdmode='routing', gobgp_dir='/nonexistent'), FakeDatapath())\n"
        "m.on_update('h2', '{}')\n"
        "asyncio.run(m.reconcile('bgp')); asyncio.run(m.sync()); asyncio.run(m.close()); m.inspect()\n"
        "print(sorted(k for k in sys.modules if 'gobgp' in k or k.startswith(('grpc', 'google.protobuf'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
