"""Control-plane benchmarks of the netmaster (``--mode test``, private etcd, loopback only).

Usage:  python bench/bench_netmaster.py [--startup] [--rss] [--list-rps] [--inspect] [--alloc] [--netctl]
                                       [--runs N]
        (no selector = all of them)

Each measurement runs ``--runs`` times (default 5) and prints every run plus the median, against
targets of the "Control plane" issue (figures of the original in docs/benchmarks.md):

- ``--startup``   spawn the installed ``netmaster`` (bin/netmaster launcher; else ``python -m
                  contivpy.netmaster``; etcd up, /contiv.io empty) and poll GET /version every
                  2 ms: ms to the first 200 (target <= 200 ms) and the netmaster's CPU until then
                  (target <= 150 ms; threads' run time from /proc/<pid>/task/*/schedstat); the
                  same for the first 200 of GET /api/v1/networks/ (needs leadership); also the
                  CPU to import netmaster's own start-up modules after aiohttp.web
                  (``bench_imports``). ``--baseline DIR`` alternates run by run with the
                  netmaster of another checkout DIR and prints the paired differences.
- ``--instructions`` instructions (valgrind callgrind) of one start to the first GET networks 200
                  with a ``memory://`` store, for this checkout and ``--baseline DIR``: a figure
                  the machine's load does not move.
- ``--rss``       VmRSS 2 s after start (target <= 40 MiB), then after creating ``--rss-networks``
                  networks (default 1,000; above 4,000 half vxlan, half vlan: the tag pools hold
                  4,094 each) and listing them (target <= 45 MiB). A fresh netmaster and keyspace
                  per run.
- ``--list-rps``  GET /api/v1/networks/ with 100 networks, 4 keep-alive connections, 3,000
                  requests (or 10 s) per run, after a warm-up: requests/s (target >= 2,000).
- ``--alloc``     N concurrent POST /plugin/allocAddress on one /20 network (N=100: 100
                  connections, one request each; N=1000: 100 connections, 10 each): allocations/s,
                  asserting every answer is 200 and no address is handed out twice (target >= 500/s).
- ``--inspect``   GET /api/v1/inspect/networks/default:<net>/ (a /24 vxlan network with 10
                  allocated addresses, among the 100 networks) at 1 and at 16 keep-alive
                  connections, 2,000 requests (or 10 s) per run, after a warm-up: requests/s
                  (target >= 1.5x the original's 331 req/s at 1 connection).
- ``--netctl``    ``netctl --netmaster URL network ls``, 30 rounds against the netmaster holding
                  the 100 networks: the netctl installed next to this interpreter (by ``make
                  deps``: the launcher pinned to the venv's interpreter), the checkout's
                  ``bin/netctl`` run by sh (the launcher as shipped), and each
                  ``--netctl-cmd PATH`` (e.g. ``/usr/local/sbin/netctl`` of ``make install``, or
                  an older install to compare with); one run of each per round, in turn, so that
                  the machine's drift hits all alike: median ms (target <= 20 ms).

Everything started here is stopped by PID at the end (bench/_common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    BenchEnv,
    KeepAliveClient,
    compile_bytecode,
    cpu_ms,
    create_networks,
    median,
    request,
    time_interleaved,
    vmrss_kb,
)

RESULTS: dict[str, dict] = {}


def report(name: str, unit: str, runs: list[float], target: str) -> None:
    med = median(runs)
    RESULTS[name] = {"median": med, "runs": runs, "unit": unit, "target": target}
    shown = ", ".join(f"{r:.1f}" for r in runs)
    print(f"{name:<34} median {med:9.1f} {unit:<6} target {target:<10} runs [{shown}]", flush=True)


# --- start-up ------------------------------------------------------------------------------------
def _startup_once(env: BenchEnv, root: Path = ROOT) -> tuple[float, float, float, float, float]:
    """One start on an empty /contiv.io: ms to the first GET /version 200, CPU ms until then,
    ms to the first GET networks 200 (leader), CPU ms until then, CPU ms 2 s after the spawn
    (the whole start-up, work deferred past the first answers included)."""
    env.wipe()
    nm = env.netmaster(root=root)
    nm.spawn()
    try:
        first = nm.first_answer("/version") * 1000
        cpu = cpu_ms(nm.pid)
        leader = nm.first_answer("/api/v1/networks/") * 1000
        cpu_leader = cpu_ms(nm.pid)
        time.sleep(max(0.0, nm.t_spawn + 2.0 - time.perf_counter()))
        cpu_2s = cpu_ms(nm.pid)
    finally:
        nm.stop()
    return first, cpu, leader, cpu_leader, cpu_2s


def bench_startup(env: BenchEnv, runs: int, baseline: Path | None = None) -> None:
    """``baseline``: another checkout (e.g. ``git worktree add /tmp/base main``); its netmaster and
    this one are started alternately, run by run (paired: both see the same machine load)."""
    if baseline is not None:
        got: dict[str, list[tuple[float, ...]]] = {"baseline": [], "this": []}
        for i in range(runs):
            for name in ("baseline", "this") if i % 2 == 0 else ("this", "baseline"):
                got[name].append(_startup_once(env, baseline if name == "baseline" else ROOT))
        for name in ("baseline", "this"):
            cols = list(zip(*got[name], strict=True))
            report(f"{name}: start -> first GET /version 200", "ms", list(cols[0]), "<= 200")
            report(f"{name}:   netmaster CPU until then", "ms", list(cols[1]), "<= 150")
            report(f"{name}: start -> first GET networks 200", "ms", list(cols[2]), "-")
            report(f"{name}:   netmaster CPU until then", "ms", list(cols[3]), "-")
            report(f"{name}: netmaster CPU 2 s after start", "ms", list(cols[4]), "-")
        for idx, what in (
            (0, "first /version wall"),
            (1, "CPU until first /version"),
            (3, "CPU until first networks"),
            (4, "CPU 2 s after start"),
        ):
            diffs = [t[idx] - b[idx] for t, b in zip(got["this"], got["baseline"], strict=True)]
            report(f"paired this - baseline: {what}", "ms", diffs, "-")
        return
    first, leader, cpu, cpu_leader, cpu_2s, floor = [], [], [], [], [], []
    for _ in range(runs):
        # reference, interleaved: a bare interpreter importing only the dependency (aiohttp's server)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from aiohttp import web"], check=True)
        floor.append((time.perf_counter() - t) * 1000)
        a, b, c, d, e = _startup_once(env)
        first.append(a)
        cpu.append(b)
        leader.append(c)
        cpu_leader.append(d)
        cpu_2s.append(e)
    report("start -> first GET /version 200", "ms", first, "<= 200")
    report("  netmaster CPU until then", "ms", cpu, "<= 150")
    report("start -> first GET networks 200", "ms", leader, "-")
    report("  netmaster CPU until then", "ms", cpu_leader, "-")
    report("netmaster CPU 2 s after start", "ms", cpu_2s, "-")
    report("  (python -c 'import aiohttp.web')", "ms", floor, "-")
    bench_imports(max(runs, 5))


# One start of a real netmaster (``memory://`` store: no etcd, so nothing but netmaster runs) the
# way bin/netmaster runs it (``python -S``, argv[0] "netmaster"), until its first GET networks 200;
# a thread of the process polls (every 0.2 s: few polls under valgrind), then SIGTERM.
_PROBE = r"""
import os, signal, socket, sys, threading, time
port = int(sys.argv[1])
if sys.path[0] == "":  # -c: never import contivpy from the working directory
    del sys.path[0]
