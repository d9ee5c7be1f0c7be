"""CNI benchmark on the two-host test bed: the real ``contivk8s`` executable run as a runtime runs it.

    python bench/bench_cni.py [-n 30] [--parallel 10] [--json out.json]

Measures (printed as a Markdown table, milliseconds):
- plugin start-up: ``contivk8s`` VERSION (the fixed cost of every CNI call: sh launcher + Python);
- ADD, sequential: exec -> result printed (endpoint created through netmaster, veth moved into the
  pod netns, address and default route set), p50/p99;
- ADD -> ready: until the new pod's first ping to a pod on the other host succeeds (busybox ping
  polled, each attempt an exec of its own, so this includes ~10 ms of polling granularity);
- DEL, sequential;
- ADD and DEL with ``--parallel`` concurrent runtimes on one host (per call p50/p99, and wall time);
- for comparison, the Docker plugin's code path in the same run: the agent's endpoint API (the
  ``EndpointService.create_endpoint`` call the Docker plugin's CreateEndpoint makes) plus moving the
  port into a netns with ``ip`` (what dockerd does after Join).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.cni import PodNs, cni  # noqa: E402
from tests.fixtures.testbed import Testbed, http_json  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ping_once(ns: str, ip: str) -> bool:
    r = subprocess.run(
        ["ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "1", ip], capture_output=True
    )
    return r.returncode == 0


def row(name: str, xs: list[float]) -> str:
    return f"| {name} | {len(xs)} | {statistics.median(xs):.1f} | {pct(xs, 99):.1f} |"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    res: dict[str, list[float]] = {}
    with Testbed(2) as bed:
        bed.start_all()
        bed.create_network("default-net", "10.121.0.0/16", gateway="10.121.255.254")
        h1, h2 = bed.hosts[1], bed.hosts[2]
        nss: list[PodNs] = []
        try:
            peer = PodNs("tnpckbpeer")
            nss.append(peer)
            r = cni(h2, "ADD", "bench-peer", peer.path)
            assert r.rc == 0, r
            peer_ip = r.out["ips"][0]["address"].split("/")[0]
            ver = []
            for _ in range(a.n):
                t0 = time.perf_counter()
                cni(h1, "VERSION", "x", "", conf={"cniVersion": "1.0.0"})
                ver.append((time.perf_counter() - t0) * 1000)
            res["plugin start-up (VERSION)"] = ver
            add, ready, dele = [], [], []
            for i in range(a.n):
                p = PodNs(f"tnpckb{i}")
                nss.append(p)
                t0 = time.perf_counter()
                r = cni(h1, "ADD", f"bench-s{i}", p.path)
                t1 = time.perf_counter()
                assert r.rc == 0, r
                while not ping_once(p.name, peer_ip):
                    if time.perf_counter() - t1 > 10:
                        raise RuntimeError("pod never reached its peer")
                t2 = time.perf_counter()
                add.append((t1 - t0) * 1000)
                ready.append((t2 - t0) * 1000)
            for i in range(a.n):
                t0 = time.perf_counter()
                r = cni(h1, "DEL", f"bench-s{i}", nss[i + 1].path)
                dele.append((time.perf_counter() - t0) * 1000)
                assert r.rc == 0, r
            res["ADD (exec -> result), sequential"] = add
            res["ADD -> first ping to a pod on the other host"] = ready
            res["DEL, sequential"] = dele
            # concurrent runtimes
            padd, pdel, walls_add, walls_del = [], [], [], []
            rounds = max(1, a.n // a.parallel)
            for rnd in range(rounds):
                pods = [nss[1 + i] for i in range(a.parallel)]
                with ThreadPoolExecutor(a.parallel) as ex:
                    t0 = time.perf_counter()
                    rs = list(
                        ex.map(
                            lambda i, rnd=rnd, pods=pods: cni(h1, "ADD", f"bench-p{rnd}-{i}", pods[i].path),
                            range(a.parallel),
                        )
                    )
                    walls_add.append((time.perf_counter() - t0) * 1000)
                assert all(r.rc == 0 for r in rs), [r.out for r in rs if r.rc]
                padd += [r.elapsed * 1000 for r in rs]
                with ThreadPoolExecutor(a.parallel) as ex:
                    t0 = time.perf_counter()
                    rs = list(
                        ex.map(
                            lambda i, rnd=rnd, pods=pods: cni(h1, "DEL", f"bench-p{rnd}-{i}", pods[i].path),
                            range(a.parallel),
                        )
                    )
                    walls_del.append((time.perf_counter() - t0) * 1000)
                assert all(r.rc == 0 for r in rs)
                pdel += [r.elapsed * 1000 for r in rs]
            res[f"ADD, {a.parallel} concurrent (per call)"] = padd
            res[f"ADD, {a.parallel} concurrent (wall per batch)"] = walls_add
            res[f"DEL, {a.parallel} concurrent (per call)"] = pdel
            res[f"DEL, {a.parallel} concurrent (wall per batch)"] = walls_del
            # the Docker plugin's path: agent endpoint API + move into a netns with ip(8)
            dock = []
            for i in range(a.n):
                t0 = time.perf_counter()
                st, info = http_json(
                    "POST",
                    h1.debug_url + "/debug/endpoints",
                    {"network": "default-net", "endpointID": f"bench-d{i}"},
                    timeout=60,
                )
                assert st == 200, info
                c = h1.container(
                    info["port_name"], f"{info['ip_address']}/{info['prefix_len']}", info["gateway"]
                )
                dock.append((time.perf_counter() - t0) * 1000)
                http_json(
                    "DELETE", f"{h1.debug_url}/debug/endpoints/default/default-net/bench-d{i}", timeout=60
                )
                subprocess.run(["ip", "netns", "del", c.name], check=False)
                h1.containers.remove(c)
            res["Docker plugin path: endpoint API + ip(8) into a netns, sequential"] = dock
            cni(h2, "DEL", "bench-peer", peer.path)
        finally:
            for p in nss:
                p.delete()
    print("| metric | n | p50 ms | p99 ms |\n|---|---|---|---|")
    for k, v in res.items():
        print(row(k, v))
    if a.json:
        Path(a.json).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
