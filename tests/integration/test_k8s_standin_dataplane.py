"""Kubernetes mode end to end on the two-host test bed, against a STAND-IN API server.

No real Kubernetes API server runs here (tests/support/k8s_standin.py speaks the list/watch protocol
with real-shaped JSON). Everything else is real: etcd, ``netmaster --mode kubernetes`` watching the
stand-in, one ``netplugin --mode kubernetes`` per host (OVS userspace datapath), and pods attached by
the real ``contivk8s`` CNI plugin into pod network namespaces. The pods' API objects (labels, podIP)
are put into the stand-in after CNI ADD, as a kubelet would report them. Traffic is real: pings and
TCP connections between the pods, on the same host and across hosts.

Covers (docs/kubernetes.md): ICMP is isolated by a NetworkPolicy (pings that no rule allows are
dropped, replies to the isolated pod's own pings pass); a podSelector isolates the selected pods
only, not the other pods of their namespace group; egress isolation with the same scope.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.fixtures.cni import PodNs, cni
from tests.fixtures.testbed import wait_for
from tests.support.k8s_standin import K8sStandIn, namespace, network_policy, pod

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

SUBNET = "10.126.1"
NS = "tkd"


@pytest.fixture(scope="module")
def kbed():
    from tests.fixtures.testbed import Testbed

    standin = K8sStandIn().start()
    try:
        with Testbed(2, netmaster=False) as b:
            cfg = b.dir / "contiv.json"
            cfg.write_text(json.dumps({"K8S_API_SERVER": standin.url}))
            base = b.netmaster_args
            b.netmaster_args = lambda port, docker_host=None: [  # type: ignore[method-assign]
                *base(port), "--mode", "kubernetes", "--k8s-config", str(cfg),
            ]  # fmt: skip
            b.start_netmaster()
            b.start_all("--mode", "kubernetes", "--k8s-config", str(b.dir / "no-such-contiv.json"))
            for h in b.hosts.values():
                h.wait_ready()
            b.create_network("default-net", f"{SUBNET}.0/24", gateway=f"{SUBNET}.254")
            b.standin = standin  # type: ignore[attr-defined]
            standin.apply("Namespace", namespace(NS))
            wait_for(lambda: group(b, f"k8s-{NS}"), 30, what="namespace group k8s-tkd")
            yield b
    finally:
        standin.stop()


def group(bed, name: str) -> dict | None:
    from tests.fixtures.testbed import http_json

    st, body = http_json("GET", f"{bed.netmaster_url}/api/v1/endpointGroups/default:{name}/")
    return body if st == 200 else None


class Pod:
    """A pod: its netns on a host, attached by the real contivk8s, and its API object."""

    def __init__(self, bed, made: list, host: int, name: str, labels: dict[str, str]) -> None:
        self.bed, self.host, self.name, self.labels = bed, bed.hosts[host], name, labels
        self.ns = PodNs(f"tnpkd{name}")
        made.append(self)
        self.cid = f"ctr-kd-{name}"
        r = cni(self.host, "ADD", self.cid, self.ns.path, args=f"K8S_POD_NAMESPACE={NS};K8S_POD_NAME={name}")
        assert r.rc == 0, r
        self.ip = r.out["ips"][0]["address"].split("/")[0]
        bed.standin.apply("Pod", pod(NS, name, self.ip, labels))

    def ping(self, ip: str, budget: float = 2.0) -> bool:
        return self.ns.ping(ip, budget)

    def close(self) -> None:
        try:
            self.bed.standin.delete("Pod", NS, self.name)
        except Exception:  # noqa: BLE001 - already gone
            pass
        cni(self.host, "DEL", self.cid, self.ns.path)
        self.ns.delete()


@pytest.fixture
def pods(kbed):
    made: list[Pod] = []
    names: list[str] = []

    def make(host: int, name: str, labels: dict[str, str]) -> Pod:
        return Pod(kbed, made, host, name, labels)

    def policy(name: str, spec: dict) -> None:
        names.append(name)
        kbed.standin.apply("NetworkPolicy", network_policy(NS, name, spec))

    make.policy = policy  # type: ignore[attr-defined]
    yield make
    for n in names:
        try:
            kbed.standin.delete("NetworkPolicy", NS, n)
        except Exception:  # noqa: BLE001 - deleted by the test
            pass
    for p in made:
        p.close()
    wait_for(lambda: not [k for k in policy_rule_keys(kbed) if f":k8s.{NS}." in k], 30, what="rules gone")


def policy_rule_keys(bed) -> list[str]:
    return bed.etcdctl("get", "/contiv.io/state/policyRule/", "--prefix", "--keys-only").split()


def blocked(src: Pod, ip: str, timeout: float = 30.0) -> bool:
    """Pings from ``src`` to ``ip`` stop (the policy reached the data plane) and stay stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not src.ping(ip, budget=1.2):
            return not src.ping(ip, budget=3.0)
        time.sleep(0.2)
    return False