sys.path.append(sys.argv[2])  # site-packages (python -S)
sys.argv = ["netmaster", "--etcd-endpoints", "memory://local", "--mode", "test", "--netmode", "vlan",
            "--fwdmode", "bridge", "--listen-url", f"127.0.0.1:{port}", "--control-url",
            f"127.0.0.1:{port}", "--rpc-port", "0"]
import contivpy.netmaster.__main__ as entry

def ok(path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s.recv(12)[9:12] == b"200"
    except OSError:
        return False

def probe():
    for path in ("/version", "/api/v1/networks/"):
        while not ok(path):
            time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
sys.exit(entry.main())
"""


def bench_instructions(roots: list[tuple[str, Path]]) -> None:
    """Instructions executed by one netmaster start to its first GET networks 200 (valgrind
    callgrind, ``memory://`` store): independent of the machine's load, unlike CPU time."""
    import re
    import site
    import socket as _socket

    sp = next(p for p in site.getsitepackages() if Path(p, "aiohttp").is_dir())
    for name, root in roots:
        with _socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-S", "-c",
             _PROBE, str(port), sp],
            env=dict(os.environ, PYTHONPATH=str(root)), cwd=str(root), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if m is None:
            raise RuntimeError(f"valgrind failed: {out.stderr[-2000:]}")
        n = int(m.group(1).replace(",", ""))
        RESULTS[f"{name}: instructions to first GET networks 200"] = {"value": n}
        print(f"{name}: instructions to first GET networks 200 (memory://): {n / 1e6:,.1f} M", flush=True)


_IMPORTS = """
import sys, time
from aiohttp import web
t = time.process_time()
from contivpy.common import fastweb; fastweb.install()
import contivpy.netmaster.daemon, contivpy.netmaster.api.observe, contivpy.common.kv.etcd
print(round((time.process_time() - t) * 1000, 2), int("prometheus_client" in sys.modules))
"""


def bench_imports(runs: int) -> None:
    """CPU to import netmaster's own start-up modules once aiohttp.web is loaded (the
    part of the start-up figure contivpy controls; less noisy than the wall time)."""
    cpu, prom = [], 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True, env=env
        )
        ms, loaded = out.stdout.split()
        cpu.append(float(ms))
        prom += int(loaded)
    report("  CPU importing contivpy's start-up modules", "ms", cpu, "-")
    print(f"  prometheus_client imported at start-up: {'yes' if prom else 'no'}", flush=True)


