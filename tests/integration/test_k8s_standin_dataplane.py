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

import time

import pytest

from tests.fixtures.k8sbed import K8sBed, K8sPod
from tests.fixtures.testbed import wait_for
from tests.support.k8s_standin import network_policy

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

NS = "tkd"


@pytest.fixture(scope="module")
def kbed():
    with K8sBed("10.126.1.0/24") as kb:
        kb.namespace(NS)
        yield kb


@pytest.fixture
def pods(kbed):
    made: list[K8sPod] = []
    names: list[str] = []

    def make(host: int, name: str, labels: dict[str, str]) -> K8sPod:
        p = kbed.pod(host, NS, name, labels)
        made.append(p)
        return p

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
    wait_for(lambda: not [k for k in kbed.policy_rule_keys() if f":k8s.{NS}." in k], 30, what="rules gone")


def blocked(src: K8sPod, ip: str, timeout: float = 30.0) -> bool:
    """Pings from ``src`` to ``ip`` stop (the policy reached the data plane) and stay stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not src.ping(ip, budget=1.2):
            return not src.ping(ip, budget=3.0)
        time.sleep(0.2)
    return False


def tcp_ok(client: K8sPod, server: K8sPod, port: int, budget: float = 8.0) -> bool:
    """A line sent over TCP from ``client`` reaches ``server:port`` (the test bed's busybox nc server
    and Python client, tests/fixtures/testbed.py)."""
    from types import SimpleNamespace

    from tests.fixtures.testbed import Container

    return Container.tcp_ok(
        SimpleNamespace(name=client.ns.name), SimpleNamespace(name=server.ns.name, ip=server.ip), port, budget
    )


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
