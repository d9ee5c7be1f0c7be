"""Mesh and scale benchmark: N agents (10/25/50/100), one etcd + netmaster, vxlan convergence (issue 11).

Usage:  python bench/bench_mesh.py [--hosts 10,25,50] [--endpoints 0] [--nets 10] [--ep-rate 500]
        [--etcd-client http|grpc] [--servers-nice -10] [--profile FILE] [--json out.json]   (root)

What is started (prefix ``tms``, under one ``/tmp/tms-XXXX`` directory; a lock file
``/tmp/tms-mesh.lock`` keeps two runs apart; it does NOT use the test bed's lock, names or addresses):

- ``tmsul``: a Linux bridge in the root netns holding the control address ``192.168.214.254/24``;
  etcd and netmaster (``--mode test``, the installed launcher) listen there;
- host ``i`` (1..N): netns ``tmsh<i>`` with a veth ``tmsv<i>`` <-> ``eth1`` = ``192.168.214.<10+i>/24``
  (ctrl and VTEP address), its own ovsdb-server + ovs-vswitchd (userspace datapath, started inside
  the netns), and one netplugin (the installed launcher, ``--docker-host none``, its debug REST
  server on ``<host ip>:9090``). Nothing is shared between the agents but etcd and netmaster: the
  agent's bridge names and OpenFlow controller ports (127.0.0.1:6633/6634) are fixed, so agents
  cannot share one OVS; each has the full per-host stack.
- The underlay IP sits on the plain ``eth1``, not on an OVS ``br-phy``: the tunnels are configured
  but carry no traffic (a control-plane benchmark; the data path is measured by bench_netplugin).

Phases for each N (a fresh bed each time; the hosts are up before the clock starts):

1. ``mesh``: network ``mesh0`` (vxlan) exists; all N agents are spawned at once. Reported: time to
   the last ``/readyz`` 200, and time until EVERY host's OVS shows, read back with ``ovs-ofctl``,
   one VXLAN port per peer with its tunnel flow (``tun_id=<vni>,in_port=<vxif>``) and a flood
   bucket to every peer in ``mesh0``'s flood group (``dump-flows`` / ``dump-groups``). Per agent: CPU
   (utime+stime) at ready and at convergence, VmRSS after convergence.
2. ``network``: ``mesh1`` created over REST with the mesh up; time until every host has its tunnel
   flows and flood buckets for all peers.
3. ``endpoints`` (``--endpoints E``): E endpoints spread round-robin over the hosts and over
   ``--nets`` vxlan networks, each host having local endpoints on ``2`` of them only. First each
   host gets one real endpoint on each of its 2 networks through its agent's create path
   (``POST /debug/endpoints``): an agent watches only the networks it has local endpoints on
   (netplugin/served.py); ``--expect all`` makes the bench wait for every remote endpoint on every
   host instead (a tree from before served.py). The E endpoints' state is written into etcd the way the homing agent writes it at the end of a local create
   (``/contiv.io/oper/eps/<id>``, batches of 100 puts per txn, paced at ``--ep-rate`` endpoints/s,
   a batch that etcd does not answer within the client's 10 s is retried and counted): the
   veth/OVS-port/IPAM part of a
   local create is not exercised here (bench_netplugin measures it). Reported: write time, time
   until every host's flow count (``ovs-ofctl dump-aggregate``, each host read at most once a second:
   the read walks vswitchd's whole table) shows the remote endpoints' flows,
   and per agent the watch events received for endpoints on networks where it has no local
   endpoint (``contiv_netplugin_watch_events_total`` from its /metrics, split by the bench's layout).

Throughout: etcd requests/s (``grpc_server_handled_total`` from etcd's /metrics), etcd db size
(``etcd_mvcc_db_total_size_in_bytes``), netmaster CPU per phase, etcd CPU per phase.

Everything started here is stopped by PID in ``finally`` (agents, vswitchd/ovsdb-server from their pid
files, netmaster, etcd), then the netns, links and the directory are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import compile_bytecode, cpu_ms, free_port, vmrss_kb  # noqa: E402

PREFIX = "tms"
NET = "192.168.214"
CTRL_IP = f"{NET}.254"
LOCK_FILE = "/tmp/tms-mesh.lock"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
VXBR = "contivVxlanBridge"
BIN = Path(sys.executable).parent
ETCD_CLIENT = ["http"]  # the agents' and netmaster's etcd client (--etcd-client)
EXPECT = ["served"]  # --expect
#: etcd and netmaster run at this priority (--servers-nice): in a cluster they have their own
#: machines, here they share 2 cores with N agents and 2N OVS daemons ([] = no change)
NICE: list[str] = []
#: runs netplugin under cProfile with a CPU-time clock (wall time would count the waits for a core)
PROFILE_RUNNER = """
import cProfile, runpy, sys, time
out = sys.argv.pop(1)
sys.argv[0] = "netplugin"
prof = cProfile.Profile(time.process_time)
prof.enable()
try:
    runpy.run_module("contivpy.netplugin", run_name="__main__")
