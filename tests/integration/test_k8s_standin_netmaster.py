"""netmaster --mode kubernetes against a STAND-IN Kubernetes API server (tests/support/k8s_standin.py).

No real API server runs here: the stand-in speaks the list/watch protocol with real-shaped JSON.
A real netmaster process (real etcd) watches it; the tests assert the contiv objects it creates,
updates and deletes, through the REST API and etcdctl.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.k8s_standin import K8sStandIn, endpoints, namespace, network_policy, pod, service

pytestmark = pytest.mark.etcd

NET = {"encap": "vlan", "networkName": "default-net", "subnet": "10.36.0.0/16", "tenantName": "default"}


@pytest.fixture
def standin():
    s = K8sStandIn().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def k8s_netmaster(netmaster_factory, standin, tmp_path):
    cfg = tmp_path / "contiv.json"
    cfg.write_text(json.dumps({"K8S_API_SERVER": standin.url}))

    def start():
        nm = netmaster_factory(args=["--mode", "kubernetes", "--k8s-config", str(cfg)])
        return nm

    nm = start()
    nm.json("POST", "/api/v1/networks/default:default-net/", NET)
    nm.restart = start  # type: ignore[attr-defined]
    return nm


def wait_for(cond, timeout: float = 20.0, what: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or cond}: last={last!r}")


def get(nm, path):
    st, _, text = nm.request("GET", path)
    return json.loads(text) if st == 200 else None


def rules(nm, policy):
    return sorted(
        (r for r in nm.json("GET", "/api/v1/rules/") if r["policyName"] == policy),
        key=lambda r: (r["direction"], r["action"], r.get("protocol", ""), r.get("port", 0),
                       r.get("fromIpAddress", "") + r.get("toIpAddress", "")),
    )  # fmt: skip


def brief(rs, target: str = ""):
    """(direction, action, priority, protocol, port, peer) of the rules scoped to ``target`` (the
    selected pod's address; "" = group-wide rules); rules of another target are left out."""
    out = []
    for r in rs:
        peer, tgt = (
            ("fromIpAddress", "toIpAddress") if r["direction"] == "in" else ("toIpAddress", "fromIpAddress")
        )
        if r.get(tgt, "") == target:
            out.append((r["direction"], r["action"], r["priority"], r.get("protocol", ""), r.get("port", 0),
                        r.get(peer) or ""))  # fmt: skip
    return out


def endpoint(nm, name: str, group: str = "") -> str:
    """A contiv endpoint as the CNI path makes for a pod (its address; in ``group`` if given)."""
    body = {"TenantName": "default", "NetworkName": "default-net", "EndpointID": name,
            "ConfigEP": {"Container": name, "Host": "tksh1", "IPAddress": "", "ServiceName": group}}  # fmt: skip
    return nm.json("POST", "/plugin/createEndpoint", body)["EndpointConfig"]["ipAddress"]


DENY_IN = [("in", "deny", 1, p, 0, "") for p in ("icmp", "tcp", "udp")]
DENY_OUT = [("out", "deny", 1, p, 0, "") for p in ("icmp", "tcp", "udp")]


def group_policies(nm, group):
    g = get(nm, f"/api/v1/endpointGroups/default:{group}/")
    return None if g is None else g.get("policies", [])


def ofnet_rule_ids(etcd_server, prefix=""):
    out = etcd_server.etcdctl("get", "--prefix", "--keys-only", "/contiv.io/state/policyRule/" + prefix)
    return {line for line in out.splitlines() if line}


def test_k8s_standin_namespace_create_delete(k8s_netmaster, standin, etcd_server):
    nm = k8s_netmaster
    standin.apply("Namespace", namespace("tk-a"))
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-a/"), what="group k8s-tk-a")
    g = get(nm, "/api/v1/endpointGroups/default:k8s-tk-a/")
    assert g["networkName"] == "default-net" and g["tenantName"] == "default"
    assert etcd_server.etcdctl("get", "--keys-only", "/contiv.io/obj/modeldb/endpointGroup/default:k8s-tk-a")
    assert etcd_server.etcdctl("get", "--keys-only", "/contiv.io/state/endpointGroups/k8s-tk-a:default")
    standin.delete("Namespace", "", "tk-a")
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-a/") is None, what="group deleted")
    assert not etcd_server.etcdctl("get", "--keys-only", "/contiv.io/state/endpointGroups/k8s-tk-a:default")


def test_k8s_standin_policy_pod_selector_update_delete_restart(k8s_netmaster, standin, etcd_server):
    nm = k8s_netmaster
    # a group of the user's with a policy of the user's: the watcher adds and removes only its own
    nm.json("POST", "/api/v1/policys/default:tk-user/", {"policyName": "tk-user", "tenantName": "default"})
    nm.json("POST", "/api/v1/endpointGroups/default:tk-db/",
            {"groupName": "tk-db", "networkName": "default-net", "tenantName": "default",
             "policies": ["tk-user"]})  # fmt: skip
    standin.apply("Namespace", namespace("tk-b"))
    db_ip = endpoint(nm, "tkdb1", "tk-db")  # a target must be a contiv endpoint of its group
    standin.apply("Pod", pod("tk-b", "web-1", "10.36.0.11", {"app": "web"}))
    standin.apply("Pod", pod("tk-b", "db-1", db_ip, {"app": "db", "io.contiv.net-group": "tk-db"}))
    standin.apply("Pod", pod("tk-b", "other", "10.36.0.13", {"app": "other"}))
    spec = {
        "podSelector": {"matchLabels": {"app": "db"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                     "ports": [{"protocol": "TCP", "port": 5432}]}],
    }  # fmt: skip
    standin.apply("NetworkPolicy", network_policy("tk-b", "db-allow", spec))
    pname = "k8s.tk-b.db-allow.G.tk-db"  # the policy's part for its selected pods in group tk-db
    allow = ("in", "allow", 2, "tcp", 5432, "10.36.0.11")
    wait_for(lambda: set(brief(rules(nm, pname), db_ip)) == {*DENY_IN, allow}, what="policy rules")
    assert len(rules(nm, pname)) == 4  # every rule is scoped to db-1, the one selected pod
    wait_for(lambda: group_policies(nm, "tk-db") == ["tk-user", pname], what="attached to tk-db")
    assert group_policies(nm, "k8s-tk-b") in ([], None) or pname not in group_policies(nm, "k8s-tk-b")
    # the EPG-policy state the data plane reads (docs/original.md: policyRule per direction)
    wait_for(lambda: len(ofnet_rule_ids(etcd_server, f"default:tk-db:default:{pname}:")) == 5,
             what="ofnet rules: 3 deny inRx + allow inRx/inTx")  # fmt: skip
    assert get(nm, "/api/v1/policys/default:k8s.tk-b.db-allow/") is None  # nothing for k8s-tk-b

    # a second web pod: one more allow rule, from its address
    standin.apply("Pod", pod("tk-b", "web-2", "10.36.0.14", {"app": "web"}))
    allow2 = ("in", "allow", 2, "tcp", 5432, "10.36.0.14")
    wait_for(lambda: set(brief(rules(nm, pname), db_ip)) == {*DENY_IN, allow, allow2}, what="second web pod")

    # policy update: another port; the old rules go, the new ones come
    spec["ingress"][0]["ports"] = [{"protocol": "TCP", "port": 5433}]
    standin.apply("NetworkPolicy", network_policy("tk-b", "db-allow", spec))
    want = {
        *DENY_IN,
        ("in", "allow", 2, "tcp", 5433, "10.36.0.11"),
        ("in", "allow", 2, "tcp", 5433, "10.36.0.14"),
    }
    wait_for(lambda: set(brief(rules(nm, pname), db_ip)) == want, what="updated port")

    # restart: the same state is recomputed, nothing is rewritten
    before = etcd_server.etcdctl("get", "--prefix", "-w", "json", "/contiv.io/obj/modeldb/rule/")
    nm.stop()
    nm2 = nm.restart()
    wait_for(lambda: "initial lists loaded" in nm2.log_path.read_text(), what="restarted watcher synced")
    time.sleep(1.5)
    after = etcd_server.etcdctl("get", "--prefix", "-w", "json", "/contiv.io/obj/modeldb/rule/")
    revs = lambda out: {kv["key"]: kv["mod_revision"] for kv in json.loads(out).get("kvs", [])}  # noqa: E731
    assert revs(before) == revs(after) and len(revs(after)) == 5

    # delete: detached, policy and rules gone, data-plane state gone
    standin.delete("NetworkPolicy", "tk-b", "db-allow")
    wait_for(lambda: get(nm2, f"/api/v1/policys/default:{pname}/") is None, what="policy deleted")
    assert group_policies(nm2, "tk-db") == ["tk-user"]
    assert rules(nm2, pname) == []
    wait_for(
        lambda: not ofnet_rule_ids(etcd_server, f"default:tk-db:default:{pname}:"), what="ofnet rules gone"
    )


def test_k8s_standin_default_deny_namespace_selector_ipblock_egress(k8s_netmaster, standin, etcd_server):
    nm = k8s_netmaster
    standin.apply("Namespace", namespace("tk-c"))
    standin.apply("Namespace", namespace("tk-front", {"team": "front"}))
    standin.apply("Namespace", namespace("tk-other"))
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-c/"), what="group k8s-tk-c")
    api_ip = endpoint(nm, "tkapi", "k8s-tk-c")
    standin.apply("Pod", pod("tk-c", "api", api_ip, {"app": "api"}))
    standin.apply("Pod", pod("tk-front", "ui", "10.36.1.2", {"app": "ui"}))
    standin.apply("Pod", pod("tk-other", "x", "10.36.1.3", {"app": "ui"}))
    # default deny of everything in tk-c (both directions)
    standin.apply("NetworkPolicy", network_policy("tk-c", "deny-all",
                  {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))  # fmt: skip
    wait_for(lambda: set(brief(rules(nm, "k8s.tk-c.deny-all"))) == {*DENY_IN, *DENY_OUT}, what="default deny")
    wait_for(lambda: group_policies(nm, "k8s-tk-c") == ["k8s.tk-c.deny-all"], what="deny attached")
    # ingress from namespaces labelled team=front; egress to a block minus an exception, UDP 53
    spec = {
        "podSelector": {"matchLabels": {"app": "api"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "front"}}}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                    "ports": [{"protocol": "UDP", "port": 53}]}],
    }  # fmt: skip
    standin.apply("NetworkPolicy", network_policy("tk-c", "api", spec))
    blocks = ["10.0.0.0/16", "10.128.0.0/9", "10.16.0.0/12", "10.2.0.0/15", "10.32.0.0/11",
              "10.4.0.0/14", "10.64.0.0/10", "10.8.0.0/13"]  # fmt: skip
    want = {*DENY_IN, *DENY_OUT, ("in", "allow", 2, "", 0, "10.36.1.2")}
    want |= {("out", "allow", 2, "udp", 53, b) for b in blocks}
    wait_for(lambda: set(brief(rules(nm, "k8s.tk-c.api"), api_ip)) == want, what="nsSelector + ipBlock rules")
    assert brief(rules(nm, "k8s.tk-c.api")) == []  # nothing group-wide: only the api pod is isolated
    wait_for(
        lambda: group_policies(nm, "k8s-tk-c") == ["k8s.tk-c.api", "k8s.tk-c.deny-all"], what="both attached"
    )
    # label another namespace: its pod becomes a peer
    standin.apply("Namespace", namespace("tk-other", {"team": "front"}))
    wait_for(lambda: ("in", "allow", 2, "", 0, "10.36.1.3") in set(brief(rules(nm, "k8s.tk-c.api"), api_ip)),
             what="new namespace matches")  # fmt: skip
    # the ofnet rules of the egress block: outTx + outRx per CIDR rule
    ids = ofnet_rule_ids(etcd_server, "default:k8s-tk-c:default:k8s.tk-c.api:")
    assert len(ids) == 6 + 2 + 2 * len(blocks)  # 6 deny, 2 allow-in (no port: inRx only), 16 egress
    # namespace delete: its policies, then its group go
    for name in ("api", "deny-all"):
        standin.delete("NetworkPolicy", "tk-c", name)
    standin.delete("Pod", "tk-c", "api")
    nm.json("POST", "/plugin/deleteEndpoint", {"TenantName": "default", "NetworkName": "default-net",
                                                "EndpointID": "tkapi"})  # fmt: skip
    standin.delete("Namespace", "", "tk-c")
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-c/") is None, what="group gone")
    assert [p for p in nm.json("GET", "/api/v1/policys/") if p["policyName"].startswith("k8s.tk-c.")] == []


