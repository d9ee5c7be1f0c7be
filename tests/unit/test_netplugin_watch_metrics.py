"""``contiv_netplugin_watch_events_total{prefix}``: what each agent receives from etcd (daemon.py).

bench/bench_mesh.py reads it to show that every agent receives every host's endpoints (docs/
benchmarks.md, "Mesh and scale"). Counted: the keys of the initial listing, then each watch event.
"""

from __future__ import annotations

import asyncio

from contivpy.common import metrics
from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.netplugin.config import parse
from contivpy.netplugin.daemon import Agent

ARGS = [
    "--etcd-endpoints", "http://127.0.0.1:1", "--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge",
    "--host", "h1", "--vtep-ip", "10.0.0.1", "--ctrl-ip", "10.0.0.1", "--docker-host", "none",
]  # fmt: skip


async def test_listing_and_watch_events_are_counted_per_prefix():
    kv = MemoryKV()
    agent = Agent(parse(ARGS, env={}), kv=kv)
    eps, vteps = keys.OPER_EPS, keys.service_prefix(keys.SVC_NETPLUGIN_VTEP)
    ep0, vt0 = metrics.WATCH_EVENTS.value(eps), metrics.WATCH_EVENTS.value(vteps)
    await kv.put(eps + "n1.default-e1", "{}")
    await kv.put(eps + "n2.default-e2", "{}")
    await agent._list()
    assert metrics.WATCH_EVENTS.value(eps) - ep0 == 2
    assert metrics.WATCH_EVENTS.value(vteps) - vt0 == 0
    task = asyncio.create_task(agent._watch(eps, agent.remote.on_update))
    try:
        await kv.put(eps + "n1.default-e3", "{}")
        await kv.delete(eps + "n1.default-e1")
        async with asyncio.timeout(5):
            while metrics.WATCH_EVENTS.value(eps) - ep0 < 4:
                await asyncio.sleep(0.01)
        assert metrics.WATCH_EVENTS.value(eps) - ep0 == 4
        assert metrics.WATCH_EVENTS.value(vteps) - vt0 == 0
    finally:
        task.cancel()
        for it, _ in agent._streams.values():
            await it.aclose()