# --- memory --------------------------------------------------------------------------------------
def bench_rss(env: BenchEnv, runs: int, n: int = 1000) -> None:
    idle, full = [], []
    for _ in range(runs):
        env.wipe()
        nm = env.netmaster().start()
        try:
            time.sleep(2)
            idle.append(vmrss_kb(nm.pid) / 1024)
            create_networks(nm.port, n, mixed=n > 4000)
            for _ in range(5):
                status, text = request(nm.port, "GET", "/api/v1/networks/")
                assert status == 200 and len(json.loads(text)) == n
            time.sleep(1)
            full.append(vmrss_kb(nm.pid) / 1024)
        finally:
            nm.stop()
    report("VmRSS idle (2 s after start)", "MiB", idle, "<= 40")
    report(f"VmRSS with {n:,} networks", "MiB", full, "<= 45")


# --- GET list throughput -------------------------------------------------------------------------
async def _get_round(
    port: int, path: str, total: int, conns: int, limit_s: float, min_len: int = 10
) -> float:
    clients = [KeepAliveClient(port) for _ in range(conns)]
    for c in clients:
        await c.connect()
    done = 0
    deadline = time.perf_counter() + limit_s

    async def worker(c: KeepAliveClient) -> None:
        nonlocal done
        while done < total and time.perf_counter() < deadline:
            done += 1
            status, body = await c.request("GET", path)
            if status != 200 or len(body) < min_len:
                raise RuntimeError(f"bad answer {status} ({len(body)} bytes)")

    t0 = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for c in clients:
                tg.create_task(worker(c))
    finally:
        for c in clients:
            await c.close()
    return done / (time.perf_counter() - t0)