def _lists(standin, path):
    return [q for p, q in standin.requests if p == path and q.get("watch") not in ("1", "true")]


def _watches(standin, path):
    return [q for p, q in standin.requests if p == path and q.get("watch") in ("1", "true")]


def test_k8s_standin_watch_disconnect_resume_and_410_relist(k8s_netmaster, standin):
    nm = k8s_netmaster
    path = "/api/v1/namespaces"
    standin.apply("Namespace", namespace("tk-d1"))
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-d1/"), what="first namespace")
    wait_for(lambda: standin.watch_count() >= 3, what="three watches open")
    lists = len(_lists(standin, path))
    seen = standin.rv
    standin.bookmark()
    # disconnect: the watcher resumes from the version it has seen, without listing again
    standin.drop_watches()
    standin.apply("Namespace", namespace("tk-d2"))
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-d2/"), what="namespace after disconnect")
    resumed = [int(q["resourceVersion"]) for q in _watches(standin, path)][-1]
    assert resumed == seen  # the bookmark's version: resumed, not relisted
    assert len(_lists(standin, path)) == lists
    # 410: history expired while disconnected; an event in the gap is found by the relist
    wait_for(lambda: standin.watch_count() >= 3, what="watches open again")
    standin.expire()
    standin.drop_watches()
    standin.apply("Namespace", namespace("tk-d3"))
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-d3/"), what="namespace after 410")
    assert len(_lists(standin, path)) > lists
    assert "expired (410); listing again" in nm.log_path.read_text()
    # a namespace deleted during a gap is removed after the relist, too
    standin.expire()
    standin.drop_watches()
    standin.delete("Namespace", "", "tk-d1")
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-d1/") is None, what="deleted in the gap")


