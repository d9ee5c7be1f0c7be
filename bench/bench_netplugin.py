"""netplugin data-plane control benchmark on the two-host test bed (real etcd, netmaster, OVS, agents).

    python bench/bench_netplugin.py [-n 50] [--parallel 10] [--many 200] [--json out.json]
    python bench/bench_netplugin.py --startup [--runs 7] [--startup-eps 100]
    python bench/bench_netplugin.py --rate [-n 200] [--parallel 10] [--runs 3]
    python bench/bench_netplugin.py --etcd-counts [-n 50] [--parallel 10] [--group]
    python bench/bench_netplugin.py --ovs-costs [-n 100] [--parallel 10]

Measures (printed as a Markdown table):
- endpoint create latency, sequential: request (agent endpoint API, same code path as the Docker
  plugin's CreateEndpoint) -> netmaster /plugin/createEndpoint -> veth + OVS port -> flows installed
  (the agent returns only after the OpenFlow barrier, so the 3 endpoint flows are in OVS when it
  returns; verified afterwards by dump-flows), p50/p90/p99;
- remote learning: create on host 1 -> MAC flow visible on host 2 (dump-flows polled every 5 ms);
- endpoint delete latency, sequential;
- endpoints/s with N concurrent clients;
- netplugin VmRSS idle and with many local endpoints;
- iperf3 TCP throughput container<->container over VXLAN vs host<->host over br-phy (3 s each, ratio).

``--startup``: agent start-up to ready. Host 1's agent (with ``--startup-eps`` local endpoints and
as many remote ones from host 2) is restarted ``--runs`` times with the installed ``netplugin``
launcher (``python -S``, byte code compiled first as ``pip install`` does); each run reports the
wall time from spawn to the first 200 of ``/readyz`` (first sync done) and the agent's CPU time
(utime + stime from /proc) at that moment, plus its VmRSS 2 s later. CPU time is the figure to
quote on a shared machine: it moves much less with the load than wall time.

``--poll-ms`` (default 5): how often ``/readyz`` is polled; each probe costs the agent an HTTP
request (~0.2-0.3 ms of its CPU), so the default adds some 30-60 ms to the CPU figure of a 1 s start.

``--profile FILE`` (with ``--startup``): one more restart after the measured ones, under cProfile
(``python -m cProfile``, not the launcher), stopped as soon as it is ready; read the file with
``python -m pstats FILE`` (``sort tottime``, ``stats 30``).

``--rate``: endpoint create throughput only: ``-n`` sequential creates (p50 latency, agent CPU
per create), then ``-n`` creates from ``--parallel`` clients (endpoints/s, agent CPU per create),
then deletes; ``--runs`` rounds on one test bed, medians printed; also the CPU per create of the other
processes and, where the agent has them, the mean batch sizes of its group commits (/metrics).

``--ovs-costs``: what endpoint creates cost ovs-vswitchd: link events per create (``ip monitor
link`` in host 1's netns, by kind) and vswitchd CPU per create, for ``-n`` sequential creates then
``-n`` from ``--parallel`` clients; then vswitchd CPU per link event (alias changes 20 ms apart) on
a device that is not an OVS port and on one that is, and for one burst of link events on every
endpoint's OVS port at once.

``--etcd-counts``: etcd requests per endpoint create and per delete, by kind, per process
(netmaster, the creating agent h1, the other agent h2), from the ``contiv_etcd_*`` counters of
their /metrics (tests/support/etcdcount.py): ``-n`` sequential creates on h1, then ``-n`` deletes,
then ``-n`` creates from ``--parallel`` clients and their deletes; each phase ends once every
counter has stopped moving (the other host's watch events included). Counts, not timings: the
same on a busy machine. ``--group``: the endpoints join an endpoint group (one more record per
create). Also prints the CPU per create of netmaster, etcd and the two agents (from /proc) and
the load average, as secondary figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.testbed import Testbed, http_json  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def create(host, net: str, ep: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    st, info = http_json(
        "POST", host.debug_url + "/debug/endpoints", {"network": net, "endpointID": ep}, timeout=60
    )
    dt = (time.perf_counter() - t0) * 1000
    if st != 200:
        raise RuntimeError(f"create {ep}: {info}")
    return dt, info


def container_ep(host, net: str, ep: str, group: str = ""):
    """An endpoint through the agent's endpoint API, its port moved into a namespace of its own
    (what Docker does): ``(info, container)``. Shared by bench_service.py and bench_qos.py."""
    st, info = http_json(
        "POST",
        host.debug_url + "/debug/endpoints",
        {"network": net, "endpointID": ep, "group": group},
        timeout=60,
    )
    if st != 200:
        raise RuntimeError(f"create {ep}: {info}")
    return info, host.container(info["port_name"], f"{info['ip_address']}/{info['prefix_len']}", None)


def delete(host, net: str, ep: str) -> float:
    t0 = time.perf_counter()
    st, out = http_json("DELETE", f"{host.debug_url}/debug/endpoints/default/{net}/{ep}", timeout=60)
    if st != 200:
        raise RuntimeError(f"delete {ep}: {out}")
    return (time.perf_counter() - t0) * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def iperf(client_ns: str, server_ns: str, server_ip: str, port: int) -> float:
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.3)
        out = subprocess.run(
            ["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-p", str(port), "-t", "3", "-J"],
            capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        srv.kill()
        srv.wait()


def stats(name: str, xs: list[float]) -> dict:
    print(
        f"{name}: p50 {statistics.median(xs):.1f} ms, p99 {pct(xs, 99):.1f} ms", file=sys.stderr, flush=True
    )
    return {
        "metric": name,
        "n": len(xs),
        "p50": statistics.median(xs),
        "p90": pct(xs, 90),
        "p99": pct(xs, 99),
    }


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def spawn_launcher(host, profile: str = "") -> subprocess.Popen:
    """Host's agent started like ``Host.start_netplugin`` but with the installed launcher; with
    ``profile``, under cProfile instead (``python -m cProfile -o PROFILE -m contivpy.netplugin``)."""
    launcher = [str(Path(sys.executable).with_name("netplugin"))]
    if profile:
        launcher = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "contivpy.netplugin"]
    cmd = ["ip", "netns", "exec", host.netns, *launcher, *host.netplugin_args()]
    env = {**os.environ, "CONTIV_NETPLUGIN_CNI_SOCKET": host.cni_socket, "PYTHONPATH": str(ROOT)}
    if host.debug_on_host_ip:
        env["CONTIV_NETPLUGIN_DEBUG_LISTEN"] = f"{host.ip}:9090"
    log = open(host.dir / "netplugin.log", "a")  # noqa: SIM115 - closed by stop_netplugin
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)
    p._tnp_log = log  # type: ignore[attr-defined]
    return p


def wait_ready(host, p: subprocess.Popen, poll_ms: float = 5) -> None:
    """Poll the agent's ``/readyz`` every ``poll_ms`` until it answers 200."""
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"netplugin exited: {host.log_tail()}")
        try:
            st, _ = http_json("GET", host.debug_url + "/readyz", timeout=1)
        except OSError:
            st = 0
        if st == 200:
            return
        time.sleep(poll_ms / 1000)


