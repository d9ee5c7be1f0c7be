"""Create/delete cost against the number of objects (private etcd + netmaster, loopback only).

Usage:  python bench/bench_scale_creates.py [--networks 7900] [--probe 100] [--runs 1]

Packet tags bound the number of networks, as in the original: a vxlan network takes one of the
4,094 local VLANs, a vlan network one of the 4,094 VLANs, so at most 8,188 networks exist at once
(the next create is refused "no local vlans available" / "no vlans available"). The bulk phase
alternates vxlan and vlan networks (both pools fill evenly, and the first and last blocks have
the same mix); 7,900 leaves room for the probe networks.

One keep-alive connection, one request at a time (sequential REST calls, as ``netctl`` does):

1. probes at a small store: ``--probe`` network creates, group creates (on one probe network),
   policy creates, then their deletes; each phase's rate (ops/s);
2. ``--networks`` network creates, timed per block of 100 (prints every 10th block), then the
   overall rate and the ratio "last 100 / first 100" (target >= 0.8; overall >= 100/s), and the
   CPU time per create of netmaster and of etcd in the first and last blocks (less noisy than
   wall time on a shared machine);
3. the same probes again with the networks present: the ratio large/small of each probe rate
   shows whether the cost of a create or delete depends on the number of objects.

``--runs`` repeats everything with a fresh etcd and netmaster and prints the medians. Everything started here
is stopped by PID at the end (bench/_common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BenchEnv, KeepAliveClient, cpu_ms, median  # noqa: E402


def _net(name: str, i: int, encap: str = "vxlan") -> bytes:
    body = {
        "networkName": name,
        "tenantName": "default",
        "encap": encap,
        "subnet": f"{10 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24",
    }
    return json.dumps(body).encode()


async def _call(c: KeepAliveClient, method: str, path: str, body: bytes = b"") -> None:
    status, data = await c.request(method, path, body)
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")


async def _timed(c: KeepAliveClient, reqs: list[tuple[str, str, bytes]]) -> float:
    t = time.perf_counter()
    for method, path, body in reqs:
        await _call(c, method, path, body)
    return len(reqs) / (time.perf_counter() - t)


async def _probes(c: KeepAliveClient, n: int, tag: str, pids: tuple[int, int]) -> dict[str, float]:
    """Create then delete n networks, n groups, n policies: the rate of each phase (ops/s) and
    the CPU ms per request of netmaster + etcd (``<phase> cpu``)."""
    nets = [f"pn{tag}{i}" for i in range(n)]
    grp = [f"pg{tag}{i}" for i in range(n)]
    pol = [f"pp{tag}{i}" for i in range(n)]
    phases = {
        "network create": [
            ("POST", f"/api/v1/networks/default:{nm}/", _net(nm, 60000 + i)) for i, nm in enumerate(nets)
        ],
        "group create": [
            (
                "POST",
                f"/api/v1/endpointGroups/default:{g}/",
                json.dumps({"groupName": g, "networkName": nets[0], "tenantName": "default"}).encode(),
            )
            for g in grp
        ],
        "policy create": [
            (
                "POST",
                f"/api/v1/policys/default:{p}/",
                json.dumps({"policyName": p, "tenantName": "default"}).encode(),
            )
            for p in pol
        ],
        "policy delete": [("DELETE", f"/api/v1/policys/default:{p}/", b"") for p in pol],
        "group delete": [("DELETE", f"/api/v1/endpointGroups/default:{g}/", b"") for g in grp],
        "network delete": [("DELETE", f"/api/v1/networks/default:{nm}/", b"") for nm in nets],
    }
    out = {}
    for phase, reqs in phases.items():
        c0 = sum(cpu_ms(p) for p in pids)
        out[phase] = await _timed(c, reqs)
        out[f"{phase} cpu"] = (sum(cpu_ms(p) for p in pids) - c0) / len(reqs)
    return out


async def _one_run(port: int, pid: int, etcd_pid: int, networks: int, probe: int) -> dict[str, float]:
    c = KeepAliveClient(port)
    await c.connect()
    res: dict[str, float] = {}
    try:
        small = await _probes(c, probe, "s", (pid, etcd_pid))
        blocks: list[float] = []
        cpu: list[tuple[float, float]] = []  # (netmaster, etcd) CPU ms per create, per block
        t_all = time.perf_counter()
        for b in range(0, networks, 100):
            reqs = [
                (
                    "POST",
                    f"/api/v1/networks/default:sn{i:05d}/",
                    _net(f"sn{i:05d}", i, ("vxlan", "vlan")[i % 2]),
                )
                for i in range(b, min(b + 100, networks))
            ]
            c0, e0 = cpu_ms(pid), cpu_ms(etcd_pid)
            blocks.append(await _timed(c, reqs))
            cpu.append(((cpu_ms(pid) - c0) / len(reqs), (cpu_ms(etcd_pid) - e0) / len(reqs)))
            if (b // 100) % 10 == 0 or b + 100 >= networks:
                print(
                    f"    networks {b + len(reqs):6d}: last block {blocks[-1]:7.1f}/s, CPU per create"
                    f" netmaster {cpu[-1][0]:.2f} ms, etcd {cpu[-1][1]:.2f} ms",
                    flush=True,
                )
        res["network creates overall /s"] = networks / (time.perf_counter() - t_all)
        res["first 100 creates /s"] = blocks[0]
        res["last 100 creates /s"] = blocks[-1]
        res["last/first"] = blocks[-1] / blocks[0]
        res["netmaster CPU ms/create, first 100"] = cpu[0][0]
        res["netmaster CPU ms/create, last 100"] = cpu[-1][0]
        res["etcd CPU ms/create, first 100"] = cpu[0][1]
        res["etcd CPU ms/create, last 100"] = cpu[-1][1]
        large = await _probes(c, probe, "l", (pid, etcd_pid))
        for k in small:
            unit = "CPU ms/op (netmaster+etcd)" if k.endswith(" cpu") else "/s"
            name = k.removesuffix(" cpu")
            res[f"{name} {unit}, small store"] = small[k]
            res[f"{name} {unit}, {networks} nets"] = large[k]
            res[f"{name} {unit} large/small"] = large[k] / small[k]
    finally:
        await c.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=7900)
    ap.add_argument("--probe", type=int, default=100)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {a.runs} run(s)", flush=True)
    runs: list[dict[str, float]] = []
    for r in range(a.runs):
        # a fresh etcd per run: etcd's own CPU per write grows with its database (the revisions
        # of earlier runs are kept: no compaction here), which would be charged to the next run
        with BenchEnv() as env:
            nm = env.netmaster().start()
            try:
                print(f"  run {r + 1}", flush=True)
                runs.append(asyncio.run(_one_run(nm.port, nm.pid, env.etcd.pid, a.networks, a.probe)))
            finally:
                nm.stop()
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = {"median": median(vals), "runs": vals}
        shown = ", ".join(f"{v:.2f}" for v in vals)
        print(f"{k:<58} median {median(vals):9.2f}   runs [{shown}]", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