def test_k8s_standin_untranslatable_objects_are_logged_and_skipped(k8s_netmaster, standin):
    nm = k8s_netmaster
    standin.apply("Namespace", namespace("tk-e"))
    standin.apply("Pod", pod("tk-e", "web", "10.36.2.1", {"app": "web"}))
    # a named port and SCTP cannot be expressed: left out, the rest of the policy applies
    spec = {
        "podSelector": {},
        "ingress": [{"ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "SCTP", "port": 9},
                               {"protocol": "TCP", "port": 80}]}],
    }  # fmt: skip
    standin.apply("NetworkPolicy", network_policy("tk-e", "named", spec))
    # a policy whose targets cannot be computed is skipped as a whole
    bad = {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]}}
    standin.apply("NetworkPolicy", network_policy("tk-e", "badsel", bad))
    standin.apply("NetworkPolicy", network_policy("tk-e", "nospec", {}) | {"spec": "oops"})
    wait_for(lambda: set(brief(rules(nm, "k8s.tk-e.named"))) == {*DENY_IN, ("in", "allow", 2, "tcp", 80, "")},
             what="translatable part")  # fmt: skip
    # each policy is its own reconciler key: wait until both skipped ones have been seen
    wait_for(lambda: "badsel skipped" in nm.log_path.read_text(), what="log line")
    wait_for(lambda: "nospec skipped" in nm.log_path.read_text(), what="log line")
    log = nm.log_path.read_text()
    assert "named port 'http' left out" in log
    assert "protocol SCTP left out" in log
    assert "NetworkPolicy tk-e/badsel skipped: unknown label selector operator 'Near'" in log
    assert "NetworkPolicy tk-e/nospec skipped: spec is not an object" in log
    assert get(nm, "/api/v1/policys/default:k8s.tk-e.badsel/") is None
    assert "Traceback" not in log
    # the watcher is still alive: later objects are translated
    standin.apply("Namespace", namespace("tk-e2"))
    wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-e2/"), what="watcher alive")