def settled_flows(host, quiet: float = 1.0, limit: float = 60.0) -> list[str]:
    """The host's flow table once it has not changed for ``quiet`` seconds: the remote endpoints
    created on the other host reach this one through etcd watches after their creates return, so a
    dump taken at once may miss some of them (and the restarts would then seem to change the flows)."""
    first = flows = host.flows()
    t0 = since = time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < t0 + limit:
        time.sleep(0.2)
        now = host.flows()
        if now != flows:
            flows, since = now, time.monotonic()
    late = len(set(flows) ^ set(first))
    print(f"flow table settled {since - t0:.1f} s after the creates; {late} flows differed from the first dump",
          file=sys.stderr, flush=True)  # fmt: skip
    return flows


def bench_startup(a) -> None:
    import compileall

    compileall.compile_dir(str(ROOT / "contivpy"), quiet=1)
    wall, cpu, rss = [], [], []
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("bnet", "10.120.0.0/16")
        with ThreadPoolExecutor(10) as ex:
            list(ex.map(lambda i: create(h1, "bnet", f"u{i}"), range(a.startup_eps)))
            list(ex.map(lambda i: create(h2, "bnet", f"r{i}"), range(a.startup_eps)))
        flows0 = settled_flows(h1)
        for run in range(a.runs + (1 if a.profile else 0)):
            h1.stop_netplugin()
            t0 = time.perf_counter()
            h1.netplugin = p = spawn_launcher(h1, a.profile if run == a.runs else "")
            wait_ready(h1, p, a.poll_ms)
            if run == a.runs:  # the profiled run: stopped at once (cProfile writes its file on exit)
                h1.stop_netplugin()
                print(f"profile of one start-up to ready written to {a.profile}", file=sys.stderr)
                break
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append(cpu_ms(p.pid))
            time.sleep(2)
            rss.append(rss_mb(p.pid))
            print(f"start-up: ready after {wall[-1]:.0f} ms, {cpu[-1]:.0f} ms CPU, VmRSS {rss[-1]:.1f} MiB",
                  file=sys.stderr, flush=True)  # fmt: skip
        if a.profile:
            h1.netplugin = p = spawn_launcher(h1)
            wait_ready(h1, p)
        flows1 = h1.flows()
        if flows1 != flows0:
            gone, new = sorted(set(flows0) - set(flows1)), sorted(set(flows1) - set(flows0))
            raise AssertionError(f"flows differ after the restarts: gone {gone[:10]}, new {new[:10]}")
    med = statistics.median
    print(f"agent start-up with {a.startup_eps} local + {a.startup_eps} remote endpoints, {a.runs} runs: "
          f"ready after {med(wall):.0f} ms (median; {', '.join(f'{x:.0f}' for x in wall)}), "
          f"CPU {med(cpu):.0f} ms ({', '.join(f'{x:.0f}' for x in cpu)}), "
          f"VmRSS {med(rss):.1f} MiB ({', '.join(f'{x:.1f}' for x in rss)})")  # fmt: skip


