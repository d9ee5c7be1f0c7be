"""The NetworkPolicy translator (netmaster/k8snet/translate.py) and the API config loader, on their own."""

from __future__ import annotations

import ipaddress
import json

import pytest

from contivpy.common import k8sapi
from contivpy.netmaster.k8snet import translate as T
from tests.support.k8s_standin import namespace, network_policy, pod


def _cache(*objs):
    c = T.Cache()
    for kind, o in objs:
        c.put(kind, o)
    return c


@pytest.mark.parametrize(
    ("sel", "labels", "want"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_selector_semantics(sel, labels, want):
    assert T.selector_matches(sel, labels) is want


def test_bad_selector_is_untranslatable():
    with pytest.raises(T.Untranslatable):
        T.selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, {})


def test_ipblock_except_is_exact():
    problems: list[str] = []
    got = T._ipblock({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.200.3.0/24"]}, problems, "x")
    nets = [ipaddress.ip_network(g if "/" in g else g + "/32") for g in got]
    for probe, inside in [("10.1.2.3", False), ("10.200.3.9", False), ("10.200.4.1", True), ("10.0.0.1", True),
                          ("11.0.0.1", False)]:  # fmt: skip
        assert any(ipaddress.ip_address(probe) in n for n in nets) is inside, probe
    assert problems == []
    assert T._ipblock({"cidr": "fd00::/64"}, problems, "x") == [] and "IPv6" in problems[0]
    assert T._ipblock({"cidr": "10.1.2.3/32"}, [], "x") == ["10.1.2.3"]  # contiv writes hosts without /32
    assert T._ipblock({"cidr": "0.0.0.0/0"}, [], "x") == [""]  # any address


def test_ports_named_sctp_and_ranges():
    problems: list[str] = []
    ports = [{"port": "http"}, {"protocol": "SCTP", "port": 1}, {"protocol": "UDP"}, {"port": 80, "endPort": 82},
             {"port": 1000, "endPort": 2000}]  # fmt: skip
    assert T._ports(ports, problems, "w") == [("tcp", 80), ("tcp", 81), ("tcp", 82), ("udp", 0)]
    assert len(problems) == 3 and "named port 'http'" in problems[0] and "1000-2000" in problems[2]


def test_policy_targets_groups_peers_by_address():
    c = _cache(
        ("Namespace", namespace("n1")),
        ("Namespace", namespace("n2", {"env": "prod"})),
        ("Pod", pod("n1", "db", "10.0.0.2", {"app": "db", "io.contiv.net-group": "dbs"})),
        ("Pod", pod("n1", "web", "10.0.0.3", {"app": "web"})),
        ("Pod", pod("n1", "pending", None, {"app": "web"})),
        ("Pod", pod("n2", "web", "10.0.0.4", {"app": "web"})),
        ("Pod", pod("n2", "web6", "fd00::1", {"app": "web"})),
        ("Pod", pod("n1", "other-tenant", "10.0.0.5", {"app": "db", "io.contiv.tenant": "blue"})),
    )
    host = pod("n2", "hostnet", "192.0.2.10", {"app": "web"})
    host["spec"]["hostNetwork"] = True
    c.put("Pod", host)
    spec = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                                  {"namespaceSelector": {"matchLabels": {"env": "prod"}},
                                   "podSelector": {"matchLabels": {"app": "web"}}}],
                         "ports": [{"port": 5432}]}]}  # fmt: skip
    c.put("NetworkPolicy", network_policy("n1", "p", spec))
    d = T.translate_namespace(c, "n1")
    assert d.group == "k8s-n1"
    assert set(d.policies) == {"k8s.n1.p.G.dbs"}  # the policy of the selected pod's group only
    dp = d.policies["k8s.n1.p.G.dbs"]
    assert dp.groups == {"dbs"}  # the other-tenant pod is not a target
    assert any("tenant blue" in p for p in d.problems)
    allows = sorted(r["fromIpAddress"] for r in dp.rules.values() if r["action"] == "allow")
    assert allows == ["10.0.0.3", "10.0.0.4"]  # pending, IPv6-only and hostNetwork pods are not peers
    denies = sorted(r["protocol"] for r in dp.rules.values() if r["action"] == "deny")
    assert denies == ["icmp", "tcp", "udp"]  # ICMP is isolated too
    assert {r["toIpAddress"] for r in dp.rules.values()} == {"10.0.0.2"}  # scoped to the selected pod
    # same input, same rule ids (restarts rewrite nothing)
    assert set(T.translate_namespace(c, "n1").policies["k8s.n1.p.G.dbs"].rules) == set(dp.rules)
    # a target that is not (yet) an endpoint of its group is left out, with a note
    d2 = T.translate_namespace(c, "n1", lambda ip, g: False)
    assert d2.policies == {} and any("not an endpoint" in p for p in d2.problems)
    assert T.translate_namespace(c, "gone").group is None