def _etcd_json(etcd_server, key):
    out = etcd_server.etcdctl("get", key, "--print-value-only")
    return json.loads(out) if out.strip() else None


def test_k8s_standin_service_cluster_ip_and_providers(k8s_netmaster, standin, etcd_server):
    nm = k8s_netmaster
    ips = []
    for i in (1, 2):  # the contiv endpoints the CNI path would have created for the two pods
        body = {"TenantName": "default", "NetworkName": "default-net", "EndpointID": f"tks{i}",
                "ConfigEP": {"Container": f"tks{i}", "Host": "tksh1", "IPAddress": ""}}  # fmt: skip
        ips.append(nm.json("POST", "/plugin/createEndpoint", body)["EndpointConfig"]["ipAddress"])
    standin.apply("Namespace", namespace("tk-s"))
    for i, ip in enumerate(ips):
        standin.apply("Pod", pod("tk-s", f"web-{i}", ip, {"app": "web"}))
    ports = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    standin.apply("Service", service("tk-s", "web", "10.36.200.10", {"app": "web"}, ports))
    standin.apply(
        "Endpoints", endpoints("tk-s", "web", ips, [{"name": "http", "port": 8080, "protocol": "TCP"}])
    )
    key = "/contiv.io/state/provider/k8s.tk-s.web:default"
    wait_for(lambda: (_etcd_json(etcd_server, key) or {}).get("Providers") == sorted(ips), what="providers")
    lb = get(nm, "/api/v1/serviceLBs/default:k8s.tk-s.web/")
    assert (
        lb["ports"] == ["80:8080:TCP"]
        and lb["selectors"] == ["app=web"]
        and lb["networkName"] == "default-net"
    )
    state = _etcd_json(etcd_server, "/contiv.io/state/serviceLB/k8s.tk-s.web:default")
    assert state["ipaddress"] == "10.36.200.10"  # the ClusterIP is the contiv VIP
    # a pod that is not ready any more stops being a provider
    standin.apply("Pod", pod("tk-s", "web-1", ips[1], {"app": "web"}, ready=False))
    wait_for(lambda: _etcd_json(etcd_server, key)["Providers"] == [ips[0]], what="not-ready pod dropped")
    # a ClusterIP outside the pod network: contiv picks the VIP, and says so
    standin.apply(
        "Service", service("tk-s", "far", "10.96.0.20", {"app": "web"}, [{"port": 53, "protocol": "UDP"}])
    )
    wait_for(lambda: get(nm, "/api/v1/serviceLBs/default:k8s.tk-s.far/"), what="second service")
    assert "cluster IP 10.96.0.20 is outside default-net" in nm.log_path.read_text()
    # Service deleted: its load balancer and provider state go
    standin.delete("Service", "tk-s", "web")
    wait_for(lambda: get(nm, "/api/v1/serviceLBs/default:k8s.tk-s.web/") is None, what="service deleted")
    assert _etcd_json(etcd_server, key) is None
    standin.delete("Service", "tk-s", "far")
    wait_for(lambda: get(nm, "/api/v1/serviceLBs/default:k8s.tk-s.far/") is None, what="far deleted")


