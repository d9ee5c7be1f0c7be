"""Routing mode (vrouter): flows per endpoint, TCP throughput, live fwd-mode switch time.

    python bench/bench_routing.py [--runs 5] [--switches 5]

Two-host test bed (tests/fixtures/testbed.py) with the outside router and server; global fwd-mode set to
``routing`` before any network, agents started with ``--netmode vxlan --fwdmode routing``.

- flows per endpoint: ``ovs-ofctl dump-flows contivVxlanBridge`` line counts on host 1 before/after a
  local endpoint, then a remote one (host 2);
- iperf3 TCP, 3 s, one stream, interleaved runs, medians in Gbit/s: container h1 -> container h2 in the
  same network and in another network of the tenant (both routed, over VXLAN), container h1 -> outside
  (table 7 miss -> host_snat -> contivh0 -> NAT); as the like-for-like reference, host h1 -> host h2
  between their ``contivh1`` infra ports (OVS internal ports on the vxlan bridges, routed by table 7
  and carried over VXLAN exactly as the containers' packets, with the host kernel's TCP at both
  ends), and host h1 -> host h2 over br-phy (no contiv bridge at all) as the older reference;
- ovs-vswitchd counters on host 1 around the first run of each path (``dpctl/dump-flows`` count,
  upcall and translation totals from ``coverage/show``);
- live switch: with no network, ``netctl global set --fwd-mode bridge|routing`` until both hosts'
  flow tables show the new pipeline (read back with ovs-ofctl every 20 ms), alternating, medians in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import measure_paths  # noqa: E402
from bench_netplugin import iperf  # noqa: E402

from tests.fixtures.testbed import OUTSIDE_IP, Testbed, wait_for  # noqa: E402
from tests.integration.test_dataplane_basic import delete_ep, make_ep  # noqa: E402


def infra_addr(h) -> str:
    out = h.exec("ip", "-4", "-o", "addr", "show", "dev", "contivh1", check=False)
    return out.split()[3].split("/")[0] if "inet " in out else ""


def n_flows(h) -> int:
    return len(h.flows())


def applied(h, mode: str) -> bool:
    flows = h.flows()
    nxt = "7" if mode == "routing" else "9"
    return f"table=6,priority=1 actions=goto_table:{nxt}" in flows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--switches", type=int, default=5)
    a = ap.parse_args()
    with Testbed(2) as bed:
        bed.add_outside()
        bed.netctl("global", "set", "--fwd-mode", "routing")
        bed.start_all("--netmode", "vxlan", "--fwdmode", "routing")
        h1, h2 = bed.hosts[1], bed.hosts[2]
        # live switch times (no network may exist)
        times: dict[str, list[float]] = {"bridge": [], "routing": []}
        for _ in range(a.switches):
            for mode in ("bridge", "routing"):
                t0 = time.perf_counter()
                bed.netctl("global", "set", "--fwd-mode", mode)
                for h in (h1, h2):
                    wait_for(lambda h=h, m=mode: applied(h, m), 30, 0.02, f"{mode} on {h.name}")
                times[mode].append((time.perf_counter() - t0) * 1000)
        bed.create_network("brn1", "10.124.1.0/24", gateway="10.124.1.254")
        bed.create_network("brn2", "10.124.2.0/24", gateway="10.124.2.254")
        bed.create_network("contivh1", "10.124.100.0/24", nwType="infra")
        ih = {}
        for h in (h1, h2):
            wait_for(lambda h=h: infra_addr(h), 15, what=f"contivh1 address on {h.name}")
            ih[h.idx] = infra_addr(h)
        base = n_flows(h1)
        _, c1 = make_ep(h1, "brn1", "bc1")
        local = n_flows(h1) - base
        _, c2 = make_ep(h2, "brn1", "bc2")
        wait_for(lambda: any(f"nw_dst={c2.ip} " in f for f in h1.flows()), 15, what="remote route")
        remote = n_flows(h1) - base - local
        _, d2 = make_ep(h2, "brn2", "bd2")
        for ip in (c2.ip, d2.ip, OUTSIDE_IP):
            if not c1.ping(ip):
                raise RuntimeError(f"no path to {ip}")
        wait_for(lambda: "0% packet loss" in h1.exec("ping", "-c1", "-W1", ih[2], check=False), 15, 0.2,
                 "host h1 -> host h2 over contivh1")  # fmt: skip
        ref = "host h1 -> host h2 over contivh1 (vxlan bridges, routed, VXLAN: reference)"
        paths = {
            "container h1 -> container h2, same network (routed, VXLAN)": (c1.name, c2.name, c2.ip),
            "container h1 -> container h2, other network (routed, VXLAN)": (c1.name, d2.name, d2.ip),
            "container h1 -> outside (table 7 miss, contivh0 + NAT)": (c1.name, "tnpo", OUTSIDE_IP),
            ref: (h1.netns, h2.netns, ih[2]),
            "host h1 -> host h2 (br-phy, no contiv bridge)": (h1.netns, h2.netns, h2.ip),
        }
        measure_paths(paths, ref, a.runs, 5600, iperf, h1.appctl)
        for h, net, ep in ((h1, "brn1", "bc1"), (h2, "brn1", "bc2"), (h2, "brn2", "bd2")):
            delete_ep(h, net, ep)
    print(f"flows per endpoint on host 1 (routing, proxy ARP, host port): local +{local}, remote +{remote}")
    for mode, xs in times.items():
        print(
            f"live switch to {mode}: median {statistics.median(xs):.0f} ms ({', '.join(f'{x:.0f}' for x in xs)})"
        )


if __name__ == "__main__":
    main()
