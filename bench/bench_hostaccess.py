"""TCP from a container to the outside through host access (contivh0 + MASQUERADE) vs the hosts' own paths.

    python bench/bench_hostaccess.py [--runs 5]

Two-host test bed with the "outside" router and server (tests/fixtures/testbed.py ``add_outside``).
iperf3 TCP, 3 s, one stream, runs interleaved, medians in Gbit/s:

- container (vxlan network, host 1) -> outside server: contivVxlanBridge tables 1..6 -> host_snat ->
  contivh0 -> host 1 kernel (MASQUERADE, forward) -> br-phy -> router -> server;
- host 1 -> outside server: the same path without the container, the pipeline and the NAT;
- host 1 -> host 2: the underlay through both hosts' br-phy (the issue's "host <-> host through the
  same OVS");
- container host 1 -> container host 2 over VXLAN (two bridges per host, like the container's path out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_netplugin import container_ep as make_ep  # noqa: E402
from bench_netplugin import iperf  # noqa: E402

from tests.fixtures.testbed import OUTSIDE_IP, Testbed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    with Testbed(2) as bed:
        bed.add_outside()
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.netctl("network", "create", "--subnet", "10.123.1.0/24", "tbhnet")
        _, c = make_ep(h1, "tbhnet", "tbhc1")
        _, c2 = make_ep(h2, "tbhnet", "tbhc2")
        c.exec("ip", "route", "replace", "default", "dev", "eth0")
        if not c.ping(OUTSIDE_IP):
            raise RuntimeError("container cannot reach the outside")
        paths = {
            "container h1 -> outside (contivh0 + NAT)": (c.name, "tnpo", OUTSIDE_IP),
            "host h1 -> outside": (h1.netns, "tnpo", OUTSIDE_IP),
            "host h1 -> host h2 (br-phy)": (h1.netns, h2.netns, h2.ip),
            "container h1 -> container h2 (VXLAN)": (c.name, c2.name, c2.ip),
        }
        res: dict[str, list[float]] = {k: [] for k in paths}
        port = 5500
        for _ in range(a.runs):
            for name, (cli, srv, ip) in paths.items():
                res[name].append(iperf(cli, srv, ip, port))
                port += 1
    base = statistics.median(res["host h1 -> host h2 (br-phy)"])
    direct = statistics.median(res["host h1 -> outside"])
    print(f"iperf3 TCP 3 s, 1 stream, {a.runs} interleaved runs, Gbit/s")
    print("| path | median | vs host->host | vs host->outside | runs |")
    print("|---|---|---|---|---|")
    for name, xs in res.items():
        m = statistics.median(xs)
        runs = ", ".join(f"{x:.2f}" for x in xs)
        print(f"| {name} | {m:.2f} | {m / base:.2f} | {m / direct:.2f} | {runs} |")


if __name__ == "__main__":
    main()