def bench_inspect(env: BenchEnv, runs: int) -> None:
    env.wipe()
    nm = env.netmaster().start()
    try:
        create_networks(nm.port, 100)
        name = "bench0042"
        for _ in range(10):
            body = {"NetworkID": f"{name}.default", "AddressPool": "", "PreferredIPv4Address": ""}
            status, text = request(nm.port, "POST", "/plugin/allocAddress", body)
            assert status == 200, text
        path = f"/api/v1/inspect/networks/default:{name}/"
        status, text = request(nm.port, "GET", path)
        assert status == 200 and json.loads(text)["Oper"]["allocatedAddressesCount"] == 10, text
        print(f"  (inspect body {len(text)} bytes)")
        for conns in (1, 16):
            asyncio.run(_get_round(nm.port, path, 300, conns, 3))  # warm-up
            rates = [asyncio.run(_get_round(nm.port, path, 2000, conns, 10)) for _ in range(runs)]
            report(f"GET inspect network, {conns} conn", "req/s", rates, ">= 497")
    finally:
        nm.stop()


async def _list_round(port: int, total: int, conns: int, limit_s: float) -> float:
    clients = [KeepAliveClient(port) for _ in range(conns)]
    for c in clients:
        await c.connect()
    done = 0
    deadline = time.perf_counter() + limit_s

    async def worker(c: KeepAliveClient) -> None:
        nonlocal done
        while done < total and time.perf_counter() < deadline:
            done += 1
            status, body = await c.request("GET", "/api/v1/networks/")
            if status != 200 or len(body) < 10000:
                raise RuntimeError(f"bad list answer {status} ({len(body)} bytes)")

    t0 = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for c in clients:
                tg.create_task(worker(c))
    finally:
        for c in clients:
            await c.close()
    return done / (time.perf_counter() - t0)


def bench_list(env: BenchEnv, runs: int, nm=None) -> None:
    own = nm is None
    if own:
        env.wipe()
        nm = env.netmaster().start()
        create_networks(nm.port, 100)
    try:
        status, text = request(nm.port, "GET", "/api/v1/networks/")
        assert status == 200 and len(json.loads(text)) == 100, "expected 100 networks"
        print(f"  (list body {len(text)} bytes)")
        asyncio.run(_list_round(nm.port, 500, 4, 5))  # warm-up
        rates = [asyncio.run(_list_round(nm.port, 3000, 4, 10)) for _ in range(runs)]
        report("GET /api/v1/networks/ (100 nets)", "req/s", rates, ">= 2000")
    finally:
        if own:
            nm.stop()


