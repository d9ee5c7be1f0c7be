"""netmaster endpoint delete cost against the number of endpoints in the network (issue 11).

Usage:  python bench/bench_ep_delete.py [--sizes 100,5000] [--deletes 30] [--runs 3] [--baseline DIR]

A private etcd (bench/_common.py) holding two /16 networks of tenant default, one with each
``--sizes`` count of endpoints (created once, through /plugin/createEndpoint, by this checkout's
netmaster). Then, per run and per network, a fresh netmaster (this checkout, and ``--baseline``
DIR if given, e.g. ``git archive <commit> | tar -x -C DIR``: alternated run by run, so both see
the same machine load) is started, deletes ``--deletes`` endpoints of the network picked at
random through /plugin/deleteEndpoint (sequential, one keep-alive connection, each timed alone),
re-creates them (not timed) and is stopped. Figures per delete: median wall time (ms), bytes etcd
sent to its clients (``etcd_network_client_grpc_sent_bytes_total``: what netmaster read; its
leader keep-alive is included and negligible) and netmaster CPU (ms, /proc). Medians of the runs.

The baseline's re-creates write no address index entries (it has no index): the endpoints it
re-created are then simply not indexed, which changes nothing for these figures (no other endpoint
shares their addresses). Everything started here is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, BenchEnv, KeepAliveClient, cpu_ms, median, post_each, request  # noqa: E402

NET = "bedn{}"
SETTLE = 2.0
SENT = re.compile(r"^etcd_network_client_grpc_sent_bytes_total (\S+)$", re.M)


def _ep(net: str, epid: str) -> dict:
    return {
        "TenantName": "default",
        "NetworkName": net,
        "EndpointID": epid,
        "ConfigEP": {"Container": epid, "Host": "bedhost"},
    }


def _etcd_sent(env: BenchEnv) -> float:
    text = urllib.request.urlopen(env.etcd_url + "/metrics", timeout=10).read().decode()
    m = SENT.search(text)
    return float(m.group(1)) if m else 0.0


async def _post(c: KeepAliveClient, path: str, body: dict) -> None:
    status, data = await c.request("POST", path, json.dumps(body).encode())
    if status != 200:
        raise RuntimeError(f"POST {path}: {status} {data[:300]!r}")


async def _populate(port: int, net: str, n: int, conns: int = 4) -> None:
    await post_each(port, n, lambda i: ("/plugin/createEndpoint", _ep(net, f"{net}c{i}")), conns)


async def _deletes(env: BenchEnv, port: int, pid: int, net: str, victims: list[str]) -> dict[str, float]:
    c = KeepAliveClient(port)
    await c.connect()
    try:
        await _post(c, "/plugin/deleteEndpoint", _ep(net, "bednone"))  # warm-up (no such endpoint)
        times = []
        sent0, cpu0 = _etcd_sent(env), cpu_ms(pid)
        for epid in victims:
            t = time.perf_counter()
            await _post(c, "/plugin/deleteEndpoint", _ep(net, epid))
            times.append((time.perf_counter() - t) * 1000)
        sent, cpu = _etcd_sent(env) - sent0, cpu_ms(pid) - cpu0
        for epid in victims:  # put them back for the next run
            await _post(c, "/plugin/createEndpoint", _ep(net, epid))
    finally:
        await c.close()
    k = len(victims)
    return {"ms": median(times), "bytes": sent / k, "cpu": cpu / k}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,5000")
    ap.add_argument("--deletes", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    trees = {"this": ROOT} if args.baseline is None else {"baseline": args.baseline.resolve(), "this": ROOT}
    rnd = random.Random(11)
    got: dict[tuple[str, int], list[dict[str, float]]] = {}
    with BenchEnv() as env:
        nm = env.netmaster().start()
        for i, n in enumerate(sizes):
            body = {"networkName": NET.format(n), "tenantName": "default", "encap": "vxlan"}
            body["subnet"] = f"10.{200 + i}.0.0/16"
            st, text = request(nm.port, "POST", f"/api/v1/networks/default:{NET.format(n)}/", body)
            if st != 200:
                raise RuntimeError(text)
            t = time.perf_counter()
            asyncio.run(_populate(nm.port, NET.format(n), n))
            print(f"{n} endpoints created in {time.perf_counter() - t:.1f} s", flush=True)
        nm.stop()
        for r in range(args.runs):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                for n in sizes:
                    nm = env.netmaster(root=trees[name]).start()
                    time.sleep(SETTLE)  # the leader-start work (index check, first reclaim pass) ends
                    try:
                        k = min(args.deletes, n)
                        victims = [f"{NET.format(n)}c{i}" for i in rnd.sample(range(n), k)]
                        res = asyncio.run(_deletes(env, nm.port, nm.pid, NET.format(n), victims))
                    finally:
                        nm.stop()
                    got.setdefault((name, n), []).append(res)
                    print(
                        f"run {r + 1} {name:<8} {n:>6} endpoints: {res['ms']:.1f} ms, "
                        f"{res['bytes'] / 1000:.1f} kB, {res['cpu']:.1f} ms CPU per delete",
                        flush=True,
                    )
    print("\nmedians of the runs, per delete:")
    print(f"{'tree':<9}{'endpoints':>10}{'wall ms':>10}{'etcd sent kB':>14}{'netmaster CPU ms':>18}")
    for (name, n), rs in got.items():
        med = {f: median([x[f] for x in rs]) for f in ("ms", "bytes", "cpu")}
        print(f"{name:<9}{n:>10}{med['ms']:>10.1f}{med['bytes'] / 1000:>14.1f}{med['cpu']:>18.1f}")


if __name__ == "__main__":
    main()