def test_k8s_standin_only_the_leader_watches(netmaster_factory, standin, tmp_path):
    cfg = tmp_path / "contiv.json"
    cfg.write_text(json.dumps({"K8S_API_SERVER": standin.url}))
    args = ["--mode", "kubernetes", "--k8s-config", str(cfg)]
    nm1 = netmaster_factory(args=args)
    nm1.json("POST", "/api/v1/networks/default:default-net/", NET)
    nm2 = netmaster_factory(args=args)
    assert nm2.info()["leader-ip"] == f"127.0.0.1:{nm1.port}"  # nm2 follows (its /info is proxied)
    wait_for(lambda: standin.watch_count() == 5, what="the leader's five watches")
    time.sleep(1)
    assert standin.watch_count() == 5  # the follower does not watch
    nm1.stop()  # graceful: the follower takes over at once and starts its own list+watch
    wait_for(lambda: nm2.info()["leader-ip"] == f"127.0.0.1:{nm2.port}", what="follower takes over")
    standin.apply("Namespace", namespace("tk-h"))
    wait_for(lambda: get(nm2, "/api/v1/endpointGroups/default:k8s-tk-h/"), what="new leader translates")
    wait_for(lambda: standin.watch_count() == 5, what="only the new leader watches")


def test_k8s_standin_resync_repairs_rest_drift(netmaster_factory, standin, tmp_path):
    cfg = tmp_path / "contiv.json"
    cfg.write_text(json.dumps({"K8S_API_SERVER": standin.url}))
    nm = netmaster_factory(
        args=["--mode", "kubernetes", "--k8s-config", str(cfg)], env={"CONTIV_NETMASTER_K8S_RESYNC": "1"}
    )
    nm.json("POST", "/api/v1/networks/default:default-net/", NET)
    standin.apply("Namespace", namespace("tk-r"))
    standin.apply("NetworkPolicy", network_policy("tk-r", "deny", {"podSelector": {}}))
    wait_for(lambda: group_policies(nm, "k8s-tk-r") == ["k8s.tk-r.deny"], what="attached")
    # someone detaches the policy and deletes a rule through the REST API; no Kubernetes event follows
    g = get(nm, "/api/v1/endpointGroups/default:k8s-tk-r/")
    nm.json("POST", "/api/v1/endpointGroups/default:k8s-tk-r/", dict(g, policies=[]))
    victim = rules(nm, "k8s.tk-r.deny")[0]
    nm.json("DELETE", f"/api/v1/rules/{victim['key']}/")
    wait_for(lambda: group_policies(nm, "k8s-tk-r") == ["k8s.tk-r.deny"], what="re-attached by the resync")
    wait_for(lambda: set(brief(rules(nm, "k8s.tk-r.deny"))) == set(DENY_IN), what="rule put back")


