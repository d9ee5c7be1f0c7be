"""Per-member create cost: the 1st vs the 500th / 1,000th member of one parent (issue 11).

Usage:  python bench/bench_members.py [--groups 1000] [--rules 500] [--runs 3]

A private etcd + netmaster (bench/_common.py), one keep-alive connection, sequential REST
calls. Four series, each on its own parent, each create timed alone:

- ``network groups``: ``--groups`` endpoint groups on ONE network (the network's
  ``link-sets.EndpointGroups`` grows);
- ``netprofile groups``: ``--groups`` groups on one network, all using ONE netprofile (the
  netprofile's ``link-sets.EndpointGroups`` grows);
- ``policy rules``: ``--rules`` rules in ONE policy (the policy's ``link-sets.Rules`` grows);
- ``policy groups``: ``--groups`` groups each attached to ONE policy (the policy's
  ``link-sets.EndpointGroups`` grows);
- ``policy rules, 2 groups``: ``--rules`` rules in one policy attached to two groups (each rule
  create also rewrites the two (group, policy) EPG-policy records, which list every rule: the
  original's record layout, so that series is not flat by design).

For each series: the median create time (ms) of the first 50 members and of the last 50, their
ratio (flat = 1.0), and the netmaster + etcd CPU per create in those windows. Then a GET of each
parent is timed (it builds the member lists on read). Everything started here is stopped by PID.
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

WINDOW = 50


async def _call(c: KeepAliveClient, method: str, path: str, body: dict | None = None) -> bytes:
    status, data = await c.request(method, path, json.dumps(body).encode() if body is not None else b"")
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
    return data


async def _series(
    c: KeepAliveClient, reqs: list[tuple[str, dict]], pids: tuple[int, int]
) -> dict[str, float]:
    times: list[float] = []
    cpu: list[float] = []
    for path, body in reqs:
        c0 = sum(cpu_ms(p) for p in pids)
        t = time.perf_counter()
        await _call(c, "POST", path, body)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append(sum(cpu_ms(p) for p in pids) - c0)
    first, last = times[:WINDOW], times[-WINDOW:]
    return {
        "first ms": median(first),
        "last ms": median(last),
        "last/first": median(last) / median(first),
        "CPU ms first": sum(cpu[:WINDOW]) / WINDOW,
        "CPU ms last": sum(cpu[-WINDOW:]) / WINDOW,
    }


async def _get_ms(c: KeepAliveClient, path: str, n: int = 20) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        await _call(c, "GET", path)
        ts.append((time.perf_counter() - t) * 1000)
    return median(ts)


async def _one_run(
    port: int, pids: tuple[int, int], groups: int, rules: int, only: list[str] | None
) -> dict[str, float]:
    c = KeepAliveClient(port)
    await c.connect()
    out: dict[str, float] = {}
    t = "default"
    try:
        for net, sub in (("mn1", "20.1.0.0/16"), ("mn2", "20.2.0.0/16"), ("mn3", "20.3.0.0/16")):
            await _call(
                c,
                "POST",
                f"/api/v1/networks/{t}:{net}/",
                {"networkName": net, "tenantName": t, "subnet": sub, "encap": "vxlan"},
            )
        await _call(
            c,
            "POST",
            f"/api/v1/netprofiles/{t}:np1/",
            {"profileName": "np1", "tenantName": t, "bandwidth": "10Mbps"},
        )
        for p in ("mp1", "mp2", "mp3"):
            await _call(c, "POST", f"/api/v1/policys/{t}:{p}/", {"policyName": p, "tenantName": t})
        if not only or "policy rules, 2 groups" in only:
            for g in ("gd1", "gd2"):
                body = {"groupName": g, "networkName": "mn3", "tenantName": t, "policies": ["mp3"]}
                await _call(c, "POST", f"/api/v1/endpointGroups/{t}:{g}/", body)
        series = {
            "network groups": [
                (
                    f"/api/v1/endpointGroups/{t}:ga{i}/",
                    {"groupName": f"ga{i}", "networkName": "mn1", "tenantName": t},
                )
                for i in range(groups)
            ],
            "netprofile groups": [
                (
                    f"/api/v1/endpointGroups/{t}:gb{i}/",
                    {"groupName": f"gb{i}", "networkName": "mn2", "tenantName": t, "netProfile": "np1"},
                )
                for i in range(groups)
            ],
            "policy rules": [
                (
                    f"/api/v1/rules/{t}:mp1:{i + 1}/",
                    {
                        "policyName": "mp1",
                        "tenantName": t,
                        "ruleId": str(i + 1),
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "port": 1000 + i,
                        "priority": 1,
                    },
                )
                for i in range(rules)
            ],
            "policy groups": [
                (
                    f"/api/v1/endpointGroups/{t}:gc{i}/",
                    {"groupName": f"gc{i}", "networkName": "mn3", "tenantName": t, "policies": ["mp2"]},
                )
                for i in range(groups)
            ],
            "policy rules, 2 groups": [
                (
                    f"/api/v1/rules/{t}:mp3:{i + 1}/",
                    {
                        "policyName": "mp3",
                        "tenantName": t,
                        "ruleId": str(i + 1),
                        "direction": "in",
                        "action": "allow",
                        "protocol": "tcp",
                        "port": 1000 + i,
                        "priority": 1,
                    },
                )
                for i in range(rules)
            ],
        }
        gets = {
            "policy rules, 2 groups": f"/api/v1/policys/{t}:mp3/",
            "network groups": f"/api/v1/networks/{t}:mn1/",
            "netprofile groups": f"/api/v1/netprofiles/{t}:np1/",
            "policy rules": f"/api/v1/policys/{t}:mp1/",
            "policy groups": f"/api/v1/policys/{t}:mp2/",
        }
        for name, reqs in series.items():
            if only and name not in only:
                continue
            res = await _series(c, reqs, pids)
            res["GET parent ms"] = await _get_ms(c, gets[name])
            for k, v in res.items():
                out[f"{name}: {k}"] = v
            print(
                f"    {name} ({len(reqs)}): " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()), flush=True
            )
    finally:
        await c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=500)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", action="append", help="run only this series (repeatable), e.g. 'policy rules'")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {a.runs} run(s)", flush=True)
    runs: list[dict[str, float]] = []
    for r in range(a.runs):
        with BenchEnv() as env:
            nm = env.netmaster().start()
            try:
                print(f"  run {r + 1}", flush=True)
                runs.append(asyncio.run(_one_run(nm.port, (nm.pid, env.etcd.pid), a.groups, a.rules, a.only)))
            finally:
                nm.stop()
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = {"median": median(vals), "runs": vals}
        shown = ", ".join(f"{v:.2f}" for v in vals)
        print(f"{k:<44} median {median(vals):9.2f}   runs [{shown}]", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
