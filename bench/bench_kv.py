#!/usr/bin/env python3
"""The etcd client (common/kv/etcd.py) alone against a private etcd 3.4: operations per second and
client CPU per operation, sequential and with 16 concurrent callers (docs/benchmarks.md, "etcd client").

    python bench/bench_kv.py --runs 3

Each run: 500 sequential puts, gets, create-if-absent txns and get_many(10) calls, 100 get_prefix
reads of 200 keys, 2,000 gets by 16 concurrent tasks, and the delay from a put to its watch event
(200 puts). Client CPU is this process's CPU time (``time.process_time``) per operation; etcd's own
CPU is read from /proc. It measures whatever ``contivpy`` is on the path (this tree), so the same
command in an older checkout measures the client that checkout had.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BenchEnv, cpu_ms, median  # noqa: E402

from contivpy.common.kv import Compare, Put, open_store  # noqa: E402

P = "/bench/kv/"


async def one_run(url: str, etcd_pid: int) -> dict[str, tuple[float, float, float]]:
    """name -> (ops/s, client CPU µs per op, etcd CPU µs per op)."""
    kv = open_store(url)
    await kv.get_prefix(P)
    out: dict[str, tuple[float, float, float]] = {}

    async def measure(name: str, n: int, fn) -> None:
        e0, c0, t0 = cpu_ms(etcd_pid), time.process_time(), time.perf_counter()
        await fn()
        dt = time.perf_counter() - t0
        dc = (time.process_time() - c0) * 1e6 / n
        de = (cpu_ms(etcd_pid) - e0) * 1e3 / n
        out[name] = (n / dt, dc, de)

    async def puts():
        for i in range(500):
            await kv.put(f"{P}p{i:04}", json.dumps({"value": i, "pad": "x" * 200}))

    async def gets():
        for i in range(500):
            await kv.get(f"{P}p{i:04}")

    async def txns():
        for i in range(500):
            await kv.txn([Compare(f"{P}t{i:04}", "version", "==", 0)], [Put(f"{P}t{i:04}", "1")])

    async def many():
        keys = [f"{P}p{i:04}" for i in range(10)]
        for _ in range(500):
            await kv.get_many(keys)

    async def prefix():
        for _ in range(100):
            await kv.get_prefix(P + "p01")  # 100 keys

    async def concurrent():
        async def worker(k: int):
            for i in range(125):
                await kv.get(f"{P}p{(k * 125 + i) % 500:04}")

        await asyncio.gather(*(worker(k) for k in range(16)))

    await measure("put", 500, puts)
    await measure("get", 500, gets)
    await measure("txn create-if-absent", 500, txns)
    await measure("get_many(10)", 500, many)
    await measure("get_prefix (100 keys)", 100, prefix)
    await measure("get, 16 concurrent", 2000, concurrent)

    _, rev = await kv.get_prefix(P + "w/")
    it = kv.watch_prefix(P + "w/", rev + 1)
    lat = []
    for i in range(200):
        t = time.perf_counter()
        await kv.put(f"{P}w/{i}", "1")
        await anext(it)
        lat.append((time.perf_counter() - t) * 1000)
    await it.aclose()
    out["put -> watch event (ms)"] = (median(lat), 0.0, 0.0)
    await kv.delete_prefix(P)
    await kv.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {}
    with BenchEnv() as env:
        for _ in range(args.runs):
            for name, v in asyncio.run(one_run(env.etcd_url, env.etcd.pid)).items():
                results.setdefault(name, []).append(v)
    print(
        f"{'figure':<28} {'ops/s':>9} {'client µs/op':>13} {'etcd µs/op':>11}   (medians of {args.runs} runs)"
    )
    for name, vs in results.items():
        ops, cli, etcd = (median([v[i] for v in vs]) for i in range(3))
        print(f"{name:<28} {ops:9.1f} {cli:13.0f} {etcd:11.0f}   ops/s runs {[round(v[0], 1) for v in vs]}")


if __name__ == "__main__":
    main()