def tcp_ok(client: Pod, server: Pod, port: int, budget: float = 6.0) -> bool:
    """A TCP connection from ``client`` to ``server:port`` (busybox nc) carries a line."""
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server.ns.name, "busybox", "nc", "-l", "-p", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            r = subprocess.run(
                ["ip", "netns", "exec", client.ns.name, "busybox", "nc", "-w", "2", server.ip, str(port)],
                input="tnp-hello\n", capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            if r.returncode == 0:
                try:
                    out, _ = srv.communicate(timeout=3)
                except subprocess.TimeoutExpired:
                    return False
                return "tnp-hello" in out
            time.sleep(0.3)
        return False
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(5)


def test_k8s_standin_networkpolicy_isolates_icmp_and_only_selected_pods(kbed, pods):
    db = pods(1, "db", {"app": "db"})
    lab = pods(1, "lab", {"app": "lab"})  # same namespace group as db, not selected
    web = pods(2, "web", {"app": "web"})
    other = pods(2, "other", {"app": "other"})
    for src, dst in ((web, db), (other, db), (other, lab), (web, lab), (db, web)):
        assert src.ping(dst.ip, budget=8.0), f"{src.name} -> {dst.name} before any policy"
    # db accepts TCP 5432 from web only: every ping to db is dropped (ICMP is isolated) ...
    pods.policy(
        "db",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}
            ],
        },
    )
    assert blocked(other, db.ip), "a ping to an isolated pod that no rule allows must be dropped"
    assert not web.ping(db.ip, budget=3.0), "web is allowed TCP 5432 only, not ICMP"
    assert tcp_ok(web, db, 5432), "the allowed port still connects"
    # ... while the replies to db's own pings pass (only ICMP requests are isolated)
    assert db.ping(web.ip, budget=5.0) and db.ping(other.ip, budget=5.0)
    # the podSelector selects db only: lab, in the same group k8s-tkd, is not isolated
    assert other.ping(lab.ip, budget=5.0) and web.ping(lab.ip, budget=5.0)
    # an allow without ports allows ICMP too, from web only
    pods.policy(
        "db",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
        },
    )
    assert web.ping(db.ip, budget=20.0), "an ingress rule without ports allows ICMP"
    assert not other.ping(db.ip, budget=3.0)


def test_k8s_standin_egress_isolation_is_scoped_to_the_selected_pods(kbed, pods):
    web = pods(2, "web2", {"app": "web"})
    peer = pods(2, "peer2", {"app": "peer"})
    db = pods(1, "db2", {"app": "db"})
    out = pods(1, "out2", {"app": "out"})
    for src, dst in ((web, out), (web, db), (peer, out), (out, web)):
        assert src.ping(dst.ip, budget=8.0), f"{src.name} -> {dst.name} before any policy"
    # web may only talk to db: its pings to others stop, pings answered by web still work
    pods.policy(
        "web-egress",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}],
        },
    )
    assert blocked(web, out.ip), "egress isolation drops ICMP that no rule allows"
    assert web.ping(db.ip, budget=5.0), "egress to db is allowed"
    assert out.ping(web.ip, budget=5.0), "web's echo replies are not egress requests"
    assert peer.ping(out.ip, budget=5.0), "peer (same namespace group, not selected) is not isolated"