def test_k8s_standin_tls_client_cert_and_token(netmaster_factory, tmp_path):
    from tests.fixtures.etcd import make_pki

    pki = make_pki(tmp_path)
    tls = {"cert": pki["server_cert"], "key": pki["server_key"], "client_ca": pki["ca"]}
    standin = K8sStandIn(tls=tls, token="tk-secret").start()
    try:
        token = tmp_path / "token"
        token.write_text("tk-secret\n")
        good = tmp_path / "good.json"
        good.write_text(json.dumps({"K8S_API_SERVER": standin.url, "K8S_CA": str(pki["ca"]),
                                    "K8S_CERT": str(pki["client_cert"]), "K8S_KEY": str(pki["client_key"]),
                                    "K8S_TOKEN": str(token)}))  # fmt: skip
        nm = netmaster_factory(args=["--mode", "kubernetes", "--k8s-config", str(good)])
        nm.json("POST", "/api/v1/networks/default:default-net/", NET)
        standin.apply("Namespace", namespace("tk-t"))
        wait_for(lambda: get(nm, "/api/v1/endpointGroups/default:k8s-tk-t/"), what="over https with a token")
        nm.stop()
        # a wrong token: 401 is logged and retried; netmaster keeps serving, nothing is translated
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(dict(json.loads(good.read_text()), K8S_TOKEN="wrong")))
        nm2 = netmaster_factory(args=["--mode", "kubernetes", "--k8s-config", str(bad)])
        standin.apply("Namespace", namespace("tk-t2"))
        wait_for(lambda: "HTTP 401" in nm2.log_path.read_text(), what="401 logged")
        assert get(nm2, "/api/v1/endpointGroups/default:k8s-tk-t2/") is None
        assert nm2.request("GET", "/version")[0] == 200
    finally:
        standin.stop()


