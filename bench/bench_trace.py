"""Latency of ``netctl trace`` on the two-host test bed (tests/fixtures/testbed.py).

    python bench/bench_trace.py [-n 20]

One vxlan network, endpoint ``tbta`` on host 1, ``tbtb`` on host 1 and ``tbtc`` on host 2. Timed,
``-n`` times each, median and p90 in milliseconds:

- ``agent``: ``POST /debug/trace`` on host 1's agent (endpoint lookup, ofproto/trace through
  ovs-appctl, OVSDB port names, explanation), local and cross-host destinations;
- ``netctl``: the whole command as a user runs it (interpreter start, netmaster inspect, the agent).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_netplugin import container_ep  # noqa: E402

from tests.fixtures.testbed import Testbed, http_json  # noqa: E402


def _stats(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):.1f} ms, p90 {xs[int(0.9 * (len(xs) - 1))]:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20)
    a = ap.parse_args()
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.netctl("network", "create", "--subnet", "10.133.1.0/24", "tbtnet")
        ia, _ = container_ep(h1, "tbtnet", "tbta")
        ib, _ = container_ep(h1, "tbtnet", "tbtb")
        ic, _ = container_ep(h2, "tbtnet", "tbtc")
        time.sleep(2)  # remote endpoint flows on h1
        res: dict[str, list[float]] = {}
        for name, dst in (("local", ib["ip_address"]), ("cross-host", ic["ip_address"])):
            body = {"endpoint": ia["id"], "destination": dst, "protocol": "tcp", "port": 80}
            for _ in range(a.n):
                t = time.perf_counter()
                st, out = http_json("POST", h1.debug_url + "/debug/trace", body)
                res.setdefault(f"agent POST /debug/trace, {name}", []).append((time.perf_counter() - t) * 1e3)
                if st != 200:
                    raise RuntimeError(out)
        cmd = [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, "trace",
               "--agent", h1.debug_url, "--proto", "tcp", "--port", "80", "tbta", ic["ip_address"]]  # fmt: skip
        for _ in range(a.n):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            res.setdefault("netctl trace (whole command), cross-host", []).append(
                (time.perf_counter() - t) * 1e3
            )
    print(f"netctl trace latency, {a.n} runs each")
    for k, v in res.items():
        print(f"- {k}: {_stats(v)}")


if __name__ == "__main__":
    main()
