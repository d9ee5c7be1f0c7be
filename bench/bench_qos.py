"""Is a netprofile's bandwidth enforced? Two-host test bed, iperf3 TCP from a policed container.

    python bench/bench_qos.py [--runs 3]

A group with a netprofile (``--bandwidth B --burst 100``) on a VXLAN network: its endpoint on
host 1 gets ``ingress_policing_rate`` on its OVS interface (traffic *from* the container). iperf3
TCP, 3 s, from that container to an endpoint on host 2, for B = 10mbps and 50mbps, against a
container of the same network without the group. Prints the medians (Mbit/s) over ``--runs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_netplugin import container_ep as make_ep  # noqa: E402
from bench_netplugin import iperf  # noqa: E402

from tests.fixtures.testbed import Testbed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.netctl("network", "create", "--subnet", "10.122.1.0/24", "tbqnet")
        bed.netctl("netprofile", "create", "--bandwidth", "10mbps", "--burst", "100", "tbqprof")
        bed.netctl("group", "create", "-n", "tbqprof", "tbqnet", "tbqg")
        pol, c_pol = make_ep(h1, "tbqnet", "tbqpol", group="tbqg")
        _, c_free = make_ep(h1, "tbqnet", "tbqfree")
        _, c_dst = make_ep(h2, "tbqnet", "tbqdst")
        port = pol["ovs_port"]
        results = {}
        for bw in ("10mbps", "50mbps"):
            if bw != "10mbps":
                bed.netctl("netprofile", "create", "--bandwidth", bw, "--burst", "100", "tbqprof")
            want = int(bw[:-4]) * 1024 * 1024 // 1000
            deadline = time.monotonic() + 15
            while int(h1.vsctl("get", "Interface", port, "ingress_policing_rate").strip()) != want:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"policing rate {want} not applied")
                time.sleep(0.1)
            results[bw] = [1000 * iperf(c_pol.name, c_dst.name, c_dst.ip, 5400 + k) for k in range(a.runs)]
        results["none"] = [1000 * iperf(c_free.name, c_dst.name, c_dst.ip, 5410 + k) for k in range(a.runs)]
    print(f"iperf3 TCP 3 s, host 1 -> host 2 over VXLAN, {a.runs} runs, Mbit/s")
    print("| sender | ingress_policing_rate (kbps) | median Mbit/s | runs |")
    print("|---|---|---|---|")
    for bw, rate in (("10mbps", 10485), ("50mbps", 52428), ("none", 0)):
        xs = results[bw]
        label = f"group with netprofile {bw}" if bw != "none" else "same network, no group"
        print(f"| {label} | {rate} | {statistics.median(xs):.1f} | {', '.join(f'{x:.1f}' for x in xs)} |")


if __name__ == "__main__":
    main()
