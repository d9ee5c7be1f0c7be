"""Service load balancer benchmark on the two-host test bed (real etcd, netmaster, OVS, agents).

    python bench/bench_service.py [-n 20] [--runs 3] [--json out.json]

A VXLAN network, one provider endpoint on each host (a TCP server on port 8080), ``n`` client
endpoints on host 1, and a service VIP:80 -> 8080 whose ServiceLBState / ProviderState records are
written into etcd (what netmaster writes). Measures, per run (medians over the clients):
- service programmed: etcd write of the records -> the VIP's watch flow present on both hosts;
- TCP connect time to the VIP for the client's FIRST connection (SYN punted to the agent,
  provider chosen, per-client DNAT/SNAT flows installed with a barrier, packet re-injected), its
  SECOND one (flows in place: datapath only), a direct connection to its own provider's IP (it
  must work: the reverse NAT is conntrack's) and one to the OTHER provider's IP (first contact);
- whether every answer came from a provider through the VIP (checked, not timed).
Connect times are measured inside each client's namespace by one Python process per client
(``socket.create_connection``), so process start-up is not part of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_netplugin import container_ep  # noqa: E402

from contivpy.model import keys  # noqa: E402
from contivpy.model.state import ProviderState, ServiceLBState  # noqa: E402
from tests.fixtures.testbed import Testbed  # noqa: E402

SID, VIP, NET = "tbssvc:default", "10.121.1.250", "tbsnet"

SERVER = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64)
def serve(c):
    with c:
        c.sendall(sys.argv[1].encode() + b"\n")
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import json, socket, sys, time
def conn(ip, port):
    t0 = time.perf_counter()
    s = socket.create_connection((ip, port), timeout=5)
    dt = (time.perf_counter() - t0) * 1000
    name = s.recv(64).decode().strip()
    peer = s.getpeername()[0]
    s.close()
    return dt, name, peer
first = conn(sys.argv[1], 80)
second = conn(sys.argv[1], 80)
# direct to the client's own provider (works: the reverse NAT is conntrack's, only for VIP
# connections) and to the other one (first contact, ARP included)
own = conn(sys.argv[2] if first[1] == "p1" else sys.argv[3], 8080)
direct = conn(sys.argv[3] if first[1] == "p1" else sys.argv[2], 8080)
print(json.dumps({"first": first, "second": second, "own": own, "direct": direct}))
"""


def make_ep(host, ep: str):
    return container_ep(host, NET, ep)


def one_run(n: int) -> dict:
    procs: list[subprocess.Popen] = []
    with Testbed(2) as bed:
        try:
            bed.start_all()
            h1, h2 = bed.hosts[1], bed.hosts[2]
            bed.create_network(NET, "10.121.1.0/24")
            provs = {}
            for name, h in (("p1", h1), ("p2", h2)):
                info, c = make_ep(h, f"tbs{name}")
                srv = subprocess.Popen(
                    ["ip", "netns", "exec", c.name, sys.executable, "-c", SERVER, name],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )  # fmt: skip
                procs.append(srv)
                assert srv.stdout.readline().strip() == "ready"
                provs[name] = info["ip_address"]
            clients = []
            for i in range(n):
                clients.append(make_ep(h1, f"tbsc{i}")[1])
            lb = ServiceLBState(
                id=SID, servicename="tbssvc", tenantname="default", subnet=NET, ports=["80:8080:TCP"],
                selectors={"app": "tbs"}, ipaddress=VIP,
            )  # fmt: skip
            t0 = time.perf_counter()
            bed.etcdctl("put", keys.SERVICE_LB + SID, lb.to_json())
            bed.etcdctl("put", keys.PROVIDER + SID, ProviderState(SID, sorted(provs.values())).to_json())
            deadline = time.monotonic() + 20
            while not all(
                f"nw_dst={VIP}" in "\n".join(h.flows()) for h in (h1, h2)
            ):  # the watch flow on both hosts
                if time.monotonic() > deadline:
                    raise RuntimeError("service not programmed")
                time.sleep(0.005)
            programmed = (time.perf_counter() - t0) * 1000
            res = []
            for c in clients:
                r = subprocess.run(
                    ["ip", "netns", "exec", c.name, sys.executable, "-c", CLIENT, VIP, provs["p1"], provs["p2"]],
                    capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                if r.returncode != 0:
                    raise RuntimeError(r.stderr)
                d = json.loads(r.stdout)
                assert d["first"][1] in provs and d["first"][2] == VIP, d
                assert d["second"][1] == d["first"][1] and d["second"][2] == VIP, d
                assert d["own"][1] == d["first"][1] and d["own"][2] != VIP, d
                res.append(d)
            return {
                "programmed_ms": programmed,
                "first_ms": statistics.median(d["first"][0] for d in res),
                "second_ms": statistics.median(d["second"][0] for d in res),
                "direct_ms": statistics.median(d["direct"][0] for d in res),
                "own_ms": statistics.median(d["own"][0] for d in res),
                "first_max_ms": max(d["first"][0] for d in res),
                "first_slow": [(d["first"][1], round(d["first"][0])) for d in res if d["first"][0] > 500],
                "spread": {p: sum(1 for d in res if d["first"][1] == p) for p in provs},
            }
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="client endpoints on host 1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    runs = [one_run(a.n) for _ in range(a.runs)]
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("programmed_ms", "first_ms", "second_ms", "own_ms", "direct_ms")
    }
    print(f"{a.runs} runs, {a.n} clients each; medians of the per-run medians")
    print("| metric | median ms | runs |")
    print("|---|---|---|")
    for k, label in (
        ("programmed_ms", "records written -> watch flow on both hosts"),
        ("first_ms", "first TCP connect to the VIP (punt + flows + re-inject)"),
        ("second_ms", "second TCP connect to the VIP (flows in place)"),
        ("own_ms", "TCP connect directly to the client's own provider (after using the VIP)"),
        ("direct_ms", "TCP connect to the other provider's own IP (first contact)"),
    ):
        print(f"| {label} | {med[k]:.2f} | {', '.join(f'{r[k]:.2f}' for r in runs)} |")
    print("worst first connect per run:", ", ".join(f"{r['first_max_ms']:.1f}" for r in runs), "ms")
    print("clients per provider:", [r["spread"] for r in runs])
    print("first connects over 500 ms (provider, ms):", [r["first_slow"] for r in runs])
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
