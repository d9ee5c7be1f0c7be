"""Served networks (netplugin/served.py): which networks' endpoints an agent watches, and the
per-network list+watch streams (open from their own listing, close without a task left behind,
re-list after a compaction), on the in-memory store."""

from __future__ import annotations

import asyncio

from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.netplugin.datapath import NetSpec
from contivpy.netplugin.served import NetworkWatches, net_prefix, served_networks
from tests.support.kvfaults import CompactBeforeFirstWatch


def net(
    name: str, tenant: str = "default", encap: str = "vxlan", nw_type: str = "data"
) -> tuple[str, NetSpec]:
    nid = f"{name}.{tenant}"
    return nid, NetSpec(nid, tenant, encap, 0, 0, "", 24, name=name, nw_type=nw_type)


NETS = dict(
    [
        net("a"),
        net("b"),
        net("c"),
        net("x", "t2"),
        net("y", "t2"),
        net("v1", "t3", "vlan"),
        net("v2", "t3", "vlan"),
    ]
)


def test_bridge_mode_serves_only_the_local_networks():
    assert served_networks(set(), NETS, routing=False) == set()
    assert served_networks({"a.default"}, NETS, routing=False) == {"a.default"}
    assert served_networks({"a.default", "x.t2"}, NETS, routing=False) == {"a.default", "x.t2"}


def test_routing_mode_serves_every_network_of_the_local_tenants():
    assert served_networks({"a.default"}, NETS, routing=True) == {"a.default", "b.default", "c.default"}
    assert served_networks(set(), NETS, routing=True) == set()  # no local endpoint: nothing
    assert served_networks({"x.t2"}, NETS, routing=True) == {"x.t2", "y.t2"}


def test_vlan_network_and_contivh1_widen_to_the_tenant_in_bridge_mode():
    # a vlan network's traffic crosses networks through the external router
    assert served_networks({"v1.t3"}, NETS, routing=False) == {"v1.t3", "v2.t3"}
    # contivh1 (an infra network: every host has a local port on it) routes the tenant's networks
    nid, spec = net("contivh1", "default", nw_type="infra")
    with_h1 = {**NETS, nid: spec}
    assert served_networks({nid}, with_h1, routing=False) == {nid, "a.default", "b.default", "c.default"}
    # a data network named contivh1 does not route; another tenant stays as it is
    nid2, spec2 = net("contivh1", "t2")
    assert served_networks({"x.t2"}, {**NETS, nid2: spec2}, routing=False) == {"x.t2"}
    # an unknown network (not listed yet) is still served
    assert served_networks({"new.default"}, NETS, routing=False) == {"new.default"}


def _oper(nid: str, ep: str, host: str = "h2") -> tuple[str, str]:
    """(key, value) of endpoint ``ep`` of network ``nid``; handlers see it as ``nid-ep``."""
    return keys.ep_oper(f"{nid}-{ep}"), f'{{"id":"{nid}-{ep}","netID":"{nid}","homingHost":"{host}"}}'