def group_commits(host) -> dict[str, list[float]]:
    """The agent's group commit counters (``writer -> [batches, items]``) from its /metrics (absent
    before this change: empty)."""
    import re

    text = ""
    try:
        with urllib.request.urlopen(host.debug_url + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        pass
    out: dict[str, list[float]] = {}
    for m in re.finditer(
        r'contiv_netplugin_group_commit_(batches|items)_total\{writer="([^"]+)"\} (\S+)', text
    ):
        out.setdefault(m.group(2), [0.0, 0.0])[0 if m.group(1) == "batches" else 1] = float(m.group(3))
    return out


def bench_rate(a) -> None:
    seq, seq_cpu, par, par_cpu, dl = [], [], [], [], []
    sizes: dict[str, list[float]] = {}
    others: dict[str, list[float]] = {}
    with Testbed(2) as bed:
        bed.start_all()
        h1 = bed.hosts[1]
        bed.create_network("bnet", "10.120.0.0/16")
        pid = h1.netplugin.pid
        procs = {"netmaster": bed.netmaster_proc.pid, "etcd": bed.etcd_proc.pid}
        procs["ovsdb-server"], procs["ovs-vswitchd"] = h1._ovs_pids[:2]
        create(h1, "bnet", "warm")
        delete(h1, "bnet", "warm")
        for r in range(a.runs):
            c0 = cpu_ms(pid)
            lat = [create(h1, "bnet", f"s{r}-{i}")[0] for i in range(a.n)]
            c1, t1 = cpu_ms(pid), time.perf_counter()
            o1 = {k: cpu_ms(v) for k, v in procs.items()}
            g1 = group_commits(h1)
            with ThreadPoolExecutor(a.parallel) as ex:
                list(ex.map(lambda i, r=r: create(h1, "bnet", f"p{r}-{i}"), range(a.n)))
            t2, c2 = time.perf_counter(), cpu_ms(pid)
            for w, (b, n) in group_commits(h1).items():
                b0, n0 = g1.get(w, [0.0, 0.0])
                if b > b0:
                    sizes.setdefault(w, []).append((n - n0) / (b - b0))
            for k, v in procs.items():
                others.setdefault(k, []).append((cpu_ms(v) - o1[k]) / a.n)
            flows = "\n".join(h1.flows())
            assert flows.count("nw_dst=10.120.") >= 2 * a.n, "flows missing"
            with ThreadPoolExecutor(a.parallel) as ex:
                dl += list(ex.map(lambda i, r=r: delete(h1, "bnet", f"p{r}-{i}"), range(a.n)))
                dl += list(ex.map(lambda i, r=r: delete(h1, "bnet", f"s{r}-{i}"), range(a.n)))
            seq.append(statistics.median(lat))
            seq_cpu.append((c1 - c0) / a.n)
            par.append(a.n / (t2 - t1))
            par_cpu.append((c2 - c1) / a.n)
            print(f"round {r}: sequential p50 {seq[-1]:.1f} ms, {seq_cpu[-1]:.1f} ms agent CPU/create; "
                  f"{a.parallel} clients {par[-1]:.1f} creates/s, {par_cpu[-1]:.1f} ms agent CPU/create",
                  file=sys.stderr, flush=True)  # fmt: skip
    med = statistics.median
    print(f"{a.runs} rounds of {a.n}: sequential create p50 {med(seq):.1f} ms (rounds: "
          f"{', '.join(f'{x:.1f}' for x in seq)}), agent CPU {med(seq_cpu):.1f} ms/create; "
          f"{a.parallel} clients {med(par):.1f} creates/s ({', '.join(f'{x:.1f}' for x in par)}), "
          f"agent CPU {med(par_cpu):.1f} ms/create")  # fmt: skip
    print("CPU ms per create with parallel clients, other processes: "
          + ", ".join(f"{k} {med(v):.1f}" for k, v in others.items()))  # fmt: skip
    if sizes:
        print("mean group commit batch size with parallel clients: "
              + ", ".join(f"{k} {med(v):.1f}" for k, v in sorted(sizes.items())))  # fmt: skip


def bench_ovs_costs(a) -> None:
    """``--ovs-costs``: what endpoint creates make ovs-vswitchd do (docs/benchmarks.md, "Endpoint
    creates with 10 clients"): link events per create in the host's netns (``ip monitor link``),
    vswitchd CPU per create, then vswitchd CPU per link event (an alias change, 20 ms apart) on a
    device that is not an OVS port (``vportN``) and on one that is (``vvportN``)."""
    import re
    import subprocess

    with Testbed(2) as bed:
        bed.start_all()
        h1 = bed.hosts[1]
        bed.create_network("bnet", "10.120.0.0/16")
        vs = h1._ovs_pids[1]
        create(h1, "bnet", "warm")
        delete(h1, "bnet", "warm")
        names: list[str] = []
        created: list[str] = []
        for mode in ("sequential", f"{a.parallel} clients"):
            out = h1.dir / "ip-monitor.txt"  # a file, not a pipe: a full pipe makes ip lose events
            with out.open("w") as f:
                mon = subprocess.Popen(["ip", "-n", h1.netns, "-o", "monitor", "link"], stdout=f)
            time.sleep(0.3)
            c0 = cpu_ms(vs)
            eps = [f"{mode[0]}{i}" for i in range(a.n)]
            created += eps
            if mode == "sequential":
                infos = [create(h1, "bnet", ep)[1] for ep in eps]
            else:
                with ThreadPoolExecutor(a.parallel) as ex:
                    infos = [i for _, i in ex.map(lambda ep: create(h1, "bnet", ep), eps)]
            time.sleep(2)  # the kernel's linkwatch events come up to a second later
            cpu = (cpu_ms(vs) - c0) / a.n
            mon.terminate()
            mon.wait()
            lines = out.read_text().splitlines()
            kinds: dict[str, int] = {}
            for ln in lines:
                k = re.sub(r"vv?port\d+", lambda m: "vvportN" if m.group(0).startswith("vv") else "vportN",
                           " ".join(ln.split()[1:3]))  # fmt: skip
                kinds[k] = kinds.get(k, 0) + 1
            print(f"{mode}: {len(lines) / a.n:.2f} link events per create, ovs-vswitchd {cpu:.1f} ms CPU per create "
                  "(including 2 s idle)")  # fmt: skip
            for k, v in sorted(kinds.items(), key=lambda x: -x[1]):
                if v >= a.n / 10:
                    print(f"  {v / a.n:.2f}  {k}")
            names += [i["port_name"] for i in infos]
        for what, dev in (("not an OVS port", names[0]), ("an OVS port", "v" + names[0])):
            k = 50
            c0 = cpu_ms(vs)
            for i in range(k):
                subprocess.run(
                    ["ip", "-n", h1.netns, "link", "set", "dev", dev, "alias", f"b{i}"], check=True
                )
                time.sleep(0.02)
            time.sleep(0.5)
            print(f"link event on {what} ({dev}), {2 * a.n} endpoints: ovs-vswitchd {(cpu_ms(vs) - c0) / k:.2f} ms "
                  "CPU per event (including ~30 ms idle)")  # fmt: skip
        burst = "".join(f"link set dev v{n} alias burst\n" for n in names)
        c0 = cpu_ms(vs)
        subprocess.run(["ip", "-n", h1.netns, "-batch", "-"], input=burst, text=True, check=True)
        time.sleep(1)
        print(f"one burst of {len(names)} link events, one on each OVS port (ip -batch): ovs-vswitchd "
              f"{cpu_ms(vs) - c0:.1f} ms CPU in all (including 1 s idle)")  # fmt: skip
        with ThreadPoolExecutor(a.parallel) as ex:
            list(ex.map(lambda ep: delete(h1, "bnet", ep), created))


def bench_etcd_counts(a) -> None:
    from tests.support import etcdcount as ec

    def phase(name, urls, costs, fn, procs):
        before = ec.settle(urls, costs)
        c0 = {k: cpu_ms(v) for k, v in procs.items()}
        fn()
        after = ec.settle(urls, costs)
        cpu = {k: (cpu_ms(v) - c0[k]) / a.n for k, v in procs.items()}
        per = {p: ec.delta(after[p], before[p], costs.get(p)) for p in urls}
        print(f"\n### {name}: per operation (n={a.n}), load average {os.getloadavg()[0]:.1f}\n")
        print(ec.table(per, a.n))
        print(
            "\nrequests (timer-driven ones left out: watch, lease, txn_check) / writes per operation: "
            + ", ".join(f"{p} {ec.requests(d) / a.n:.2f} / {ec.writes(d) / a.n:.2f}" for p, d in per.items())
        )
        print("CPU ms per operation (including the settle wait): " + ", ".join(
            f"{k} {v:.1f}" for k, v in cpu.items()), flush=True)  # fmt: skip
        return per

    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("bnet", "10.120.0.0/16")
        group = ""
        if a.group:
            group = "bgrp"
            bed.netctl("group", "create", "bnet", group)
        urls = {"netmaster": bed.netmaster_url, "agent h1": h1.debug_url, "agent h2": h2.debug_url}
        costs = {"netmaster": ec.SCRAPE_COST}
        procs = {"netmaster": bed.netmaster_proc.pid, "etcd": bed.etcd_proc.pid,
                 "agent h1": h1.netplugin.pid, "agent h2": h2.netplugin.pid}  # fmt: skip

        def mk(ep):
            st, info = http_json("POST", h1.debug_url + "/debug/endpoints",
                                 {"network": "bnet", "endpointID": ep, "group": group}, timeout=60)  # fmt: skip
            if st != 200:
                raise RuntimeError(f"create {ep}: {info}")

        mk("warm")
        delete(h1, "bnet", "warm")
        phase("sequential create", urls, costs, lambda: [mk(f"s{i}") for i in range(a.n)], procs)
        assert "\n".join(h1.flows()).count("nw_dst=10.120.") >= a.n, "flows missing"
        phase(
            "sequential delete", urls, costs, lambda: [delete(h1, "bnet", f"s{i}") for i in range(a.n)], procs
        )

        def par_create():
            with ThreadPoolExecutor(a.parallel) as ex:
                list(ex.map(lambda i: mk(f"p{i}"), range(a.n)))

        def par_delete():
            with ThreadPoolExecutor(a.parallel) as ex:
                list(ex.map(lambda i: delete(h1, "bnet", f"p{i}"), range(a.n)))

        phase(f"create, {a.parallel} clients", urls, costs, par_create, procs)
        phase(f"delete, {a.parallel} clients", urls, costs, par_delete, procs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--many", type=int, default=200)
    ap.add_argument("--json")
    ap.add_argument("--startup", action="store_true")
    ap.add_argument("--startup-eps", type=int, default=100)
    ap.add_argument("--poll-ms", type=float, default=5, help="--startup: /readyz polled this often")
    ap.add_argument("--profile", default="", help="--startup: one more start-up under cProfile, to this file")
    ap.add_argument("--rate", action="store_true")
    ap.add_argument("--etcd-counts", action="store_true")
    ap.add_argument("--ovs-costs", action="store_true")
    ap.add_argument("--group", action="store_true", help="--etcd-counts: endpoints in an endpoint group")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if a.startup:
        bench_startup(a)
        return
    if a.rate:
        bench_rate(a)
        return
    if a.etcd_counts:
        bench_etcd_counts(a)
        return
    if a.ovs_costs:
        bench_ovs_costs(a)
        return
    res: dict = {"latency": []}
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("bnet", "10.120.0.0/16")
        res["rss_idle_mb"] = rss_mb(h1.netplugin.pid)
        # warm-up
        create(h1, "bnet", "warm")
        delete(h1, "bnet", "warm")
        # sequential create + remote learning
        lat, learn, ips = [], [], []
        for i in range(a.n):
            dt, info = create(h1, "bnet", f"s{i}")
            lat.append(dt)
            ips.append(info["ip_address"])
            t0 = time.perf_counter()
            mac = info["mac_address"]
            while not any(f"dl_dst={mac}" in f for f in h2.flows()):
                time.sleep(0.005)
            learn.append((time.perf_counter() - t0) * 1000 + dt)
        flows = "\n".join(h1.flows())
        missing = [ip for ip in ips if f"nw_dst={ip} " not in flows]
        assert not missing, f"flows missing for {missing}"
        res["latency"].append(stats("endpoint create (request -> flows installed), sequential", lat))
        res["latency"].append(stats("create on h1 -> remote MAC flow on h2", learn))
        dl = [delete(h1, "bnet", f"s{i}") for i in range(a.n)]
        res["latency"].append(stats("endpoint delete (request -> flows, port, veth gone), sequential", dl))
        # parallel
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.parallel) as ex:
            plat = [d for d, _ in ex.map(lambda i: create(h1, "bnet", f"p{i}"), range(a.n))]
        wall = time.perf_counter() - t0
        res["latency"].append(stats(f"endpoint create, {a.parallel} concurrent clients", plat))
        res["parallel_eps_per_s"] = a.n / wall
        with ThreadPoolExecutor(a.parallel) as ex:
            list(ex.map(lambda i: delete(h1, "bnet", f"p{i}"), range(a.n)))
        # many endpoints -> RSS
        with ThreadPoolExecutor(a.parallel) as ex:
            list(ex.map(lambda i: create(h1, "bnet", f"m{i}"), range(a.many)))
        res["rss_many_mb"] = rss_mb(h1.netplugin.pid)
        res["many"] = a.many
        res["flows_many"] = len(h1.flows())
        with ThreadPoolExecutor(a.parallel) as ex:
            list(ex.map(lambda i: delete(h1, "bnet", f"m{i}"), range(a.many)))
        # throughput: containers over VXLAN vs hosts over br-phy
        _, i1 = create(h1, "bnet", "tp1")
        _, i2 = create(h2, "bnet", "tp2")
        c1 = h1.container(i1["port_name"], f"{i1['ip_address']}/{i1['prefix_len']}")
        c2 = h2.container(i2["port_name"], f"{i2['ip_address']}/{i2['prefix_len']}")
        assert c1.ping(c2.ip)
        cc = [iperf(c1.name, c2.name, c2.ip, 5301 + k) for k in range(3)]
        hh = [iperf(h1.netns, h2.netns, h2.ip, 5311 + k) for k in range(3)]
        res["iperf_container_gbps"] = statistics.median(cc)
        res["iperf_host_gbps"] = statistics.median(hh)
        res["iperf_ratio"] = res["iperf_container_gbps"] / res["iperf_host_gbps"]
    print("| metric | n | p50 ms | p90 ms | p99 ms |\n|---|---|---|---|---|")
    for s in res["latency"]:
        print(f"| {s['metric']} | {s['n']} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} |")
    print(f"\nendpoints/s with {a.parallel} concurrent clients: {res['parallel_eps_per_s']:.1f}")
    print(f"netplugin VmRSS: idle {res['rss_idle_mb']:.1f} MB, with {res['many']} local endpoints "
          f"{res['rss_many_mb']:.1f} MB ({res['flows_many']} flows on the vxlan bridge)")  # fmt: skip
    print(f"iperf3 TCP: container<->container over VXLAN {res['iperf_container_gbps']:.2f} Gbit/s, "
          f"host<->host over br-phy {res['iperf_host_gbps']:.2f} Gbit/s, ratio {res['iperf_ratio']:.2f}")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
