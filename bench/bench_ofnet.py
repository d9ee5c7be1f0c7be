"""Remote-endpoint flow programming rate of contivpy.ofnet through a real ovs-vswitchd.

Starts a private OVS (userspace datapath) in netns ``tofbench<rand>``, bridge
contivVxlanBridge with our controller, one vxlan network and one VTEP, then installs N
remote endpoints (3 flows each: dst_group + mac_dest + arp_responder; 2 with ``--arp-mode flood``)
through ``OfnetAgent`` -- the
per-endpoint calls run concurrently in chunks of ``--batch`` endpoints, which the flow cache
coalesces into one OpenFlow batch + barrier per chunk -- and removes them again.  Every
run is checked with ``ovs-ofctl dump-flows`` (all 3N / 2N flows present / gone).  Reports the
median over ``--runs`` runs.

    python bench/bench_ofnet.py [--endpoints 1000] [--runs 5] [--batch 100] [--arp-mode proxy|flood]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contivpy.ofnet import OfnetAgent, RemoteEndpoint  # noqa: E402
from tests.fixtures.ovs import OvsInstance  # noqa: E402

BR = "contivVxlanBridge"
CPU: list[float] = []  # controller CPU seconds per timed phase


def endpoints(n: int) -> list[RemoteEndpoint]:
    out = []
    for i in range(n):
        a, b = divmod(i + 1, 256)
        out.append(RemoteEndpoint(f"02:02:0a:03:{a:02x}:{b:02x}", f"10.3.{a}.{b}", "10.99.77.3", vni=2))
    return out


async def timed(agent, calls, eps, batch):
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(eps), batch):
        await asyncio.gather(*(calls(ep) for ep in eps[i : i + batch]))
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0


async def main(n: int, runs: int, batch: int, arp_mode: str = "proxy") -> None:
    per = 3 if arp_mode == "proxy" else 2  # flows per remote endpoint
    ovs = OvsInstance("tof", netns=f"tofbench{uuid.uuid4().hex[:6]}")
    ovs.start()
    try:
        agent = OfnetAgent(BR, "vxlan", sock=ovs.listen_socket(), arp_mode=arp_mode)
        await agent.start()
        await asyncio.to_thread(ovs.add_bridge, BR, agent.port)
        await agent.wait_connected(20)
        vt = await asyncio.to_thread(
            ovs.add_port, BR, "vxif1099773", "type=vxlan", "options:remote_ip=10.99.77.3", "options:key=flow"
        )
        await agent.add_network(2, 2, "10.3.255.254", "default")
        await agent.add_vtep(vt, "10.99.77.3")
        base = len(ovs.dump_flows(BR))
        eps = endpoints(n)
        adds, dels = [], []
        for r in range(runs):
            t_add = await timed(agent, agent.add_remote_endpoint, eps, batch)
            got = len(ovs.dump_flows(BR)) - base
            assert got == per * n, f"expected {per * n} endpoint flows, switch has {got}"
            t_del = await timed(agent, agent.remove_remote_endpoint, eps, batch)
            assert len(ovs.dump_flows(BR)) == base
            adds.append(per * n / t_add)
            dels.append(per * n / t_del)
            print(
                f"run {r + 1}: add {per * n} flows in {t_add * 1000:.0f} ms ({adds[-1]:.0f}/s), delete in {t_del * 1000:.0f} ms ({dels[-1]:.0f}/s)"
            )
        cpu_add = statistics.median(CPU[0::2])
        print(
            f"controller CPU per add phase (median): {cpu_add * 1000:.0f} ms = {per * n / cpu_add:.0f} flow-mods per CPU-second"
        )
        st = agent.statistics()
        print(f"errors from switch: {st['switch']['errors']}, batches: {st['cache']['batches']}")
        print(
            f"median over {runs} runs, {n} remote endpoints ({per} flows each), chunks of {batch}: "
            f"add {statistics.median(adds):.0f} flow-mods/s ({statistics.median(adds) / per:.0f} endpoints/s), "
            f"delete {statistics.median(dels):.0f} flow-mods/s"
        )
        await agent.stop()
    finally:
        ovs.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--arp-mode", choices=("proxy", "flood"), default="proxy")
    a = ap.parse_args()
    asyncio.run(main(a.endpoints, a.runs, a.batch, a.arp_mode))