finally:
    prof.disable()
    prof.dump_stats(out)
"""


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> rc={r.returncode}: {r.stderr.strip()} {r.stdout.strip()}")
    return r.stdout


def http(method: str, url: str, body=None, timeout: float = 10.0) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_proc(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def cleanup_stale() -> None:
    """Leftovers of a crashed earlier run of this benchmark (our prefix only; we hold the lock)."""
    for d in Path("/tmp").glob(f"{PREFIX}-*"):
        if d.is_dir() and not d.is_symlink():
            for pidf in d.glob("h*/*.pid"):
                with contextlib.suppress(ValueError, OSError):
                    stop_pid(int(pidf.read_text()), 2)
            shutil.rmtree(d, ignore_errors=True)
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if re.fullmatch(rf"{PREFIX}h\d+", name):
            for pid in sh("ip", "netns", "pids", name, check=False).split():
                stop_pid(int(pid), 1)
            sh("ip", "netns", "del", name, check=False)
    for line in sh("ip", "-o", "link", "show", check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if re.fullmatch(rf"{PREFIX}v\d+", name) or name == f"{PREFIX}ul":
            sh("ip", "link", "del", name, check=False)


class Host:
    def __init__(self, bed: Bed, idx: int) -> None:
        self.bed, self.idx = bed, idx
        self.name = f"h{idx}"
        self.netns = f"{PREFIX}h{idx}"
        self.ip = f"{NET}.{10 + idx}"
        self.dir = bed.dir / self.name
        self.ovs_pids: list[int] = []
        self.agent: subprocess.Popen | None = None
        self.t_spawn = 0.0

    @property
    def db_sock(self) -> str:
        return str(self.dir / "db.sock")

    @property
    def mgmt(self) -> str:
        return f"unix:{self.dir / VXBR}.mgmt"

    @property
    def debug_url(self) -> str:
        return f"http://{self.ip}:9090"

    def start_ovs(self) -> None:
        d, ns = self.dir, self.netns
        d.mkdir(parents=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"{PREFIX}v{self.idx}", "type", "veth", "peer", "name", "eth1", "netns", ns)
        sh("ip", "link", "set", f"{PREFIX}v{self.idx}", "master", f"{PREFIX}ul", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{self.ip}/24", "dev", "eth1")
        sh("ip", "-n", ns, "link", "set", "eth1", "up")
        sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth1", "tx", "off")  # TCP to etcd crosses a veth
        sh("ovsdb-tool", "create", str(d / "conf.db"), OVS_SCHEMA)
        env = ["env", f"OVS_RUNDIR={d}", f"OVS_LOGDIR={d}", f"OVS_DBDIR={d}"]
        sh(
            "ip", "netns", "exec", ns, *env, "ovsdb-server", str(d / "conf.db"), f"--remote=punix:{self.db_sock}",
            f"--pidfile={d}/ovsdb-server.pid", f"--unixctl={d}/ovsdb-server.ctl",
            f"--log-file={d}/ovsdb-server.log", "-vconsole:off", "--no-chdir", "--detach",
        )  # fmt: skip
        self.ovs_pids.append(int((d / "ovsdb-server.pid").read_text()))
        sh("ovs-vsctl", f"--db=unix:{self.db_sock}", "--no-wait", "init")
        sh(
            "ip", "netns", "exec", ns, *env, "ovs-vswitchd", f"unix:{self.db_sock}",
            f"--pidfile={d}/ovs-vswitchd.pid", f"--unixctl={d}/ovs-vswitchd.ctl",
            f"--log-file={d}/ovs-vswitchd.log", "-vconsole:off", "--no-chdir", "--detach",
        )  # fmt: skip
        self.ovs_pids.append(int((d / "ovs-vswitchd.pid").read_text()))

    def spawn_agent(self, profile: str = "") -> None:
        launcher = [str(BIN / "netplugin")]
        if profile:  # cProfile in CPU time, written when the agent stops (SIGTERM at tear-down)
            launcher = [sys.executable, "-c", PROFILE_RUNNER, profile]
        cmd = [
            "ip", "netns", "exec", self.netns, *launcher,
            "--etcd-endpoints", self.bed.etcd_url, "--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge",
            "--host", self.name, "--vtep-ip", self.ip, "--ctrl-ip", self.ip,
            "--ovsdb", f"unix:{self.db_sock}", "--ovs-datapath", "netdev",
            "--plugin-socket", str(self.dir / "netplugin.sock"), "--docker-host", "none",
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CONTIV_NETPLUGIN_CNI_SOCKET": str(self.dir / "cni.sock"),
            "CONTIV_NETPLUGIN_GOBGP_DIR": str(self.dir / "gobgp"),
            "CONTIV_NETPLUGIN_DEBUG_LISTEN": f"{self.ip}:9090",
            "CONTIVPY_ETCD_CLIENT": ETCD_CLIENT[0],
        }
        with open(self.dir / "netplugin.log", "ab") as log:
            self.t_spawn = time.perf_counter()
            self.agent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)

    def ofctl(self, *args: str) -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow13", *args, check=False, timeout=30)

    def stop(self) -> None:
        stop_proc(self.agent)
        for pid in self.ovs_pids:
            stop_pid(pid)
        for pid in sh("ip", "netns", "pids", self.netns, check=False).split():
            stop_pid(int(pid), 2)
        sh("ip", "link", "del", f"{PREFIX}v{self.idx}", check=False)
        sh("ip", "netns", "del", self.netns, check=False)


class Bed:
    """etcd + netmaster on the control address, N hosts (netns + private OVS), agents on demand."""

    def __init__(self, n: int) -> None:
        self._lock = open(LOCK_FILE, "a+")  # noqa: SIM115 - released in close()
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        cleanup_stale()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/tmp"))
        self.hosts: list[Host] = []
        self.etcd: subprocess.Popen | None = None
        self.netmaster: subprocess.Popen | None = None
        self._logs: list = []
        try:
            sh("ip", "link", "add", f"{PREFIX}ul", "type", "bridge")
            sh("ip", "link", "set", f"{PREFIX}ul", "up")
            sh("ip", "addr", "add", f"{CTRL_IP}/24", "dev", f"{PREFIX}ul")
            sh("ethtool", "-K", f"{PREFIX}ul", "tx", "off")
            self._start_etcd()
            self._start_netmaster()
            self.hosts = [Host(self, i) for i in range(1, n + 1)]
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(Host.start_ovs, self.hosts))
        except BaseException:
            self.close()
            raise

    def _popen(self, name: str, cmd: list[str], env=None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "a")  # noqa: SIM115
        self._logs.append(log)
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)

    def _start_etcd(self) -> None:
        cport, pport = free_port(), free_port()
        self.etcd_url = f"http://{CTRL_IP}:{cport}"
        self.etcd_metrics = self.etcd_url + "/metrics"
        self.etcd = self._popen(
            "etcd",
            [
                *NICE, "etcd", "--name", "tmsetcd", "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                "--initial-cluster", f"tmsetcd=http://127.0.0.1:{pport}",
            ],
        )  # fmt: skip
        self._wait(lambda: http("GET", self.etcd_url + "/health", timeout=1)[0] == 200, 20, "etcd")

    def _start_netmaster(self) -> None:
        port = free_port()
        self.nm_url = f"http://{CTRL_IP}:{port}"
        addr = f"{CTRL_IP}:{port}"
        self.netmaster = self._popen(
            "netmaster",
            [
                *NICE, str(BIN / "netmaster"), "--etcd-endpoints", self.etcd_url, "--mode", "test", "--netmode", "vlan",
                "--fwdmode", "bridge", "--listen-url", addr, "--control-url", addr, "--rpc-port", "0",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT), "CONTIVPY_ETCD_CLIENT": ETCD_CLIENT[0]},
        )  # fmt: skip

        def leader():
            st, body = http("GET", self.nm_url + "/info", timeout=1)
            return st == 200 and json.loads(body).get("current-state") == "leader"

        self._wait(leader, 30, "netmaster")
        self._wait(lambda: self.etcdctl("get", "/contiv.io/master/config/global", "--print-value-only").strip(),
                   10, "global config")  # fmt: skip

    @staticmethod
    def _wait(pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if pred():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{what} did not come up in {timeout} s")

    def etcdctl(self, *args: str) -> str:
        return sh("etcdctl", "--endpoints", self.etcd_url, *args)

    def etcd_stats(self) -> dict[str, float]:
        """Total gRPC requests handled and the backend db size (etcd's /metrics)."""
        _, text = http("GET", self.etcd_metrics)
        reqs = 0.0
        size = 0.0
        for ln in text.splitlines():
            if ln.startswith("grpc_server_handled_total{"):
                reqs += float(ln.rsplit(" ", 1)[1])
            elif ln.startswith("etcd_mvcc_db_total_size_in_bytes "):
                size = float(ln.rsplit(" ", 1)[1])
        return {"requests": reqs, "db_bytes": size}

    def create_network(self, name: str, subnet: str) -> dict:
        body = {"tenantName": "default", "networkName": name, "encap": "vxlan", "subnet": subnet}
        st, out = http("POST", f"{self.nm_url}/api/v1/networks/default:{name}/", body)
        if st != 200:
            raise RuntimeError(f"network create failed: {st} {out}")
        return json.loads(out)

    def close(self) -> None:
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda h: h.stop(), self.hosts))
        stop_proc(self.netmaster)
        stop_proc(self.etcd)
        for f in self._logs:
            f.close()
        sh("ip", "link", "del", f"{PREFIX}ul", check=False)
        if os.environ.get("TMS_KEEP_LOGS"):
            print(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> Bed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- read-back from OVS -------------------------------------------------------------------------------
def mesh_state(h: Host, vni: int) -> tuple[int, int]:
    """(peers with a tunnel flow ``tun_id=<vni>,in_port=<vxif>`` in table 1, flood buckets
    ``set_field:<vni>->tun_id`` towards a peer), read back with ovs-ofctl."""
    flows = h.ofctl("dump-flows", h.mgmt, "table=1", "--no-stats")
    tun = f"tun_id={vni:#x},"
    ports = {
        m.group(1)
        for m in re.finditer(r"in_port=(\d+)", "\n".join(ln for ln in flows.splitlines() if tun in ln))
    }
    if len(ports) == 0:
        return 0, 0
    groups = h.ofctl("dump-groups", h.mgmt)
    buckets = groups.count(f"set_field:{vni:#x}->tun_id")
    return len(ports), buckets


def flow_count(h: Host) -> int:
    out = h.ofctl("dump-aggregate", h.mgmt)
    m = re.search(r"flow_count=(\d+)", out)
    return int(m.group(1)) if m else -1


def net_vni(bed: Bed, name: str) -> int:
    st = json.loads(bed.etcdctl("get", f"/contiv.io/state/nets/{name}.default", "--print-value-only"))
    return int(st["extPktTag"])


def wait_mesh(hosts: list[Host], vni: int, t0: float, timeout: float, ready: dict | None = None):
    """Poll every host of ``hosts`` until it has tunnel flows and flood buckets for all the others.
    ``ready`` (host -> (seconds, cpu ms)) is filled from the agents' logs on the way."""
    want = len(hosts) - 1
    done: dict[str, float] = {}
    cpu_done: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    last: dict[str, tuple[int, int]] = {}
    while len(done) < len(hosts) and time.perf_counter() < deadline:
        for h in hosts:
            if h.name in done:
                continue
            if ready is not None and h.name not in ready:
                log = h.dir / "netplugin.log"
                if "netplugin started on host" not in log.read_text(errors="replace"):
                    if h.agent is not None and h.agent.poll() is not None:
                        raise RuntimeError(f"agent {h.name} exited: {log.read_text()[-1500:]}")
                    continue
                ready[h.name] = (time.perf_counter() - h.t_spawn, cpu_ms(h.agent.pid))
            last[h.name] = st = mesh_state(h, vni)
            if st == (want, want):
                done[h.name] = time.perf_counter() - t0
                cpu_done[h.name] = cpu_ms(h.agent.pid)
        time.sleep(0.05)
    if len(done) < len(hosts):
        missing = {h.name: last.get(h.name) for h in hosts if h.name not in done}
        raise TimeoutError(
            f"mesh not converged after {timeout} s (want {want}): {dict(list(missing.items())[:8])}"
        )
    return done, cpu_done


def agent_metric(h: Host, name: str) -> dict[str, float]:
    _, text = http("GET", h.debug_url + "/metrics", timeout=10)
    out = {}
    for ln in text.splitlines():
        if ln.startswith(name):
            lab, _, v = ln.rpartition(" ")
            out[lab] = float(v)
    return out


def summary(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):.0f}, max {xs[-1]:.0f}"


