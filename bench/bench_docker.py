"""Docker end-to-end benchmark on the two-host test bed (etcd, netmaster, OVS + dockerd + netplugin each).

    python bench/bench_docker.py [-n 10] [--parallel 20] [--json out.json]

Measures (printed as a Markdown table):
- ``docker run -d --net test-net`` wall time vs ``docker run -d --net none`` (same image, same
  host, sequential, n each): p50 and the ratio = what the contiv plugin adds to a container start;
- ``--parallel`` containers started at once across both hosts (half each): per-container p50/p99
  and the total wall time, next to the same with ``--net none`` (dockerd/containerd's own cost);
- ``netctl network create`` -> the network usable on both hosts (docker network present on both
  engines through netplugin's sync, and a container started on it on each host).
Everything it starts is stopped by the fixture code (tests/fixtures/docker.py), also on failure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.docker import start_docker_bed  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed(fn, *a) -> float:
    t = time.perf_counter()
    fn(*a)
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--parallel", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    dbed = start_docker_bed(2)
    res: dict = {}
    try:
        bed, d1, d2 = dbed.bed, dbed.dockers[1], dbed.dockers[2]
        t0 = time.perf_counter()
        bed.netctl("network", "create", "--subnet", "10.9.0.0/16", "-g", "10.9.255.254", "test-net")
        while not all("test-net" in d.networks() for d in (d1, d2)):
            time.sleep(0.02)
        t_nets = (time.perf_counter() - t0) * 1000
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda d: d.run(f"tdkbu{id(d) % 1000}", "test-net"), (d1, d2)))
        res["network create -> docker net on both hosts (ms)"] = round(t_nets, 1)
        res["network create -> container running on both hosts (ms)"] = round(
            (time.perf_counter() - t0) * 1000, 1
        )

        none, contiv = [], []
        for i in range(args.n):  # interleaved, to share the machine's noise
            none.append(timed(d1.run, f"tdkbn{i}", "none"))
            contiv.append(timed(d1.run, f"tdkbc{i}", "test-net"))
        res["docker run --net none p50 (ms)"] = round(statistics.median(none), 1)
        res["docker run --net test-net p50 (ms)"] = round(statistics.median(contiv), 1)
        res["ratio test-net / none"] = round(statistics.median(contiv) / statistics.median(none), 2)
        d1.remove_all_containers()

        base = [((d1, d2)[i % 2], f"tdkbq{i}") for i in range(args.parallel)]
        with ThreadPoolExecutor(args.parallel) as ex:
            lat0 = list(ex.map(lambda dn: timed(dn[0].run, dn[1], "none"), base))
        res[f"{args.parallel} parallel docker run --net none p50 (ms)"] = round(pct(lat0, 50), 1)
        res[f"{args.parallel} parallel docker run --net none p99 (ms)"] = round(pct(lat0, 99), 1)
        for d in (d1, d2):
            d.remove_all_containers()

        names = [((d1, d2)[i % 2], f"tdkbp{i}") for i in range(args.parallel)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as ex:
            lat = list(ex.map(lambda dn: timed(dn[0].run, dn[1], "test-net"), names))
        wall = (time.perf_counter() - t0) * 1000
        res[f"{args.parallel} parallel docker run p50 (ms)"] = round(pct(lat, 50), 1)
        res[f"{args.parallel} parallel docker run p99 (ms)"] = round(pct(lat, 99), 1)
        res[f"{args.parallel} parallel docker run wall (ms)"] = round(wall, 1)
        ips = set()
        for d, n in names:
            ips.add(d.exec(n, "ip", "-o", "-4", "addr", "show", "eth0").split(" inet ")[1].split()[0])
        res["unique addresses"] = len(ips)
    finally:
        dbed.close()
    print("| metric | value |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
