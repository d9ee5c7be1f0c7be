"""NetworkPolicy translation latency: stand-in Kubernetes API -> netmaster --mode kubernetes -> etcd.

    python bench/bench_k8s_policy.py [--peers 1,10,50] [--runs 3]

A private etcd and one netmaster (``--mode kubernetes``) watching the stand-in API server of
tests/support/k8s_standin.py (a stand-in: no real API server runs here). Per run and peer count P:
- policy: a namespace with one target pod and P peer pods exists; time from the NetworkPolicy's
  creation (default deny + allow TCP 5432 from the P peers) until every ofnet rule record of it is in
  etcd (``/contiv.io/state/policyRule/``: 3 deny (tcp, udp, icmp) + 2 per peer), i.e. what the agents
  program; the target pod is a contiv endpoint of ``k8s-<ns>`` (made through ``/plugin/createEndpoint``);
- +1 peer: time from one more peer pod until its two ofnet rule records are in etcd;
- delete: time from the policy's deletion until no ofnet rule record of it is left.
Polled with ``etcdctl get --keys-only`` (about 10 ms per poll). Medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import BenchEnv, Netmaster, median, request  # noqa: E402
from tests.support.k8s_standin import K8sStandIn, namespace, network_policy, pod  # noqa: E402

NET = {"encap": "vlan", "networkName": "default-net", "subnet": "10.40.0.0/16", "tenantName": "default"}


def count(env: BenchEnv, prefix: str) -> int:
    out = subprocess.run(
        ["etcdctl", f"--endpoints={env.etcd_url}", "get", "--prefix", "--keys-only", "-w", "json", prefix],
        env=dict(os.environ, ETCDCTL_API="3"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(json.loads(out).get("count", 0))


def until(cond, timeout: float = 120.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.005)
    return time.perf_counter() - t0


def run(env: BenchEnv, s: K8sStandIn, ns: str, peers: int) -> dict[str, float]:
    s.apply("Namespace", namespace(ns))
    until(lambda: request_ok(env, f"/api/v1/endpointGroups/default:k8s-{ns}/"))
    # the target must be a contiv endpoint of its group (what CNI ADD makes); peers need not be
    body = {"TenantName": "default", "NetworkName": "default-net", "EndpointID": f"{ns}-db",
            "ConfigEP": {"Container": f"{ns}-db", "Host": "tbkh", "IPAddress": "", "ServiceName": f"k8s-{ns}"}}  # fmt: skip
    status, text = request(env.netmasters[0].port, "POST", "/plugin/createEndpoint", body)
    assert status == 200, text
    db_ip = json.loads(text)["EndpointConfig"]["ipAddress"]
    s.apply("Pod", pod(ns, "db", db_ip, {"app": "db"}))
    for i in range(peers):
        s.apply("Pod", pod(ns, f"web-{i}", f"10.40.1.{i + 1}", {"app": "web"}))
    prefix = f"/contiv.io/state/policyRule/default:k8s-{ns}:default:k8s.{ns}.p:"
    spec = {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}],
    }
    t0 = time.perf_counter()
    s.apply("NetworkPolicy", network_policy(ns, "p", spec))
    until(lambda: count(env, prefix) == 3 + 2 * peers)
    t_policy = time.perf_counter() - t0
    t0 = time.perf_counter()
    s.apply("Pod", pod(ns, "web-new", "10.40.2.1", {"app": "web"}))
    until(lambda: count(env, prefix) == 5 + 2 * peers)
    t_peer = time.perf_counter() - t0
    t0 = time.perf_counter()
    s.delete("NetworkPolicy", ns, "p")
    until(lambda: count(env, prefix) == 0)
    t_del = time.perf_counter() - t0
    return {"policy": t_policy, "peer": t_peer, "delete": t_del}


def request_ok(env: BenchEnv, path: str) -> bool:
    return request(env.netmasters[0].port, "GET", path)[0] == 200


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", default="1,10,50")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    s = K8sStandIn().start()
    try:
        with BenchEnv() as env:
            cfg = env.tmp / "contiv.json"
            cfg.write_text(json.dumps({"K8S_API_SERVER": s.url}))
            nm = Netmaster(env, ["--mode", "kubernetes", "--k8s-config", str(cfg)])
            env.netmasters.append(nm)
            nm.start()
            status, text = request(nm.port, "POST", "/api/v1/networks/default:default-net/", NET)
            assert status == 200, text
            for peers in [int(p) for p in a.peers.split(",")]:
                res = [run(env, s, f"tbk-{peers}-{r}", peers) for r in range(a.runs)]
                print(
                    f"peers={peers:3d}  policy->ofnet rules {median([r['policy'] for r in res]) * 1000:7.0f} ms"
                    f"  +1 peer {median([r['peer'] for r in res]) * 1000:6.0f} ms"
                    f"  delete {median([r['delete'] for r in res]) * 1000:6.0f} ms  (median of {a.runs})",
                    flush=True,
                )
    finally:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