def test_policy_types_default_and_names():
    c = _cache(("Namespace", namespace("n")))
    c.put("NetworkPolicy", network_policy("n", "e", {"podSelector": {}, "egress": [{}]}))
    rules = T.translate_namespace(c, "n").policies["k8s.n.e"].rules.values()
    assert {(r["direction"], r["action"]) for r in rules} == {
        ("in", "deny"),
        ("out", "deny"),
        ("out", "allow"),
    }
    assert all("toIpAddress" not in r and "fromIpAddress" not in r for r in rules)  # group-wide
    long = "x" * 80
    name = T.policy_name("n", long)
    assert len(name) <= 64 and name.startswith("k8s.n.h") and T.ns_of_policy(name) == "n"
    assert T.ns_of_policy("k8s.a-b.c.d") == "a-b" and T.ns_of_policy("mine") is None


def test_load_config_contiv_json(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("secret\n")
    cfg = tmp_path / "contiv.json"
    cfg.write_text(json.dumps({"K8S_API_SERVER": "https://k8s:6443/", "K8S_TOKEN": str(tok)}))
    got = k8sapi.load_config(str(cfg), env={})
    assert (got.server, got.token, got.source) == ("https://k8s:6443", "secret", str(cfg))
    cfg.write_text(json.dumps({"K8S_API_SERVER": "https://k8s:6443", "K8S_CERT": str(tok)}))
    with pytest.raises(k8sapi.K8sConfigError, match="K8S_CERT and K8S_KEY"):
        k8sapi.load_config(str(cfg), env={})
    cfg.write_text("{not json")
    with pytest.raises(k8sapi.K8sConfigError, match="cannot read"):
        k8sapi.load_config(str(cfg), env={})
    assert k8sapi.load_config(str(tmp_path / "absent.json"), env={}) is None


def test_load_config_service_account(tmp_path):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("x")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    got = k8sapi.load_config(str(tmp_path / "absent.json"), env=env, sa_dir=str(tmp_path))
    assert (got.server, got.token, got.ca_file) == (
        "https://10.96.0.1:443",
        "sa-token",
        str(tmp_path / "ca.crt"),
    )
    env6 = dict(env, KUBERNETES_SERVICE_HOST="fd00::1")
    assert k8sapi.load_config("", env=env6, sa_dir=str(tmp_path)).server == "https://[fd00::1]:443"
    # contiv.json wins over the service account
    cfg = tmp_path / "contiv.json"
    cfg.write_text(json.dumps({"K8S_API_SERVER": "http://127.0.0.1:8080"}))
    assert k8sapi.load_config(str(cfg), env=env, sa_dir=str(tmp_path)).server == "http://127.0.0.1:8080"


def test_pod_selector_scopes_rules_to_the_selected_pods():
    """A podSelector isolates the pods it selects, not their group: rules carry the target address
    (``toIpAddress`` in, ``fromIpAddress`` out); the empty selector is group-wide on ``k8s-<ns>`` and
    per target in another group."""
    c = _cache(
        ("Namespace", namespace("n")),
        ("Pod", pod("n", "db", "10.0.0.2", {"app": "db"})),
        ("Pod", pod("n", "web", "10.0.0.3", {"app": "web"})),
        ("Pod", pod("n", "lab", "10.0.0.4", {"app": "db", "io.contiv.net-group": "lab"})),
    )
    c.put("NetworkPolicy", network_policy("n", "db", {"podSelector": {"matchLabels": {"app": "db"}},
                                                       "policyTypes": ["Ingress", "Egress"]}))  # fmt: skip
    c.put("NetworkPolicy", network_policy("n", "all", {"podSelector": {}}))
    d = T.translate_namespace(c, "n")
    assert set(d.policies) == {"k8s.n.db", "k8s.n.db.G.lab", "k8s.n.all", "k8s.n.all.G.lab"}
    db = d.policies["k8s.n.db"].rules.values()
    assert d.policies["k8s.n.db"].groups == {"k8s-n"}
    assert {r.get("toIpAddress") for r in db if r["direction"] == "in"} == {"10.0.0.2"}  # not web
    assert {r.get("fromIpAddress") for r in db if r["direction"] == "out"} == {"10.0.0.2"}
    lab = d.policies["k8s.n.db.G.lab"].rules.values()
    assert {r.get("toIpAddress") or r.get("fromIpAddress") for r in lab} == {"10.0.0.4"}
    assert all("toIpAddress" not in r for r in d.policies["k8s.n.all"].rules.values())
    assert {r["toIpAddress"] for r in d.policies["k8s.n.all.G.lab"].rules.values()} == {"10.0.0.4"}
    assert T.ns_of_policy("k8s.n.db.G.lab") == "n"


def test_services_headless_externalname_nodeport_and_pod_network():
    from contivpy.netmaster.k8snet import services as S
    from tests.support.k8s_standin import service

    ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]
    # headless and ExternalName: nothing to balance, a note and no warning
    headless = service("n", "h", "None", {"app": "web"}, ports)
    ext = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "n"},
           "spec": {"type": "ExternalName", "externalName": "db.example.org"}}  # fmt: skip
    for svc, word in ((headless, "headless"), (ext, "ExternalName")):
        problems: list[str] = []
        notes: list[str] = []
        assert S.service_lb(svc, None, "10.36.0.0/16", problems, notes=notes) is None
        assert problems == [] and len(notes) == 1 and word in notes[0]
    # NodePort: the node ports go with the load balancer (the host DNATs them to the VIP)
    np = service("n", "np", "10.36.0.50", {"app": "web"}, ports)
    np["spec"]["type"] = "NodePort"
    _, body = S.service_lb(np, None, "10.36.0.0/16", [])
    assert body["nodePorts"] == ["30080:80:TCP"] and body["ports"] == ["80:8080:TCP"]
    _, plain = S.service_lb(service("n", "c", "10.36.0.51", {"app": "web"}, ports), None, "10.36.0.0/16", [])
    assert "nodePorts" not in plain  # a ClusterIP Service's nodePort field (never set) is ignored
    # the Service's network is its pods' network
    c = _cache(
        ("Pod", pod("n", "a", "10.37.0.2", {"app": "web", "io.contiv.network": "other-net"})),
        ("Pod", pod("n", "b", "10.37.0.3", {"app": "web", "io.contiv.network": "other-net"})),
        ("Pod", pod("n", "c", "10.36.0.3", {"app": "db"})),
    )
    assert S.service_network(c, "n", {"app": "web"}) == ("other-net", [])
    assert S.service_network(c, "n", {"app": "db"}) == ("default-net", [])
    assert S.service_network(c, "n", {"app": "none"}) == ("default-net", [])
    c.put("Pod", pod("n", "d", "10.36.0.4", {"app": "web"}))
    net, why = S.service_network(c, "n", {"app": "web"})
    assert net == "default-net" and "several networks" in why[0]
    _, body = S.service_lb(service("n", "o", "10.37.0.100", {"app": "web"}, ports), None, "10.37.0.0/16", [],
                           network="other-net")  # fmt: skip
    assert body["networkName"] == "other-net" and body["ipAddress"] == "10.37.0.100"
