"""``contiv_netplugin_watch_events_total{prefix}``: what each agent receives from etcd (daemon.py).

bench/bench_mesh.py reads it to show that every agent receives every host's endpoints (docs/
benchmarks.md, "Mesh and scale"). Counted: the keys of the initial listing, then each watch event.
"""

from __future__ import annotations

import asyncio

from contivpy.common import metrics
from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.model.state import OperEndpoint, OvsDriverOper
from contivpy.netplugin.config import parse
from contivpy.netplugin.daemon import Agent

ARGS = [
    "--etcd-endpoints", "http://127.0.0.1:1", "--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge",
    "--host", "h1", "--vtep-ip", "10.0.0.1", "--ctrl-ip", "10.0.0.1", "--docker-host", "none",
]  # fmt: skip


async def test_listing_and_watch_events_are_counted_per_prefix():
    """The endpoint prefix counts only the networks this agent serves: here n1, where its port
    record has a local endpoint; n2's endpoints never reach it."""
    kv = MemoryKV()
    agent = Agent(parse(ARGS, env={}), kv=kv)
    eps, vteps = keys.OPER_EPS, keys.service_prefix(keys.SVC_NETPLUGIN_VTEP)
    ep0, vt0 = metrics.WATCH_EVENTS.value(eps), metrics.WATCH_EVENTS.value(vteps)
    own = OperEndpoint(id="n1.default-e0", netID="n1.default", homingHost="h1")
    await kv.put(
        keys.ovs_driver_oper("h1"),
        OvsDriverOper(id="h1", LocalEpInfo={own.id: {"Ovsportname": "vvport1"}}).to_json(),
    )
    await kv.put(keys.ep_oper(own.id), own.to_json())
    await kv.put(eps + "n1.default-e1", '{"netID": "n1.default"}')
    await kv.put(eps + "n2.default-e2", '{"netID": "n2.default"}')
    await agent._list()
    assert agent.ep_watches.networks() == {"n1.default"}
    assert metrics.WATCH_EVENTS.value(eps) - ep0 == 2
    assert metrics.WATCH_EVENTS.value(vteps) - vt0 == 0
    task = asyncio.create_task(agent.ep_watches.run())
    try:
        await kv.put(eps + "n1.default-e3", '{"netID": "n1.default"}')
        await kv.put(eps + "n2.default-e4", '{"netID": "n2.default"}')
        await kv.delete(eps + "n1.default-e1")
        async with asyncio.timeout(5):
            while metrics.WATCH_EVENTS.value(eps) - ep0 < 4:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert metrics.WATCH_EVENTS.value(eps) - ep0 == 4
        assert metrics.WATCH_EVENTS.value(vteps) - vt0 == 0
        assert set(agent.remote.desired) == {"n1.default-e3"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for it, _ in agent._streams.values():
            await it.aclose()
