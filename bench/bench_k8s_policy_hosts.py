"""NetworkPolicy applied until enforced on both hosts: stand-in Kubernetes API -> netmaster -> agents -> OVS.

    python bench/bench_k8s_policy_hosts.py [--runs 5] [--peers 1]

The two-host test bed (tests/fixtures/k8sbed.py): ``netmaster --mode kubernetes`` watching the
STAND-IN API server (tests/support/k8s_standin.py; no real cluster runs here), one
``netplugin --mode kubernetes`` per host, pods attached by the real ``contivk8s``. Per run, in a fresh
namespace: a target pod ``db`` on host 1, ``--peers`` peer pods ``web-*`` on host 2, one pod ``other``
on host 2. Timed from the NetworkPolicy's creation in the stand-in (``db`` isolated, TCP 5432 allowed
from the peers):
- records: every ofnet rule record of it is in etcd (``/contiv.io/state/policyRule/``), what the
  agents program;
- host 1 / host 2 / both: the policy table of that host's OVS holds every flow naming ``db``'s
  address (deny tcp and udp, 4 ICMP request types, 2 per peer), polled with ``ovs-ofctl``
  (about 15 ms per poll and host);
- then, untimed, the check that it is enforced: ``other`` -> ``db`` ping dropped, ``db`` -> ``other``
  answered;
- delete: from the policy's deletion until no flow naming ``db`` is left on either host.
Medians (and max) over the runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.k8sbed import K8sBed  # noqa: E402
from tests.support.k8s_standin import network_policy  # noqa: E402


def until(cond, timeout: float = 60.0, poll: float = 0.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError
        if poll:
            time.sleep(poll)
    return time.perf_counter() - t0


def run(kb: K8sBed, r: int, peers: int) -> dict[str, float]:
    ns = f"tbh{r}"
    kb.namespace(ns)
    db = kb.pod(1, ns, f"db{r}", {"app": "db"})
    webs = [kb.pod(2, ns, f"web{r}x{i}", {"app": "web"}) for i in range(peers)]
    other = kb.pod(2, ns, f"oth{r}", {"app": "other"})
    try:
        assert other.ping(db.ip, 8.0), "baseline ping"
        want_flows = 2 + 4 + 2 * peers  # deny tcp, udp, icmp (4 request types); allow inRx + inTx per peer
        want_records = 3 + 2 * peers
        prefix = f":k8s.{ns}.db:"
        spec = {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}
            ],
        }
        t0 = time.perf_counter()
        kb.standin.apply("NetworkPolicy", network_policy(ns, "db", spec))
        done: dict[str, float] = {}
        while len(done) < 3:
            now = time.perf_counter() - t0
            if now > 60:
                raise TimeoutError(f"not enforced after 60 s: {done}")
            if "records" not in done and sum(prefix in k for k in kb.policy_rule_keys()) == want_records:
                done["records"] = time.perf_counter() - t0
            for h in (1, 2):
                if f"host{h}" not in done and kb.policy_flows(h, db.ip) == want_flows:
                    done[f"host{h}"] = time.perf_counter() - t0
        done["both"] = max(done["host1"], done["host2"])
        assert not other.ping(db.ip, 3.0), "policy flows present but ping not dropped"
        assert db.ping(other.ip, 5.0), "db's own ping must be answered"
        t0 = time.perf_counter()
        kb.standin.delete("NetworkPolicy", ns, "db")
        done["delete"] = until(lambda: kb.policy_flows(1, db.ip) == 0 and kb.policy_flows(2, db.ip) == 0)
        return done
    finally:
        for p in (db, *webs, other):
            p.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", type=int, default=1)
    a = ap.parse_args()
    res: list[dict[str, float]] = []
    with K8sBed("10.127.0.0/16") as kb:
        for r in range(a.runs):
            res.append(run(kb, r, a.peers))
            print(f"run {r}: " + "  ".join(f"{k} {v * 1000:.0f} ms" for k, v in res[-1].items()), flush=True)
    print(f"\n| step (peers={a.peers}, {a.runs} runs) | median ms | max ms |\n|---|---|---|")
    for k in ("records", "host1", "host2", "both", "delete"):
        xs = [d[k] * 1000 for d in res]
        print(f"| {k} | {statistics.median(xs):.0f} | {max(xs):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