# -- phases --------------------------------------------------------------------------------------------
def ovs_cpu_ms(bed: Bed) -> float:
    """CPU of every host's ovsdb-server and ovs-vswitchd so far."""
    total = 0.0
    for h in bed.hosts:
        for pid in h.ovs_pids:
            with contextlib.suppress(OSError):
                total += cpu_ms(pid)
    return total


def children_cpu_ms() -> float:
    """CPU of this benchmark's finished child processes (the ovs-ofctl/etcdctl read-backs)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def run_size(n: int, endpoints: int, nets: int, timeout: float, rate: float, profile: str = "") -> dict:
    res: dict = {"hosts": n}
    t_bed = time.perf_counter()
    with Bed(n + 1) as bed:  # the last host joins the running mesh in phase 2
        res["bed_up_s"] = time.perf_counter() - t_bed
        joiner = bed.hosts[-1]
        mesh = bed.hosts[:-1]
        bed.create_network("mesh0", "10.50.0.0/16")
        vni0 = net_vni(bed, "mesh0")
        nm_pid, etcd_pid = bed.netmaster.pid, bed.etcd.pid
        e0, nm0, et0 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)

        # 1. mesh: all agents spawned at once, the network already there
        ovs0, kids0 = ovs_cpu_ms(bed), children_cpu_ms()
        t0 = time.perf_counter()
        for h in mesh:
            h.spawn_agent(profile if h.idx == 1 else "")
        ready: dict[str, tuple[float, float]] = {}
        done, cpu_done = wait_mesh(mesh, vni0, t0, timeout, ready)
        t_mesh = max(done.values())
        e1, nm1, et1 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)
        res["mesh"] = {
            "converged_s": t_mesh,
            "last_ready_s": max(r[0] + (mesh[0].t_spawn - t0) for r in ready.values()),
            "ready_s_median": statistics.median(r[0] for r in ready.values()),
            "agent_cpu_ms_at_ready_median": statistics.median(r[1] for r in ready.values()),
            "agent_cpu_ms_at_ready_max": max(r[1] for r in ready.values()),
            "agent_cpu_ms_at_converged_median": statistics.median(cpu_done.values()),
            "agents_cpu_s_total": sum(cpu_done.values()) / 1000,
            "etcd_requests": e1["requests"] - e0["requests"],
            "etcd_req_per_s": (e1["requests"] - e0["requests"]) / t_mesh,
            "etcd_cpu_ms": et1 - et0,
            "netmaster_cpu_ms": nm1 - nm0,
            "ovs_cpu_s_total": (ovs_cpu_ms(bed) - ovs0) / 1000,
            "bench_ofctl_cpu_s": (children_cpu_ms() - kids0) / 1000,
        }
        # registration leases that expired under the load (peers seen leaving and coming back)
        logs = [(h.dir / "netplugin.log").read_text(errors="replace") for h in mesh]
        res["mesh"]["peer_deregistrations"] = sum(t.count("deregistered: keeping its tunnel") for t in logs)
        res["mesh"]["vtep_removals"] = sum(len(re.findall(r"VTEP \S+ removed", t)) for t in logs)
        time.sleep(2)
        rss = [vmrss_kb(h.agent.pid) / 1024 for h in mesh]
        res["mesh"]["agent_rss_mib_median"] = statistics.median(rss)
        res["mesh"]["agent_rss_mib_max"] = max(rss)
        print(
            f"  [{n} hosts] mesh: {json.dumps({k: round(v, 2) for k, v in res['mesh'].items()})}", flush=True
        )

        # 1b. one more host joins the running mesh: until all n + 1 hosts have the full mesh
        e0, nm0, et0 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)
        cpu0 = {h.name: cpu_ms(h.agent.pid) for h in mesh}
        ovs0 = ovs_cpu_ms(bed)
        t0 = time.perf_counter()
        joiner.spawn_agent()
        ready = {}
        done, cpu_done = wait_mesh(bed.hosts, vni0, t0, timeout, ready)
        res["join"] = {
            "converged_s": max(done.values()),
            "joiner_ready_s": ready[joiner.name][0],
            "joiner_cpu_ms_at_ready": ready[joiner.name][1],
            "peer_cpu_ms_median": statistics.median(cpu_done[k] - cpu0[k] for k in cpu0),
            "etcd_requests": bed.etcd_stats()["requests"] - e0["requests"],
            "netmaster_cpu_ms": cpu_ms(nm_pid) - nm0,
            "etcd_cpu_ms": cpu_ms(etcd_pid) - et0,
            "ovs_cpu_s_total": (ovs_cpu_ms(bed) - ovs0) / 1000,
        }
        print(
            f"  [{n} hosts] join: {json.dumps({k: round(v, 2) for k, v in res['join'].items()})}", flush=True
        )

        # 2. a new vxlan network with the mesh up
        e0, nm0, et0 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)
        cpu0 = {h.name: cpu_ms(h.agent.pid) for h in bed.hosts}
        t0 = time.perf_counter()
        bed.create_network("mesh1", "10.51.0.0/16")
        vni1 = net_vni(bed, "mesh1")
        done, cpu_done = wait_mesh(bed.hosts, vni1, t0, timeout)
        t_net = max(done.values())
        e1, nm1, et1 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)
        res["network"] = {
            "converged_s": t_net,
            "agent_cpu_ms_median": statistics.median(cpu_done[k] - cpu0[k] for k in cpu0),
            "etcd_requests": e1["requests"] - e0["requests"],
            "netmaster_cpu_ms": nm1 - nm0,
            "etcd_cpu_ms": et1 - et0,
        }
        print(
            f"  [{n} hosts] network: {json.dumps({k: round(v, 2) for k, v in res['network'].items()})}",
            flush=True,
        )

        if endpoints:
            res["endpoints"] = endpoints_phase(bed, endpoints, nets, timeout, rate)
        res["etcd_db_mib"] = bed.etcd_stats()["db_bytes"] / 2**20
        res["netmaster_rss_mib"] = vmrss_kb(nm_pid) / 1024
    return res


def endpoints_phase(bed: Bed, total: int, nets: int, timeout: float, rate: float) -> dict:
    """``total`` endpoints, round-robin over the hosts; host i's endpoints alternate between its two
    networks ``ep<i % nets>`` and ``ep<(i+1) % nets>``; written as the homing agents write them."""
    import asyncio

    from contivpy.common.errors import StoreError
    from contivpy.common.kv import open_store
    from contivpy.common.kv.base import Put
    from contivpy.common.netaddr import mac_from_ip
    from contivpy.model import keys
    from contivpy.model.state import OperEndpoint

    n = len(bed.hosts)
    for k in range(nets):
        bed.create_network(f"ep{k}", f"10.{60 + k}.0.0/16")
    time.sleep(1)
    local_nets = {h.name: {(h.idx) % nets, (h.idx + 1) % nets} for h in bed.hosts}
    # one real local endpoint per host and network of the host (the agent's own create path, veth
    # and OVS port included): an agent serves the networks it has local endpoints on (served.py)
    seeds: list[tuple[Host, int]] = []

    def seed(hk: tuple[Host, int]) -> None:
        h, k = hk
        body = {"network": f"ep{k}", "endpointID": f"tmsseed{h.idx}x{k}"}
        st, out = http("POST", h.debug_url + "/debug/endpoints", body, timeout=120)
        if st != 200:
            raise RuntimeError(f"seed endpoint on {h.name} ep{k}: {st} {out}")

    seeds = [(h, k) for h in bed.hosts for k in sorted(local_nets[h.name])]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(seed, seeds))
    time.sleep(1)
    # wait until every agent has the networks (flows settle), then take each host's baseline
    base = {}
    for h in bed.hosts:
        prev = -1
        while (c := flow_count(h)) != prev:
            prev = c
            time.sleep(0.3)
        base[h.name] = c
    layout: list[tuple[Host, int]] = []  # (homing host, network index)
    next_ip = [100 * 256 + 1] * nets  # 10.6x.100.1 on: clear of the seeds' allocated addresses
    recs: list[tuple[str, str]] = []
    for j in range(total):
        h = bed.hosts[j % n]
        k = (h.idx + (j // n) % 2) % nets
        ip_n = next_ip[k]
        next_ip[k] += 1
        ip = f"10.{60 + k}.{ip_n // 256}.{ip_n % 256}"
        ep_id = keys.endpoint_state_id(f"ep{k}", "default", f"tms{j:05d}")
        rec = OperEndpoint(
            id=ep_id, netID=f"ep{k}.default", endpointID=f"tms{j:05d}", contUUID=f"tms{j:05d}",
            ipAddress=ip, macAddress=mac_from_ip(ip), homingHost=h.name, intfName="",
            portName=f"vvport{j // n + 1}", vtepIP=h.ip,
        )  # fmt: skip
        recs.append((keys.ep_oper(ep_id), rec.to_json()))
        layout.append((h, k))
    # what each agent must program: every remote endpoint (EXPECT "all": the design before
    # served.py), or those of the networks it serves; the seeds are in the flow baseline already
    if EXPECT[0] == "all":
        want = {h.name: sum(1 for hh, _ in layout if hh is not h) for h in bed.hosts}
        seed_remote = {h.name: sum(1 for hh, _ in seeds if hh is not h) for h in bed.hosts}
    else:
        want = {
            h.name: sum(1 for hh, k in layout if hh is not h and k in local_nets[h.name]) for h in bed.hosts
        }
        seed_remote = {
            h.name: sum(1 for hh, k in seeds if hh is not h and k in local_nets[h.name]) for h in bed.hosts
        }

    nm_pid, etcd_pid = bed.netmaster.pid, bed.etcd.pid
    ev0 = {h.name: agent_metric(h, "contiv_netplugin_watch_events_total") for h in bed.hosts}
    e0, nm0, et0 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)
    cpu0 = {h.name: cpu_ms(h.agent.pid) for h in bed.hosts}
    ovs0, kids0 = ovs_cpu_ms(bed), children_cpu_ms()

    retries: list[int] = []

    async def write() -> None:
        kv = open_store(bed.etcd_url)
        try:
            start = time.perf_counter()
            for i in range(0, len(recs), 100):
                if rate:  # paced: endpoints appear at ``rate``/s overall, as creates would
                    await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                for attempt in range(30):  # a busy etcd can miss the client's 10 s timeout
                    try:
                        await kv.txn([], [Put(k, v) for k, v in recs[i : i + 100]])
                        break
                    except StoreError:
                        retries.append(i)
                        if attempt == 29:
                            raise
        finally:
            await kv.close()

    t0 = time.perf_counter()
    asyncio.run(write())
    t_write = time.perf_counter() - t0
    # every host: baseline + per-endpoint flows of every endpoint homed elsewhere
    per_ep = None
    done: dict[str, float] = {}
    last: dict[str, int] = {}
    deadline = time.perf_counter() + timeout
    pending = list(bed.hosts)
    probe = bed.hosts[0]  # the one agent whose /metrics is read (a scrape walks its flow cache)
    while pending and time.perf_counter() < deadline:
        t_round = time.perf_counter()
        for h in list(pending):
            c = flow_count(h)
            last[h.name] = c
            remote = want[h.name]
            if per_ep is None and h is probe and c > base[h.name]:
                # the flows per remote endpoint, learnt once this agent counts all of them applied
                m = agent_metric(h, "contiv_netplugin_endpoints")
                if m.get('contiv_netplugin_endpoints{kind="remote"}') == remote + seed_remote[h.name]:
                    time.sleep(0.5)
                    c = flow_count(h)
                    per_ep = (c - base[h.name]) / remote
            if per_ep is not None and c - base[h.name] >= per_ep * remote:
                done[h.name] = time.perf_counter() - t0
                pending.remove(h)
        # at most one read-back per host and second: dump-aggregate walks the whole flow table
        time.sleep(max(0.1, 1.0 - (time.perf_counter() - t_round)))
    if pending:
        raise TimeoutError(f"endpoints not converged on {[h.name for h in pending][:10]}: {last}")
    t_conv = max(done.values())
    e1, nm1, et1 = bed.etcd_stats(), cpu_ms(nm_pid), cpu_ms(etcd_pid)
    cpu = [cpu_ms(h.agent.pid) - cpu0[h.name] for h in bed.hosts]
    time.sleep(1)
    rss = [vmrss_kb(h.agent.pid) / 1024 for h in bed.hosts]
    pre = keys.OPER_EPS
    lab = f'contiv_netplugin_watch_events_total{{prefix="{pre}"}}'
    received, irrelevant, received_irrelevant = [], [], []
    for h in bed.hosts:
        ev1 = agent_metric(h, "contiv_netplugin_watch_events_total")
        got = ev1.get(lab, 0) - ev0[h.name].get(lab, 0)
        received.append(got)
        irrelevant.append(sum(1 for hh, k in layout if hh is not h and k not in local_nets[h.name]))
        # what it received beyond the endpoints of its own networks (its own records included)
        received_irrelevant.append(max(0, got - sum(1 for _, k in layout if k in local_nets[h.name])))
    out = {
        "endpoints": total,
        "networks": nets,
        "write_rate_per_s": rate,
        "write_s": t_write,
        "write_retries": len(retries),
        "converged_s": t_conv,
        "flows_per_remote_ep": per_ep or 0,
        "agent_cpu_ms_median": statistics.median(cpu),
        "agents_cpu_s_total": sum(cpu) / 1000,
        "agent_rss_mib_median": statistics.median(rss),
        "agent_rss_mib_max": max(rss),
        "etcd_requests": e1["requests"] - e0["requests"],
        "etcd_req_per_s": (e1["requests"] - e0["requests"]) / t_conv,
        "etcd_cpu_ms": et1 - et0,
        "netmaster_cpu_ms": nm1 - nm0,
        "ovs_cpu_s_total": (ovs_cpu_ms(bed) - ovs0) / 1000,
        "bench_ofctl_cpu_s": (children_cpu_ms() - kids0) / 1000,
        "watch_events_per_agent_median": statistics.median(received),
        "irrelevant_endpoints_per_agent_median": statistics.median(irrelevant),
        "irrelevant_events_received_per_agent_median": statistics.median(received_irrelevant),
        "remote_endpoints_programmed_per_agent_median": statistics.median(want.values()),
    }
    print(f"  [{n} hosts] endpoints: {json.dumps({k: round(v, 2) for k, v in out.items()})}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="10,25,50", help="comma list of mesh sizes")
    ap.add_argument("--endpoints", type=int, default=0, help="endpoints spread over the hosts (0: none)")
    ap.add_argument("--nets", type=int, default=10, help="vxlan networks the endpoints are spread over")
    ap.add_argument("--ep-rate", type=float, default=500, help="endpoints written per second (0: at once)")
    ap.add_argument("--etcd-client", choices=("http", "grpc"), default="http",
                    help="CONTIVPY_ETCD_CLIENT of the agents and netmaster (grpc: aetcd, etcd's gRPC API)")  # fmt: skip
    ap.add_argument("--servers-nice", type=int, default=0,
                    help="run etcd and netmaster under `nice -n VALUE` (e.g. -10: as if on their own machines)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--expect", choices=("served", "all"), default="served",
                    help="remote endpoints each agent must program: those of the networks it serves "
                    "(netplugin/served.py), or all (to measure a tree from before served.py)")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--profile", default="", help="run host 1's agent under cProfile, written to this file")
    a = ap.parse_args()
    # SIGTERM (and SIGINT, which a background shell job ignores) end the run through the normal
    # clean-up: every ``finally`` below stops what it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.geteuid() != 0:
        sys.exit("bench_mesh needs root (netns, veth, OVS)")
    ETCD_CLIENT[0] = a.etcd_client
    EXPECT[0] = a.expect
    if a.servers_nice:
        NICE[:] = ["nice", "-n", str(a.servers_nice)]
    compile_bytecode()
    print(
        f"etcd client {a.etcd_client}, servers nice {a.servers_nice}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = []
    for n in [int(x) for x in a.hosts.split(",")]:
        for r in range(a.runs):
            print(f"{n} hosts, run {r + 1}", flush=True)
            results.append(run_size(n, a.endpoints, a.nets, a.timeout, a.ep_rate, a.profile))
            if a.json:  # after every run: a later failure keeps what was measured
                Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
