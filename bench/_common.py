"""Shared helpers for the control-plane benchmarks: a private etcd + netmaster, a tiny HTTP client.

Design
- ``BenchEnv`` (context manager) makes one temp dir (prefix ``tbm-``), starts ``/usr/bin/etcd`` on
  free 127.0.0.1 ports with its data dir there, and starts netmaster processes on demand
  (the installed ``netmaster --mode test ...``, else ``python -m contivpy.netmaster``, on a free port, ``--rpc-port 0``).
- Invariants: only the PIDs started here are ever signalled (SIGTERM, then SIGKILL, each
  process in its own session); everything is on loopback; the temp dir is removed on exit even
  when the benchmark fails.
- ``request(port, method, path, body)`` is a blocking one-shot ``http.client`` call for set-up;
  ``KeepAliveClient`` is a minimal asyncio HTTP/1.1 keep-alive client (Content-Length bodies only,
  which is what aiohttp answers) used by the load loops so the client costs little CPU.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.netmaster import netmaster_args  # noqa: E402  (one definition of the flags)

ETCD_BIN = os.environ.get("CONTIVPY_ETCD_BIN", "/usr/bin/etcd")


def compile_bytecode(root: Path = ROOT) -> None:
    """Write contivpy's byte code, as ``pip install`` does (this environment sets
    PYTHONDONTWRITEBYTECODE, so without it every netmaster start would recompile its sources)."""
    import compileall

    compileall.compile_dir(str(root / "contivpy"), quiet=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_pid(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def vmrss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_ms(pid: int) -> float:
    """CPU time of a process so far, in ms (less load-dependent than wall time): the sum of its
    threads' run time in ns (``/proc/<pid>/task/*/schedstat``, first field: what the scheduler
    accounted, the same clock as ``time.process_time()``), else utime + stime in clock ticks
    (10 ms steps). Threads that already exited are not in the sum (netmaster's stay: the
    executor threads of ``getaddrinfo``)."""
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e6
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def request(port: int, method: str, path: str, body=None, timeout: float = 10.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, dict | list):
            body = json.dumps(body)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class KeepAliveClient:
    """One persistent HTTP/1.1 connection; ``request`` returns (status, body bytes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported by this client")
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


class Netmaster:
    def __init__(self, env: BenchEnv, extra: list[str] | None = None, root: Path = ROOT) -> None:
        self.env = env
        self.root = root  # the checkout whose contivpy runs (PYTHONPATH): this one, or a baseline
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the installed `netmaster` (bin/netmaster launcher next to this interpreter): what users run
        script = Path(sys.executable).with_name("netmaster")
        launch = [str(script)] if script.exists() else [sys.executable, "-m", "contivpy.netmaster"]
        self.cmd = [*launch, *netmaster_args(env.etcd_url, self.port), *(extra or [])]
        self.log_path = env.tmp / f"tbm-netmaster-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.t_spawn = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        pyenv = dict(os.environ, PYTHONPATH=str(self.root))
        with open(self.log_path, "ab") as log:
            self.t_spawn = time.perf_counter()
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=pyenv,
                cwd=str(self.root),
                start_new_session=True,
            )

    def first_answer(self, path: str = "/version", poll: float = 0.002, timeout: float = 20.0) -> float:
        """Poll ``path`` until it answers 200; seconds since spawn."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"netmaster exited: {self.log_path.read_text()[-2000:]}")
            try:
                if request(self.port, "GET", path, timeout=1)[0] == 200:
                    return time.perf_counter() - self.t_spawn
            except OSError:
                pass
            time.sleep(poll)
        raise RuntimeError(f"netmaster did not answer in {timeout}s: {self.log_path.read_text()[-2000:]}")

    def wait_leader(self, timeout: float = 20.0) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                status, text = request(self.port, "GET", "/info", timeout=2)
                if status == 200 and json.loads(text).get("current-state") == "leader":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        raise RuntimeError("netmaster did not become leader")

    def start(self) -> Netmaster:
        self.spawn()
        self.first_answer()
        self.wait_leader()
        return self

    def stop(self) -> None:
        stop_pid(self.proc)


class BenchEnv:
    """etcd in a temp dir + netmasters started on demand; everything torn down on exit."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tbm-bench-"))
        self.etcd_port = free_port()
        self.peer_port = free_port()
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.etcd: subprocess.Popen | None = None
        self.netmasters: list[Netmaster] = []

    def __enter__(self) -> BenchEnv:
        compile_bytecode()
        try:
            self._start_etcd()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            ETCD_BIN,
            "--name=tbm",
            f"--data-dir={self.tmp / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=tbm={peer}",
            "--initial-cluster-token=tbm",
        ]
        with open(self.tmp / "etcd.log", "ab") as log:
            self.etcd = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.etcd.poll() is not None:
                raise RuntimeError(f"etcd exited: {(self.tmp / 'etcd.log').read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.etcd_port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("etcd did not start")

    def wipe(self) -> None:
        subprocess.run(
            ["etcdctl", f"--endpoints={self.etcd_url}", "del", "--prefix", "/contiv.io"],
            env=dict(os.environ, ETCDCTL_API="3"),
            check=True,
            capture_output=True,
        )

    def netmaster(self, extra: list[str] | None = None, root: Path = ROOT) -> Netmaster:
        if root != ROOT:
            compile_bytecode(root)
        nm = Netmaster(self, extra, root)
        self.netmasters.append(nm)
        return nm

    def __exit__(self, *exc) -> None:
        for nm in self.netmasters:
            stop_pid(nm.proc)
        stop_pid(self.etcd)
        shutil.rmtree(self.tmp, ignore_errors=True)


async def post_each(port: int, n: int, request_of, conns: int = 4) -> None:
    """POST ``request_of(i) -> (path, body)`` for i in 0..n-1 over ``conns`` keep-alive connections
    (each takes the next i); the first answer other than 200 stops all with its status and body."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        c = KeepAliveClient(port)
        await c.connect()
        try:
            while not queue.empty():
                path, body = request_of(queue.get_nowait())
                st, data = await c.request("POST", path, json.dumps(body).encode())
                if st != 200:
                    raise RuntimeError(f"POST {path}: {st} {data[:300]!r}")
        finally:
            await c.close()

    async with asyncio.TaskGroup() as tg:
        for _ in range(conns):
            tg.create_task(worker())


def create_networks(port: int, n: int, prefix: str = "bench", conns: int = 4, mixed: bool = False) -> None:
    """Create ``n`` networks ``<prefix>NNNN`` (10.<100+i//256>.<i%256>.0/24; from i = 39,936 on
    11.x.y.0/24) over keep-alive conns; vxlan, or with ``mixed`` every other one vlan (each tag
    pool holds 4,094 networks)."""

    def request_of(i: int) -> tuple[str, dict]:
        name = f"{prefix}{i:04d}"
        body = {
            "networkName": name,
            "tenantName": "default",
            "encap": "vlan" if mixed and i % 2 else "vxlan",
            "subnet": f"{10 + (100 + i // 256) // 256}.{(100 + i // 256) % 256}.{i % 256}.0/24",
        }
        return f"/api/v1/networks/default:{name}/", body

    asyncio.run(post_each(port, n, request_of, conns))


def ratio_table(res: dict[str, list[float]], ref: str, runs: int, title: str = "") -> None:
    """Print ``res`` (path -> Gbit/s of each run) as a markdown table of medians and ratios to the
    median of ``ref`` (one of its keys). Shared by the data-plane benchmarks (bench_bgp, bench_routing)."""
    base = statistics.median(res[ref])
    print(title or f"iperf3 TCP 3 s, 1 stream, {runs} interleaved runs, Gbit/s")
    print("| path | median | vs reference | runs |")
    print("|---|---|---|---|")
    for name, xs in res.items():
        m = statistics.median(xs)
        print(f"| {name} | {m:.2f} | {m / base:.2f} | {', '.join(f'{x:.2f}' for x in xs)} |")


def datapath_counters(appctl) -> dict[str, int]:
    """ovs-vswitchd counters that tell where packets are handled: datapath flows installed
    (``dpctl/dump-flows``), upcalls (``coverage/show`` totals of ``upcall_*``, ``dpif_execute``,
    ``xlate_actions``) and recirculations. ``appctl`` is the host's ``ovs-appctl -t ...`` callable."""
    out = {"dp_flows": len([ln for ln in appctl("dpctl/dump-flows").splitlines() if ln.strip()])}
    for ln in appctl("coverage/show").splitlines():
        parts = ln.split()
        if len(parts) >= 2 and parts[0] in ("upcall_flow_limit_hit", "dpif_execute", "xlate_actions",
                                            "dpif_flow_put", "upcall_ukey_replace", "netdev_sent",
                                            "datapath_drop_upcall_error", "handler_duplicate_upcall"):  # fmt: skip
            total = ln.rsplit("total:", 1)[-1].strip() if "total:" in ln else "0"
            out[parts[0]] = int(total)
    return out


def measure_paths(
    paths: dict[str, tuple[str, str, str]], ref: str, runs: int, port: int, iperf, appctl
) -> None:
    """Interleaved iperf3 runs over ``paths`` (name -> (client netns/container, server, server IP)),
    ``runs`` rounds, each on a fresh port from ``port`` on; the first round also takes host 1's
    datapath counters (``appctl``: its ``ovs-appctl`` callable) around each path. Prints the ratio
    table against the path ``ref`` and the counters. Shared by bench_bgp and
    bench_routing; ``iperf(client, server, ip, port) -> Gbit/s`` is bench_netplugin's."""
    res: dict[str, list[float]] = {k: [] for k in paths}
    counters: dict[str, dict[str, int]] = {}
    for r in range(runs):
        for name, (cli, srv, ip) in paths.items():
            before = datapath_counters(appctl) if r == 0 else {}
            res[name].append(iperf(cli, srv, ip, port))
            if r == 0:
                after = datapath_counters(appctl)
                counters[name] = {k: after[k] - before.get(k, 0) for k in after}
                counters[name]["dp_flows"] = after["dp_flows"]
            port += 1
    ratio_table(res, ref, runs)
    print("ovs-vswitchd on host 1 during the first run of each path (deltas; dp_flows: installed after)")
    for name, c in counters.items():
        print(f"  {name}: {c}")


def time_interleaved(
    cmds: dict[str, list[str]], env: dict, n: int, lines: int | None = None
) -> dict[str, list[float]]:
    """Wall ms of each command: ``n`` rounds of one run each in turn (the machine's drift hits all
    alike), after a warm-up round. A run that fails, or (``lines``) prints another number of lines,
    stops the benchmark. Shared by bench_netctl and bench_netmaster --netctl."""
    out: dict[str, list[float]] = {name: [] for name in cmds}
    for r in range(n + 1):
        for name, cmd in cmds.items():
            t = time.perf_counter()
            p = subprocess.run(cmd, env=env, capture_output=True)
            if r:
                out[name].append((time.perf_counter() - t) * 1000)
            if p.returncode != 0 or (lines is not None and p.stdout.count(b"\n") != lines):
                raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return out
