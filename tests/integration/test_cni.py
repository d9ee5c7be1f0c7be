"""CNI: the real ``contivk8s`` plugin executable run with CNI_* variables against pod network
namespaces on the two hosts of the test bed (real etcd, netmaster, one netplugin per host, OVS
userspace datapath). This is the direct-exec path a runtime (kubelet/CRI, podman, cnitool) takes.

Covers: ADD for every spec version with the spec's result shape, addresses/MTU/default route in the
pod, cross-host ping between pods; DEL releases address, OVS port, veth and records and is
idempotent (also when the netns is gone); CHECK passes, then detects a removed interface; prevResult
kept in ADD's result; ADD twice refused without harming the first; every bad input gets its CNI code
and leaves nothing behind; labels from CNI_ARGS and from the configuration's ``args``; a network
without gateway gets an on-link default route; pods survive an agent restart and are deleted after it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.fixtures.cni import PodNs, cni, net_conf
from tests.fixtures.testbed import wait_for

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

SUBNET = "10.120.1"


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.start_all()
        b.create_network("default-net", f"{SUBNET}.0/24", gateway=f"{SUBNET}.254")
        b.create_network("nogw-net", "10.120.2.0/24")
        b.create_network("lab-net", "10.120.3.0/24", tenant="cnit", gateway="10.120.3.254")
        out = b.netctl("group", "create", "default-net", "web")
        assert "web" in out or out == "" or "Creating" in out
        yield b


@pytest.fixture
def pods():
    made: list[PodNs] = []

    def make(name: str) -> PodNs:
        p = PodNs(f"tnpck{name}")
        made.append(p)
        return p

    yield make
    for p in made:
        p.delete()


def etcd_keys(bed, prefix: str) -> list[str]:
    return sorted(k for k in bed.etcdctl("get", prefix, "--prefix", "--keys-only").split() if k)


def etcd_json(bed, key: str) -> dict | None:
    v = bed.etcdctl("get", key, "--print-value-only").strip()
    return json.loads(v) if v else None


def host_links(host) -> list[str]:
    return sorted(n for n in host.links() if n.startswith("vport") or n.startswith("vvport"))


def snapshot(bed) -> dict:
    """Everything an attachment allocates: endpoint states and oper records, CNI records, address
    allocation records, OVS endpoint ports and veths on both hosts."""
    snap = {
        p: etcd_keys(bed, p)
        for p in ("/contiv.io/state/eps/", "/contiv.io/oper/eps/", "/contiv.io/oper/cni/")
    }
    snap["addrAlloc"] = etcd_keys(bed, "/contiv.io/state/addrAlloc/")
    snap["ipAllocMap"] = etcd_json(bed, "/contiv.io/state/nets/default-net.default").get("ipAllocMap")
    for i, h in bed.hosts.items():
        snap[f"ports{i}"] = [
            p for p in h.ports("contivVxlanBridge") + h.ports("contivVlanBridge") if "vport" in p
        ]
        snap[f"links{i}"] = host_links(h)
    return snap


def test_add_every_version_ping_across_hosts_and_del(bed, pods):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    before = snapshot(bed)
    p1, p2, p3 = pods("a1"), pods("a2"), pods("a3")
    r1 = cni(
        h1,
        "ADD",
        "ctr-a1",
        p1.path,
        conf=net_conf(h1, "1.0.0"),
        args="K8S_POD_NAME=web-1;K8S_POD_NAMESPACE=ns1",
    )
    r2 = cni(h2, "ADD", "ctr-a2", p2.path, ifname="net0", conf=net_conf(h2, "0.3.1"))
    r3 = cni(h2, "ADD", "ctr-a3", p3.path, conf=net_conf(h2, "0.4.0"))
    for r, v in ((r1, "1.0.0"), (r2, "0.3.1"), (r3, "0.4.0")):
        assert r.rc == 0, r
        assert r.out["cniVersion"] == v
        ip = r.out["ips"][0]
        assert ip["address"].startswith(SUBNET + ".") and ip["address"].endswith("/24")
        assert ip["gateway"] == f"{SUBNET}.254"
        assert ("version" in ip) == (v != "1.0.0") and ip.get("version", "4") == "4"
        assert r.out["interfaces"][ip["interface"]]["sandbox"].startswith("/run/netns/tnpck")
        assert r.out["routes"] == [{"dst": "0.0.0.0/0", "gw": f"{SUBNET}.254"}]
    a1, a2 = r1.out["ips"][0]["address"], r2.out["ips"][0]["address"]
    assert r2.out["interfaces"][1]["name"] == "net0" and "net0" in p2.links()
    # in the pod: the address, the MAC the result names, MTU 1450, default route via the gateway
    addr = p1.exec("ip", "-o", "addr", "show", "dev", "eth0")
    assert a1 in addr
    link = p1.exec("ip", "-o", "link", "show", "dev", "eth0")
    assert "mtu 1450" in link and r1.out["interfaces"][1]["mac"] in link and "UP" in link
    assert f"default via {SUBNET}.254 dev eth0" in p1.exec("ip", "route")
    assert p1.ping(a2.split("/")[0]), "pod h1 -> pod h2"
    assert p2.ping(a1.split("/")[0]), "pod h2 -> pod h1"
    # the endpoint is netmaster's, with the pod's name (EPCommonName) and the container id
    sid = "default-net.default-ctr-a1"
    ep = etcd_json(bed, f"/contiv.io/state/eps/{sid}")
    assert ep["ipAddress"] == a1.split("/")[0] and ep["homingHost"] == "h1"
    wait_for(
        lambda: etcd_json(bed, f"/contiv.io/state/eps/{sid}").get("epCommonName") == "web-1",
        10,
        what="pod name",
    )
    rec = etcd_json(bed, "/contiv.io/oper/cni/h1/ctr-a1/eth0")
    assert rec["state"] == "ready" and rec["stateId"] == sid and rec["podNamespace"] == "ns1"
    host_port = r1.out["interfaces"][0]["name"]
    assert host_port in h1.ports("contivVxlanBridge")
    # DEL: everything goes (address, OVS port, veth, records); a second DEL is fine
    for h, cid, p, ifn in (
        (h1, "ctr-a1", p1, "eth0"),
        (h2, "ctr-a2", p2, "net0"),
        (h2, "ctr-a3", p3, "eth0"),
    ):
        d = cni(h, "DEL", cid, p.path, ifname=ifn)
        assert d.rc == 0 and d.out is None, d
        assert cni(h, "DEL", cid, p.path, ifname=ifn).rc == 0
    assert etcd_json(bed, f"/contiv.io/state/eps/{sid}") is None
    assert host_port not in h1.ports("contivVxlanBridge")
    assert p1.links() == ["lo"] and p2.links() == ["lo"]
    assert snapshot(bed) == before
    # the address is free again: first-fit hands it out anew
    r = cni(h1, "ADD", "ctr-a4", p1.path)
    assert r.rc == 0 and r.out["ips"][0]["address"] == min(
        a1,
        r2.out["ips"][0]["address"],
        r3.out["ips"][0]["address"],
        key=lambda a: int(a.split("/")[0].rsplit(".", 1)[1]),
    )
    assert cni(h1, "DEL", "ctr-a4", p1.path).rc == 0
    assert snapshot(bed) == before


def test_del_after_netns_is_gone_and_without_netns(bed, pods):
    h1 = bed.hosts[1]
    before = snapshot(bed)
    p = pods("g1")
    assert cni(h1, "ADD", "ctr-g1", p.path).rc == 0
    p.delete()  # the runtime removed the namespace first: the veth pair went with it
    d = cni(h1, "DEL", "ctr-g1", p.path)
    assert d.rc == 0, d
    assert cni(h1, "DEL", "ctr-g1", "").rc == 0  # no CNI_NETNS at all: still fine
    assert snapshot(bed) == before


def test_check_passes_then_detects_removed_interface(bed, pods):
    h1 = bed.hosts[1]
    p = pods("c1")
    before = snapshot(bed)
    add = cni(h1, "ADD", "ctr-c1", p.path, conf=net_conf(h1, "0.4.0"))
    assert add.rc == 0
    ok = cni(h1, "CHECK", "ctr-c1", p.path, conf=net_conf(h1, "0.4.0", prevResult=add.out))
    assert ok.rc == 0 and ok.out is None, ok
    # a prevResult naming an address the interface does not have
    bad_prev = json.loads(json.dumps(add.out))
    bad_prev["ips"][0]["address"] = f"{SUBNET}.200/24"
    r = cni(h1, "CHECK", "ctr-c1", p.path, conf=net_conf(h1, "0.4.0", prevResult=bad_prev))
    assert r.rc == 1 and r.out["code"] == 102 and f"lacks address {SUBNET}.200/24" in r.out["msg"]
    # CHECK is not in 0.3.1; unknown container -> code 3
    assert cni(h1, "CHECK", "ctr-c1", p.path, conf=net_conf(h1, "0.3.1")).out["code"] == 1
    assert cni(h1, "CHECK", "ctr-none", p.path).out["code"] == 3
    p.exec("ip", "link", "del", "eth0")
    r = cni(h1, "CHECK", "ctr-c1", p.path, conf=net_conf(h1, "1.0.0", prevResult=add.out))
    assert r.rc == 1 and r.out["code"] == 102, r
    assert r.out["msg"] == f"Contiv: interface eth0 not found in {p.path}"
    assert cni(h1, "DEL", "ctr-c1", p.path).rc == 0
    assert snapshot(bed) == before


def test_prev_result_kept_in_add_result(bed, pods):
    h1 = bed.hosts[1]
    p = pods("pr")
    prev = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "lo", "sandbox": p.path}],
        "ips": [{"version": "4", "address": "127.0.0.1/8", "interface": 0}],
        "dns": {"nameservers": ["10.120.1.53"]},
    }
    r = cni(h1, "ADD", "ctr-pr", p.path, conf=net_conf(h1, "1.0.0", prevResult=prev))
    try:
        assert r.rc == 0, r
        assert [i["name"] for i in r.out["interfaces"]][::2] == ["lo", "eth0"]
        assert r.out["ips"][0] == {"address": "127.0.0.1/8", "interface": 0}
        assert r.out["ips"][1]["interface"] == 2 and r.out["dns"] == prev["dns"]
    finally:
        assert cni(h1, "DEL", "ctr-pr", p.path).rc == 0


def test_add_twice_is_refused_and_the_first_survives(bed, pods):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    p, q, peer = pods("t1"), pods("t2"), pods("t3")
    first = cni(h1, "ADD", "ctr-t1", p.path)
    other = cni(h2, "ADD", "ctr-t3", peer.path)
    assert first.rc == 0 and other.rc == 0
    before = snapshot(bed)
    again = cni(h1, "ADD", "ctr-t1", p.path)
    assert again.rc == 1 and again.out["code"] == 101, again
    assert "already has interface eth0" in again.out["msg"]
    # another container id, but the pod already has an eth0: refused before anything is allocated
    clash = cni(h1, "ADD", "ctr-t2", p.path)
    assert clash.rc == 1 and clash.out["code"] == 101 and "already exists" in clash.out["msg"], clash
    assert snapshot(bed) == before
    assert peer.ping(first.out["ips"][0]["address"].split("/")[0])
    for h, cid, ns in ((h1, "ctr-t1", p), (h2, "ctr-t3", peer)):
        assert cni(h, "DEL", cid, ns.path).rc == 0
    assert q.links() == ["lo"]


BAD = [
    # (id, env overrides, conf overrides or raw text, expected code, message fragment)
    ("no-command", {"CNI_COMMAND": None}, {}, 4, "CNI_COMMAND is not set"),
    ("bad-command", {"CNI_COMMAND": "ATTACH"}, {}, 4, "unknown CNI_COMMAND 'ATTACH'"),
    ("no-container", {"CNI_CONTAINERID": ""}, {}, 4, "CNI_CONTAINERID is not set"),
    ("bad-container", {"CNI_CONTAINERID": "a/b"}, {}, 4, "invalid CNI_CONTAINERID"),
    ("no-netns", {"CNI_NETNS": ""}, {}, 4, "CNI_NETNS is not set"),
    ("missing-netns", {"CNI_NETNS": "/run/netns/tnpck-absent"}, {}, 4, "no such file"),
    ("file-not-netns", {"CNI_NETNS": "/etc/hostname"}, {}, 4, "is not a network namespace"),
    ("no-ifname", {"CNI_IFNAME": ""}, {}, 4, "CNI_IFNAME is not set"),
    ("bad-ifname", {"CNI_IFNAME": "eth0:1"}, {}, 4, "not a valid interface name"),
    (
        "unknown-network",
        {"CNI_ARGS": "io.contiv.network=nosuch-net"},
        {},
        7,
        "network nosuch-net not found in tenant default",
    ),
    ("unknown-tenant", {}, {"args": {"io.contiv.tenant": "nosuch"}}, 7, "tenant nosuch not found"),
    ("unknown-group", {"CNI_ARGS": "io.contiv.net-group=nogroup"}, {}, 7, "endpoint group nogroup not found"),
    (
        "unreachable-socket",
        {},
        {"cniSocket": "/run/tnpck-no.sock"},
        11,
        "cannot reach netplugin on /run/tnpck-no.sock",
    ),
    ("old-version", {}, {"cniVersion": "0.2.0"}, 1, "incompatible CNI version 0.2.0"),
    ("bad-json", {}, "{", 6, "cannot decode the network configuration"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_gets_cni_error_and_leaves_nothing(bed, pods, case):
    _id, env, conf, code, fragment = case
    h1 = bed.hosts[1]
    p = pods("b")
    before = snapshot(bed)
    c = conf if isinstance(conf, str) else {**net_conf(h1), **conf}
    r = cni(h1, "ADD", "ctr-bad", p.path, conf=c, env=env)
    assert r.rc == 1, r
    assert r.out["code"] == code, r.out
    assert r.out["msg"].startswith("Contiv: ") and fragment in r.out["msg"], r.out
    assert r.stderr == "" and "Traceback" not in json.dumps(r.out)
    assert snapshot(bed) == before
    assert p.links() == ["lo"]


def test_labels_from_cni_args_and_config_args(bed, pods):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    p1, p2, p3 = pods("l1"), pods("l2"), pods("l3")
    before = snapshot(bed)
    # tenant + network from the configuration's args (conventions' list form), network from CNI_ARGS
    labels = [{"key": "io.contiv.tenant", "value": "cnit"}, {"key": "io.contiv.network", "value": "lab-net"}]
    r1 = cni(h1, "ADD", "ctr-l1", p1.path, conf=net_conf(h1, args={"cni": {"labels": labels}}))
    r2 = cni(
        h2, "ADD", "ctr-l2", p2.path, args="IgnoreUnknown=1;io.contiv.tenant=cnit;io.contiv.network=lab-net"
    )
    # CNI_ARGS wins over args; the group label puts the endpoint in the group
    r3 = cni(
        h1,
        "ADD",
        "ctr-l3",
        p3.path,
        conf=net_conf(h1, args={"io.contiv.network": "lab-net"}),
        args="io.contiv.network=default-net;io.contiv.net-group=web",
    )
    assert r1.rc == 0 and r2.rc == 0 and r3.rc == 0, (r1, r2, r3)
    assert r1.out["ips"][0]["address"].startswith("10.120.3.") and r2.out["ips"][0]["address"].startswith(
        "10.120.3."
    )
    assert r3.out["ips"][0]["address"].startswith(SUBNET + ".")
    assert etcd_json(bed, "/contiv.io/state/eps/lab-net.cnit-ctr-l1")["homingHost"] == "h1"
    ep3 = etcd_json(bed, "/contiv.io/state/eps/default-net.default-ctr-l3")
    assert ep3["serviceName"] == "web" and ep3["endpointGroupId"] > 0
    assert p1.ping(r2.out["ips"][0]["address"].split("/")[0])
    for h, cid, ns in ((h1, "ctr-l1", p1), (h2, "ctr-l2", p2), (h1, "ctr-l3", p3)):
        assert cni(h, "DEL", cid, ns.path, conf=net_conf(h)).rc == 0  # DEL finds it by its record
    assert snapshot(bed) == before


def test_network_without_gateway_gets_on_link_default_route(bed, pods):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    p1, p2 = pods("n1"), pods("n2")
    r1 = cni(h1, "ADD", "ctr-n1", p1.path, args="io.contiv.network=nogw-net")
    r2 = cni(h2, "ADD", "ctr-n2", p2.path, args="io.contiv.network=nogw-net")
    try:
        assert r1.rc == 0 and r2.rc == 0
        assert "gateway" not in r1.out["ips"][0] and r1.out["routes"] == [{"dst": "0.0.0.0/0"}]
        default = [ln for ln in p1.exec("ip", "route").splitlines() if ln.startswith("default")]
        assert len(default) == 1 and default[0].startswith("default dev eth0") and "scope link" in default[0]
        assert p1.ping(r2.out["ips"][0]["address"].split("/")[0])
    finally:
        assert cni(h1, "DEL", "ctr-n1", p1.path).rc == 0
        assert cni(h2, "DEL", "ctr-n2", p2.path).rc == 0


def test_parallel_adds_and_dels(bed, pods):
    """10 ADDs at once on one host (what a node starting pods does), then 10 DELs at once."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    peer = pods("pp")
    assert cni(h2, "ADD", "ctr-pp", peer.path).rc == 0
    before = snapshot(bed)
    ns = [pods(f"p{i}") for i in range(10)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(10) as ex:
        adds = list(ex.map(lambda i: cni(h1, "ADD", f"ctr-p{i}", ns[i].path), range(10)))
    assert all(r.rc == 0 for r in adds), [r.out for r in adds if r.rc]
    ips = {r.out["ips"][0]["address"] for r in adds}
    assert len(ips) == 10
    assert all(
        ns[i].ping(peer_ip)
        for i in (0, 9)
        for peer_ip in [etcd_json(bed, "/contiv.io/oper/cni/h2/ctr-pp/eth0")["ipAddress"].split("/")[0]]
    )
    with ThreadPoolExecutor(10) as ex:
        dels = list(ex.map(lambda i: cni(h1, "DEL", f"ctr-p{i}", ns[i].path), range(10)))
    assert all(r.rc == 0 for r in dels)
    assert snapshot(bed) == before
    assert cni(h2, "DEL", "ctr-pp", peer.path).rc == 0


def test_pod_labels_from_kubernetes_api_stand_in(bed, pods):
    """Stand-in API server (tests/fixtures/k8sapi.py; not a real cluster): with ``--k8s-config`` the
    pod's labels in the API choose tenant and network and win over CNI_ARGS; an unknown pod falls
    back to the CNI labels; an API error is "try again later" and leaves nothing behind."""
    from tests.fixtures.k8sapi import StandInApi
    from tests.fixtures.testbed import CTRL_IP

    h1 = bed.hosts[1]
    api = StandInApi(CTRL_IP)
    conf = h1.dir / "contiv.json"
    conf.write_text(json.dumps({"K8S_API_SERVER": api.url, "K8S_TOKEN": "tnp-token"}))
    p1, p2, p3 = pods("k1"), pods("k2"), pods("k3")
    api.pods[("ns1", "api-pod")] = {
        "labels": {"io.contiv.tenant": "cnit", "io.contiv.network": "lab-net", "app": "web"}
    }
    api.status[("ns1", "broken")] = 500
    h1.stop_netplugin()
    try:
        h1.start_netplugin("--k8s-config", str(conf))
        before = snapshot(bed)
        r1 = cni(
            h1,
            "ADD",
            "ctr-k1",
            p1.path,
            args="K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=api-pod;io.contiv.network=default-net",
        )
        assert r1.rc == 0, r1
        assert r1.out["ips"][0]["address"].startswith("10.120.3.")  # lab-net of tenant cnit, from the API
        assert api.auth and all(a == "Bearer tnp-token" for a in api.auth)
        wait_for(
            lambda: (
                (etcd_json(bed, "/contiv.io/state/eps/lab-net.cnit-ctr-k1") or {})
                .get("labels", {})
                .get("app")
                == "web"
            ),
            10,
            what="API labels on the endpoint",
        )
        r2 = cni(h1, "ADD", "ctr-k2", p2.path, args="K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=not-in-api")
        assert r2.rc == 0 and r2.out["ips"][0]["address"].startswith(SUBNET + ".")
        mid = snapshot(bed)
        r3 = cni(h1, "ADD", "ctr-k3", p3.path, args="K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=broken")
        assert r3.rc == 1 and r3.out["code"] == 11 and "Kubernetes API" in r3.out["msg"], r3.out
        assert snapshot(bed) == mid
        for cid, ns in (("ctr-k1", p1), ("ctr-k2", p2)):
            assert cni(h1, "DEL", cid, ns.path).rc == 0
        assert snapshot(bed) == before
    finally:
        h1.stop_netplugin()
        h1.start_netplugin()
        api.close()


def test_pods_survive_agent_restart(bed, pods):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    p1, p2, p3 = pods("r1"), pods("r2"), pods("r3")
    before = snapshot(bed)
    r1 = cni(h1, "ADD", "ctr-r1", p1.path)
    r2 = cni(h2, "ADD", "ctr-r2", p2.path)
    assert r1.rc == 0 and r2.rc == 0
    ip1, ip2 = (r.out["ips"][0]["address"].split("/")[0] for r in (r1, r2))
    assert p2.ping(ip1)  # ARP is answered by the agents (proxy mode): learnt while they run
    h1.stop_netplugin()
    assert not os.path.exists(h1.cni_socket)  # removed at stop: a runtime gets "try again later"
    down = cni(h1, "ADD", "ctr-r3", p3.path)
    assert down.rc == 1 and down.out["code"] == 11
    try:
        assert p2.ping(ip1), "the data path keeps working while the agent is down"
    finally:
        h1.start_netplugin()
    assert p1.ping(ip2) and p2.ping(ip1)
    assert cni(h1, "CHECK", "ctr-r1", p1.path, conf=net_conf(h1, prevResult=r1.out)).rc == 0
    r3 = cni(h1, "ADD", "ctr-r3", p3.path)
    assert r3.rc == 0 and p3.ping(ip2)
    for h, cid, ns in ((h1, "ctr-r1", p1), (h2, "ctr-r2", p2), (h1, "ctr-r3", p3)):
        assert cni(h, "DEL", cid, ns.path).rc == 0
    wait_for(lambda: snapshot(bed) == before, 10, what="state back to before")


def test_interrupted_add_is_rolled_back_at_restart(bed, pods):
    """An ADD cut short (record still ``adding``: the runtime was told it failed) is undone when the
    agent starts: endpoint, port and record go."""
    h1 = bed.hosts[1]
    p = pods("i1")
    before = snapshot(bed)
    assert cni(h1, "ADD", "ctr-i1", p.path).rc == 0
    key = "/contiv.io/oper/cni/h1/ctr-i1/eth0"
    rec = etcd_json(bed, key)
    h1.stop_netplugin()
    rec["state"] = "adding"
    subprocess.run(
        ["etcdctl", "--endpoints", bed.etcd_url, "put", key],
        input=json.dumps(rec),
        text=True,
        check=True,
        capture_output=True,
    )
    h1.start_netplugin()
    wait_for(lambda: snapshot(bed) == before, 15, what="interrupted ADD rolled back")
    assert p.links() == ["lo"]