# --- allocAddress --------------------------------------------------------------------------------
async def _alloc_round(port: int, net_id: str, pool: str, n: int, conns: int) -> tuple[float, list[str]]:
    clients = [KeepAliveClient(port) for _ in range(min(n, conns))]
    for c in clients:
        await c.connect()
    per = [n // len(clients) + (1 if i < n % len(clients) else 0) for i in range(len(clients))]
    body = json.dumps({"NetworkID": net_id, "AddressPool": pool, "PreferredIPv4Address": ""}).encode()
    got: list[str] = []
    start = asyncio.Event()

    async def worker(c: KeepAliveClient, count: int) -> None:
        await start.wait()
        for _ in range(count):
            status, data = await c.request("POST", "/plugin/allocAddress", body)
            if status != 200:
                raise RuntimeError(f"allocAddress {status}: {data[:300]!r}")
            got.append(json.loads(data)["IPv4Address"])

    try:
        async with asyncio.TaskGroup() as tg:
            for c, count in zip(clients, per, strict=True):
                tg.create_task(worker(c, count))
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            start.set()
        elapsed = time.perf_counter() - t0
    finally:
        for c in clients:
            await c.close()
    return n / elapsed, got


def bench_alloc(env: BenchEnv, runs: int) -> None:
    env.wipe()
    nm = env.netmaster().start()
    try:
        for n in (100, 1000):
            rates = []
            for r in range(runs):
                name = f"tbmalloc{n}x{r}"
                subnet = f"10.{200 + r}.{16 if n == 1000 else 0}.0/20"
                body = {"networkName": name, "tenantName": "default", "encap": "vxlan", "subnet": subnet}
                status, text = request(nm.port, "POST", f"/api/v1/networks/default:{name}/", body)
                assert status == 200, text
                rate, got = asyncio.run(_alloc_round(nm.port, f"{name}.default", subnet, n, 100))
                if len(got) != n or len(set(got)) != n:
                    raise SystemExit(
                        f"DUPLICATE or missing addresses: {len(got)} answers, {len(set(got))} distinct"
                    )
                rates.append(rate)
            report(f"allocAddress N={n} (100 conns)", "/s", rates, ">= 500")
        print("  (no duplicate address in any run)")
    finally:
        nm.stop()


# --- netctl --------------------------------------------------------------------------------------
def bench_netctl(env: BenchEnv, runs: int, extra: list[str]) -> None:
    bindir = Path(sys.executable).parent
    env.wipe()
    nm = env.netmaster().start()
    try:
        create_networks(nm.port, 100)
        args = ["--netmaster", nm.url, "network", "ls"]
        penv = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
        penv.pop("NETMASTER", None)
        cmds: dict[str, list[str]] = {}
        installed = bindir / "netctl"
        if installed.exists():
            first = installed.read_bytes().split(b"\n", 1)[0].decode()
            kind = (
                "sh launcher"
                if first == "#!/bin/sh"
                else "pinned launcher"
                if first.endswith(" -S")
                else "script"
            )
            cmds[f"netctl network ls, installed {kind}"] = [str(installed), *args]
        launcher = ROOT / "bin" / "netctl"
        if launcher.exists():
            cmds["netctl network ls, sh bin/netctl"] = ["sh", str(launcher), *args]
        for path in extra:
            cmds[f"netctl network ls, {path}"] = [path, *args]
        for name, times in time_interleaved(cmds, penv, 30, lines=102).items():
            report(name, "ms", times, "<= 20")
        if runs:
            bench_list(env, runs, nm)
    finally:
        nm.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("startup", "rss", "list-rps", "inspect", "alloc", "netctl"):
        ap.add_argument(f"--{flag}", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rss-networks", type=int, default=1000, help="networks for --rss (at most 8,188)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="valgrind: instructions of one start to the first GET networks 200 (this checkout and --baseline)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="--startup only: another checkout (e.g. `git worktree add /tmp/base main`) whose netmaster "
        "is started alternately with this one's; prints both and the paired differences",
    )
    ap.add_argument(
        "--netctl-cmd", action="append", default=[], metavar="PATH", help="--netctl: also time this netctl"
    )
    a = ap.parse_args()
    if a.instructions:
        compile_bytecode()
        roots = [("this", ROOT)]
        if a.baseline is not None:
            compile_bytecode(a.baseline)
            roots.insert(0, ("baseline", a.baseline))
        bench_instructions(roots)
        return
    every = not (a.startup or a.rss or a.list_rps or a.inspect or a.alloc or a.netctl)
    print(f"load average {os.getloadavg()[0]:.2f}, {a.runs} runs per figure", flush=True)
    with BenchEnv() as env:
        if every or a.startup:
            bench_startup(env, a.runs, a.baseline)
        if every or a.netctl:
            bench_netctl(env, a.runs if (every or a.list_rps) else 0, a.netctl_cmd)
        elif a.list_rps:
            bench_list(env, a.runs)
        if every or a.inspect:
            bench_inspect(env, a.runs)
        if every or a.alloc:
            bench_alloc(env, a.runs)
        if every or a.rss:
            bench_rss(env, a.runs, a.rss_networks)
    if a.json:
        Path(a.json).write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