def test_k8s_standin_services_headless_externalname_other_network_nodeport(
    k8s_netmaster, standin, etcd_server
):

    nm = k8s_netmaster
    other = {
        "encap": "vlan",
        "networkName": "tk-other-net",
        "subnet": "10.37.0.0/16",
        "tenantName": "default",
    }
    nm.json("POST", "/api/v1/networks/default:tk-other-net/", other)
    ips = []
    for i in (1, 2):  # the pods' contiv endpoints, on tk-other-net (not default-net)
        body = {"TenantName": "default", "NetworkName": "tk-other-net", "EndpointID": f"tkv{i}",
                "ConfigEP": {"Container": f"tkv{i}", "Host": "tksh1", "IPAddress": ""}}  # fmt: skip
        ips.append(nm.json("POST", "/plugin/createEndpoint", body)["EndpointConfig"]["ipAddress"])
    standin.apply("Namespace", namespace("tk-v"))
    for i, ip in enumerate(ips):
        standin.apply("Pod", pod("tk-v", f"api-{i}", ip, {"app": "api", "io.contiv.network": "tk-other-net"}))
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]
    # a ClusterIP Service whose pods are on tk-other-net: balanced there, the ClusterIP is the VIP
    standin.apply("Service", service("tk-v", "api", "10.37.0.100", {"app": "api"}, ports))
    key = "/contiv.io/state/provider/k8s.tk-v.api:default"
    wait_for(lambda: (_etcd_json(etcd_server, key) or {}).get("Providers") == sorted(ips), what="providers")
    lb = get(nm, "/api/v1/serviceLBs/default:k8s.tk-v.api/")
    assert lb["networkName"] == "tk-other-net" and "nodePorts" not in lb
    assert (
        _etcd_json(etcd_server, "/contiv.io/state/serviceLB/k8s.tk-v.api:default")["ipaddress"]
        == "10.37.0.100"
    )
    # headless and ExternalName: no load balancer, no VIP, an info line and no warning
    standin.apply("Service", service("tk-v", "hl", "None", {"app": "api"}, ports))
    ext = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "tk-v"},
           "spec": {"type": "ExternalName", "externalName": "db.example.org"}}  # fmt: skip
    standin.apply("Service", ext)
    # NodePort: its node ports go into the load balancer for the hosts' CONTIV-NODEPORT chain
    np = service("tk-v", "np", "10.37.0.101", {"app": "api"}, ports)
    np["spec"]["type"] = "NodePort"
    standin.apply("Service", np)
    wait_for(lambda: get(nm, "/api/v1/serviceLBs/default:k8s.tk-v.np/"), what="NodePort service")
    wait_for(lambda: "Service tk-v/ext: ExternalName" in nm.log_path.read_text(), what="ExternalName noted")
    wait_for(lambda: "Service tk-v/hl: headless" in nm.log_path.read_text(), what="headless noted")
    log = nm.log_path.read_text().splitlines()
    for name in ("hl", "ext"):
        lines = [ln for ln in log if f"Service tk-v/{name}" in ln]
        assert (
            lines
            and all("level=info" in ln for ln in lines)
            and not [ln for ln in lines if "level=warning" in ln or "level=error" in ln]
        ), lines
        assert get(nm, f"/api/v1/serviceLBs/default:k8s.tk-v.{name}/") is None
    assert not etcd_server.etcdctl("get", "--keys-only", "/contiv.io/state/serviceLB/k8s.tk-v.hl:default")
    np_lb = get(nm, "/api/v1/serviceLBs/default:k8s.tk-v.np/")
    # the node ports netplugin DNATs in CONTIV-NODEPORT (test_dataplane_nodeport.py: end to end)
    assert np_lb["nodePorts"] == ["30080:80:TCP"]
    state = _etcd_json(etcd_server, "/contiv.io/state/serviceLB/k8s.tk-v.np:default")
    assert state["nodeports"] == ["30080:80:TCP"]
    assert not [ln for ln in log if "Traceback" in ln]
    for name in ("api", "hl", "ext", "np"):
        standin.delete("Service", "tk-v", name)
    wait_for(lambda: get(nm, "/api/v1/serviceLBs/default:k8s.tk-v.np/") is None, what="np deleted")
    wait_for(lambda: get(nm, "/api/v1/serviceLBs/default:k8s.tk-v.api/") is None, what="api deleted")