async def _until(pred, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def test_streams_open_from_their_listing_and_close_without_leftovers():
    kv = MemoryKV()
    for k, v in (_oper("a.default", "e1"), _oper("b.default", "e2"), _oper("a.default-x", "e3")):
        await kv.put(k, v)
    seen: dict[str, dict[str, str]] = {}

    def handler(nid: str, tail: str, value: str | None) -> None:
        view = seen.setdefault(nid, {})
        if value is None:
            view.pop(tail, None)
        else:
            view[tail] = value

    w = NetworkWatches(kv, handler)
    want = {"a.default"}
    runner = asyncio.create_task(w.run())
    try:
        opened = await w.converge(lambda: want)
        assert opened == {"a.default"} and w.networks() == {"a.default"}
        # listed before converge returned; the prefix "a.default-" also matches network "a.default-x"
        # (the handler filters on netID), but never network b
        assert set(seen["a.default"]) == {"a.default-e1", "a.default-x-e3"}
        k, v = _oper("a.default", "e4")
        await kv.put(k, v)
        await kv.put(*_oper("b.default", "e5"))
        await _until(lambda: "a.default-e4" in seen["a.default"])
        assert "b.default" not in seen
        tasks_before = {t for t in asyncio.all_tasks() if not t.done()}
        want = {"b.default"}
        assert await w.converge(lambda: want) == {"b.default"}
        assert seen["a.default"] == {}  # closing forgets every key of the stream
        assert set(seen["b.default"]) == {"b.default-e2", "b.default-e5"}
        await kv.put(*_oper("a.default", "e6"))
        await asyncio.sleep(0.05)
        assert seen["a.default"] == {}  # no longer watched
        assert w.closed == 1 and w.opened == 2
        # the closed stream's consumer and pump tasks are gone (only b's new ones were added)
        await asyncio.sleep(0)
        alive = {t for t in asyncio.all_tasks() if not t.done()}
        gone = {t.get_name() for t in tasks_before - alive}
        assert any("a.default" in n for n in gone), gone
        assert not any("a.default" in t.get_name() for t in alive), [t.get_name() for t in alive]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert w.networks() == set()
    assert not [t for t in asyncio.all_tasks() if "eps-watch" in t.get_name() or "list-watch" in t.get_name()]


async def _e1_gone_e2_new(inner) -> int:
    """Before the first watch: e1 deleted, e2 written (the revision to compact at)."""
    await inner.delete(keys.ep_oper("a.default-e1"))
    return await inner.put(*_oper("a.default", "e2"))


async def test_a_stream_relists_after_compaction_as_a_diff():
    inner = MemoryKV()
    await inner.put(*_oper("a.default", "e1"))
    kv = CompactBeforeFirstWatch(inner, _e1_gone_e2_new)
    got: list[tuple[str, str | None]] = []
    w = NetworkWatches(kv, lambda nid, tail, v: got.append((tail, v)))
    runner = asyncio.create_task(w.run())
    try:
        await w.converge(lambda: {"a.default"})
        assert [t for t, _ in got] == ["a.default-e1"]
        # the first watch is compacted away: the re-list reaches the handler as a diff
        await _until(lambda: ("a.default-e1", None) in got and any(t == "a.default-e2" and v for t, v in got))
        assert kv.watches == 2
        await inner.put(*_oper("a.default", "e3"))  # and the new watch goes on
        await _until(lambda: any(t == "a.default-e3" for t, _ in got))
        _, mirror = w._streams["a.default"]
        assert set(mirror.items) == {net_prefix("a.default") + "e2", net_prefix("a.default") + "e3"}
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_agent_serves_the_restored_endpoints_networks_and_widens_on_a_fwd_mode_switch():
    """The agent's served set at start-up comes from this host's port record (a restart converges to
    it); a live switch to routing mode re-evaluates it (the tenant's other network is added)."""
    from contivpy.model.state import GlobalConfig, NetworkState, OperEndpoint, OvsDriverOper
    from contivpy.netplugin.config import parse
    from contivpy.netplugin.daemon import SERVED, Agent

    args = [
        "--etcd-endpoints", "http://127.0.0.1:1", "--mode", "docker", "--netmode", "vlan", "--fwdmode",
        "bridge", "--host", "h1", "--vtep-ip", "10.0.0.1", "--ctrl-ip", "10.0.0.1", "--docker-host", "none",
    ]  # fmt: skip
    kv = MemoryKV()
    for n in ("n1", "n2", "n3"):
        st = NetworkState(id=f"{n}.default", tenant="default", networkName=n, pktTagType="vxlan", pktTag=1)
        await kv.put(keys.net_state(f"{n}.default"), st.to_json())
    own = OperEndpoint(id="n1.default-e0", netID="n1.default", homingHost="h1")
    rec = OvsDriverOper(id="h1", LocalEpInfo={own.id: {"Ovsportname": "vvport1"}})
    await kv.put(keys.ovs_driver_oper("h1"), rec.to_json())
    await kv.put(keys.ep_oper(own.id), own.to_json())
    await kv.put(*_oper("n2.default", "r2"))
    agent = Agent(parse(args, env={}), kv=kv)
    try:
        await agent._list()
        assert agent.ep_watches.networks() == {"n1.default"}
        assert "n1.default-e0" in agent._local_opers
        assert agent.remote.desired == {}  # n2's endpoint is not received
        agent._on_global("", GlobalConfig(fwdMode="routing").to_json())
        assert SERVED in agent.global_rec.status()
        await agent.ep_watches.converge(agent.served)
        assert agent.ep_watches.networks() == {"n1.default", "n2.default", "n3.default"}
        assert set(agent.remote.desired) == {"n2.default-r2"}
        agent._on_global("", GlobalConfig(fwdMode="bridge").to_json())
        await agent.ep_watches.converge(agent.served)
        assert agent.ep_watches.networks() == {"n1.default"} and agent.remote.desired == {}
    finally:
        await agent.ep_watches.aclose()
        for it, _ in agent._streams.values():
            await it.aclose()


async def test_above_the_limit_one_whole_prefix_stream_filtered_by_the_served_set():
    """Each etcd watch is a connection: above ``limit`` served networks the per-network streams give
    way to one stream of the whole prefix, filtered here; the handler sees the same view."""
    kv = MemoryKV()
    for nid, ep in (("a.default", "a1"), ("b.default", "b1"), ("c.default", "c1")):
        await kv.put(*_oper(nid, ep))
    view: dict[str, str] = {}

    def handler(_nid, ep_id: str, value: str | None) -> None:
        if value is None:
            view.pop(ep_id, None)
        else:
            view[ep_id] = value

    w = NetworkWatches(kv, handler, limit=1)
    runner = asyncio.create_task(w.run())
    try:
        assert await w.converge(lambda: {"a.default"}) == {"a.default"}
        assert set(view) == {"a.default-a1"} and not w.whole()
        assert await w.converge(lambda: {"a.default", "b.default"}) == {"b.default"}
        assert w.whole() and w.streams() == 1
        assert set(view) == {"a.default-a1", "b.default-b1"}
        await kv.put(*_oper("c.default", "c2"))  # not served: filtered out
        await kv.put(*_oper("b.default", "b2"))
        await kv.delete(keys.ep_oper("a.default-a1"))
        await _until(lambda: "b.default-b2" in view and "a.default-a1" not in view)
        assert set(view) == {"b.default-b2", "b.default-b1"}
        # a network joins the served set: replayed from the stream's own view, no new stream
        assert await w.converge(lambda: {"a.default", "b.default", "c.default"}) == {"c.default"}
        assert set(view) == {"b.default-b1", "b.default-b2", "c.default-c1", "c.default-c2"}
        assert w.streams() == 1 and w.networks() == {"a.default", "b.default", "c.default"}
        # back under the limit: per-network streams again, the others' endpoints forgotten
        await w.converge(lambda: {"b.default"})
        assert not w.whole() and w.streams() == 1
        assert set(view) == {"b.default-b1", "b.default-b2"}
        await kv.put(*_oper("b.default", "b3"))
        await kv.put(*_oper("c.default", "c3"))
        await _until(lambda: "b.default-b3" in view)
        await asyncio.sleep(0.05)
        assert "c.default-c3" not in view
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert not [t for t in asyncio.all_tasks() if "eps-watch" in t.get_name() or "list-watch" in t.get_name()]
