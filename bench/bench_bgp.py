"""vlan routing mode with BGP (vlrouter): time from ``bgp create`` to the routes on the peer, and TCP.

    python bench/bench_bgp.py [--runs 5] [--mtu auto|N]

``--mtu`` is passed to both agents (default: the agents' own default, 1450 on every container port;
``auto`` gives vlan-bridge ports the host's MTU, 1500 here, like the reference's ``inb01``).

Two-host test bed (tests/fixtures/testbed.py) with the BIRD ToR (``add_tor``); global fwd-mode
``routing``, agents with ``--netmode vlan --fwdmode routing``, one vlan network, one container per host.

- ``bgp create`` -> routes on the peer: ``netctl bgp create h1 ...`` (gobgpd not running) until the ToR's
  kernel has host 1's container /32 via host 1's router-ip (``ip route`` read every 20 ms), and the
  reverse for ``bgp rm h1`` (withdrawn); alternating runs, medians in ms;
- until routed both ways: ``bgp create`` until host 1 has installed host 2's /32 (its table ip);
- ToR announce / withdraw -> flow: ``birdc enable|disable tor_static`` (a /32 inside the network) until
  host 1's table ip has / no longer has its route (learned routes follow gobgpd's WatchEvent stream;
  flows read every 10 ms), medians in ms;
- iperf3 TCP, 3 s, one stream, interleaved runs, medians in Gbit/s: container h1 -> container h2 through
  the ToR (routed in OVS on both hosts, routed by the ToR's kernel) and, as the like-for-like reference,
  host h1 -> host h2 between their router ports ``inb01`` (a host route via the ToR on each side): the
  same two vlan bridges, uplinks and ToR hop, with the host kernel's TCP at both ends instead of a
  container's. The older one-crossing reference (h1's ``inb01`` -> the ToR's address on that link)
  is printed too;
- ovs-vswitchd counters on host 1 around one run of each path (``dpctl/dump-flows`` count, upcall and
  translation totals from ``coverage/show``): where the container path costs more than the reference.
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

from tests.fixtures.testbed import TOR_STATIC_ROUTE, Testbed, router_ip, sh, tor_ip, wait_for  # noqa: E402
from tests.integration.test_dataplane_basic import delete_ep, make_ep  # noqa: E402


def bgp_create(bed, i: int) -> None:
    bed.netctl("bgp", "create", f"h{i}", "--router-ip", f"{router_ip(i)}/24", "--as", str(65000 + i),
               "--neighbor-as", "65000", "--neighbor", tor_ip(i))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mtu", default="", help="the agents' --mtu (default: theirs)")
    a = ap.parse_args()
    with Testbed(2) as bed:
        bed.add_tor()
        bed.netctl("global", "set", "--fwd-mode", "routing")
        bed.start_all("--fwdmode", "routing", *(("--mtu", a.mtu) if a.mtu else ()))
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("bgpb", "10.140.1.0/24", encap="vlan", gateway="10.140.1.254", pktTag=141)
        _, c1 = make_ep(h1, "bgpb", "bb1")
        _, c2 = make_ep(h2, "bgpb", "bb2")
        print("container MTU:", c1.exec("cat", "/sys/class/net/eth0/mtu").strip(),
              "; inb01 MTU:", h1.exec("cat", "/sys/class/net/inb01/mtu", check=False).strip() or "-")  # fmt: skip
        bgp_create(bed, 2)
        want = f"{c1.ip} via {router_ip(1)}"
        up, down, both = [], [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            bgp_create(bed, 1)
            wait_for(lambda: want in bed.tor_routes(), 60, 0.02, "route on the ToR")
            up.append((time.perf_counter() - t0) * 1000)
            wait_for(lambda: any(f"nw_dst={c2.ip}" in f for f in h1.flows("contivVlanBridge")), 60, 0.02,
                     "route on host 1")  # fmt: skip
            both.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            bed.netctl("bgp", "rm", "h1")
            wait_for(lambda: want not in bed.tor_routes(), 60, 0.02, "withdrawn on the ToR")
            down.append((time.perf_counter() - t0) * 1000)
        bgp_create(bed, 1)
        wait_for(lambda: any(f"nw_dst={c2.ip}" in f for f in h1.flows("contivVlanBridge")), 60, 0.1, "route")
        wait_for(lambda: any(f"nw_dst={c1.ip}" in f for f in h2.flows("contivVlanBridge")), 60, 0.1, "route")
        tor_ip_ = TOR_STATIC_ROUTE.split("/")[0]

        def announced() -> bool:
            return any(
                f"nw_dst={tor_ip_}," in f or f"nw_dst={tor_ip_} " in f for f in h1.flows("contivVlanBridge")
            )

        ann, wd = [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            bed.birdc("enable", "tor_static")
            wait_for(announced, 30, 0.01, "ToR route on host 1")
            ann.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            bed.birdc("disable", "tor_static")
            wait_for(lambda: not announced(), 30, 0.01, "ToR route withdrawn on host 1")
            wd.append((time.perf_counter() - t0) * 1000)
        if not c1.ping(c2.ip, budget=15):
            for h in (h1, h2):
                print(h.name, [f for f in h.flows("contivVlanBridge") if "table=7" in f or "in_port" in f])
                print(h.exec("ip", "neigh"), h.exec("ip", "addr", "show", "inb01"))
            print(bed.tor_routes(), sh("ip", "netns", "exec", "tnpt", "ip", "neigh"))
            raise RuntimeError("containers do not reach each other")
        # like-for-like reference: host <-> host between the router ports, through both bridges and the ToR
        h1.exec("ip", "route", "replace", f"{router_ip(2)}/32", "via", tor_ip(1), "dev", "inb01")
        h2.exec("ip", "route", "replace", f"{router_ip(1)}/32", "via", tor_ip(2), "dev", "inb01")
        ref = "host h1 (inb01) -> host h2 (inb01), both vlan bridges and the ToR (reference)"
        paths = {
            "container h1 -> container h2 (vlrouter, through the ToR)": (c1.name, c2.name, c2.ip),
            ref: (h1.netns, h2.netns, router_ip(2)),
            "host h1 (inb01) -> the ToR on its link (one OVS crossing)": (h1.netns, "tnpt", tor_ip(1)),
        }
        measure_paths(paths, ref, a.runs, 5700, iperf, h1.appctl)
        delete_ep(h1, "bgpb", "bb1")
        delete_ep(h2, "bgpb", "bb2")
    for name, xs in (("bgp create -> /32 on the ToR", up), ("bgp create -> routed both ways", both),
                     ("bgp rm -> withdrawn on the ToR", down), ("ToR announce -> flow on host 1", ann),
                     ("ToR withdraw -> flow gone on host 1", wd)):  # fmt: skip
        print(f"{name}: median {statistics.median(xs):.0f} ms ({', '.join(f'{x:.0f}' for x in xs)})")


if __name__ == "__main__":
    main()
