"""Agent outage benchmark: pings lost while a host's netplugin is killed with -9 and restarted.

    python bench/bench_agent_outage.py [--runs 5] [--down 5] [--json out.json]

Two-host test bed (tests/fixtures/testbed.py: real etcd, netmaster, one netplugin and one
userspace-datapath OVS per host). One VXLAN network with two containers on host 1 and one on host 2,
one VLAN network with a container on each host. Per run, six ping streams (``ping -i 0.05``, a fixed
count, both directions of host1<->host2 VXLAN, host1<->host1 VXLAN, host1<->host2 VLAN) run while:

1. after 1 s, host 1's netplugin is killed with SIGKILL;
2. every neighbour table of every container is flushed once a second for ``--down`` seconds (so
   every container has to resolve its peers by ARP while the agent is down);
3. the agent is restarted (timed until its API answers and its bridges are connected) and the
   neighbour tables are flushed twice more.

Printed: per run the packets sent and lost over all streams, the outage and the restart time, then
the median.  With ``--down`` above the 10 s registration lease the peers also drop and rebuild their
tunnels to host 1 (a different fault, reported in the same way).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.testbed import Testbed, http_json, wait_for  # noqa: E402

INTERVAL = 0.05


def make_ep(host, net: str, ep: str):
    st, info = http_json(
        "POST", host.debug_url + "/debug/endpoints", {"network": net, "endpointID": ep}, timeout=60
    )
    if st != 200:
        raise RuntimeError(f"create {ep}: {info}")
    c = host.container(
        info["port_name"], f"{info['ip_address']}/{info['prefix_len']}", info["gateway"] or None
    )
    return info, c


def start_ping(src, dst_ip: str, seconds: float) -> subprocess.Popen:
    n = int(seconds / INTERVAL)
    return subprocess.Popen(
        ["ip", "netns", "exec", src.name, "ping", "-n", "-q", "-c", str(n), "-i", str(INTERVAL), "-W", "2", dst_ip],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def ping_result(p: subprocess.Popen, timeout: float) -> tuple[int, int]:
    out, _ = p.communicate(timeout=timeout)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if not m:
        raise RuntimeError(f"no ping summary: {out}")
    return int(m.group(1)), int(m.group(2))


def flush(containers) -> None:
    for c in containers:
        c.exec("ip", "neigh", "flush", "all", check=False)


def one_run(h1, containers, pairs, down: float) -> dict:
    seconds = 1 + down + 12 + 3  # before, outage, restart budget, after
    pings = [start_ping(a, b.ip, seconds) for a, b in pairs]
    try:
        time.sleep(1.0)
        t_kill = time.monotonic()
        h1.stop_netplugin(signal.SIGKILL)
        while time.monotonic() - t_kill < down:
            flush(containers)
            time.sleep(min(1.0, max(0.0, down - (time.monotonic() - t_kill))))
        t_start = time.monotonic()
        outage = t_start - t_kill
        h1.start_netplugin()
        restart = time.monotonic() - t_start
        for _ in range(2):
            flush(containers)
            time.sleep(1.0)
        res = [ping_result(p, seconds + 30) for p in pings]
    finally:
        for p in pings:
            if p.poll() is None:
                p.kill()
                p.wait()
    sent = sum(tx for tx, _ in res)
    lost = sum(tx - rx for tx, rx in res)
    per_pair = {f"{a.ip}->{b.ip}": tx - rx for (a, b), (tx, rx) in zip(pairs, res, strict=True)}
    return {"sent": sent, "lost": lost, "outage_s": round(outage, 2), "restart_s": round(restart, 2),
            "lost_per_stream": per_pair}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--down", type=float, default=5.0, help="seconds the agent stays down (flushing)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    runs = []
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("bao", "10.141.1.0/24", gateway="10.141.1.254")
        bed.create_network("baov", "10.142.1.0/24", encap="vlan", pktTag=114)
        _, x1 = make_ep(h1, "bao", "bx1")
        _, x1b = make_ep(h1, "bao", "bx1b")
        _, x2 = make_ep(h2, "bao", "bx2")
        _, v1 = make_ep(h1, "baov", "bv1")
        _, v2 = make_ep(h2, "baov", "bv2")
        containers = [x1, x1b, x2, v1, v2]
        pairs = [(x1, x2), (x2, x1), (x1, x1b), (x1b, x1), (v1, v2), (v2, v1)]
        for a, b in pairs:
            wait_for(lambda a=a, b=b: a.ping(b.ip, budget=2), 20, 0.2, f"{a.ip} -> {b.ip}")
        for i in range(args.runs):
            r = one_run(h1, containers, pairs, args.down)
            runs.append(r)
            print(f"run {i + 1}: sent {r['sent']}, lost {r['lost']}, agent down {r['outage_s']} s, "
                  f"restart {r['restart_s']} s, per stream {r['lost_per_stream']}", flush=True)  # fmt: skip
            time.sleep(2.0)
    lost = [r["lost"] for r in runs]
    print()
    print(
        "| runs | agent down (s) | pings per run | lost per run (each run) | median lost | median restart (s) |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| {len(runs)} | {args.down:g} | {runs[0]['sent']} | {', '.join(map(str, lost))} | "
          f"{statistics.median(lost):g} | {statistics.median(r['restart_s'] for r in runs):.2f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
