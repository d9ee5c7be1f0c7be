"""Create/delete cost does not grow with the number of objects (issue: per-create time grew
linearly with the number of networks), checked without timing:

- against a real netmaster + etcd, etcd's own counters (``/metrics``: Range/Txn calls handled and
  bytes sent to clients) per network / group / policy create and delete are the same with 20 and
  with 420 networks in the tenant. Before the fix each network create read every network of the
  tenant and rewrote the tenant record listing them all, so the bytes per create grew with N;
- the tenant's ``link-sets`` are derived on read: GET tenant lists every network / group /
  policy byte for byte as before, while the stored tenant record does not grow;
- the subnet overlap check uses the per-tenant index (contained, containing, ranged and v6
  subnets are refused with the original's message) and networks stored before the index existed
  are indexed when a leader starts.
"""

from __future__ import annotations

import json
import re
import statistics
import urllib.request

import pytest

from contivpy.model import keys
from contivpy.netmaster import subnetidx

pytestmark = pytest.mark.etcd

_METRICS = {
    "range": r'^grpc_server_handled_total\{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV".*\} (\S+)$',
    "txn": r'^grpc_server_handled_total\{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV".*\} (\S+)$',
    "sent": r"^etcd_network_client_grpc_sent_bytes_total (\S+)$",
}


def _metrics(etcd_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(etcd_url + "/metrics", timeout=10).read().decode()
    out = {}
    for name, pat in _METRICS.items():
        m = re.search(pat, text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def _net_body(name: str, i: int, **extra) -> dict:
    return dict(
        {
            "networkName": name,
            "tenantName": "default",
            "encap": "vxlan",
            "subnet": f"10.{i // 256}.{i % 256}.0/24",
        },
        **extra,
    )


def _ops(nm, tag: str, n: int, base: int) -> dict[str, tuple[str, str, dict | str]]:
    """n of each kind of request, per phase (network create, group create, ...)."""
    nets = [f"fc{tag}n{i}" for i in range(n)]
    return {
        "network create": [
            ("POST", f"/api/v1/networks/default:{x}/", _net_body(x, base + i)) for i, x in enumerate(nets)
        ],
        "group create": [
            (
                "POST",
                f"/api/v1/endpointGroups/default:fc{tag}g{i}/",
                {"groupName": f"fc{tag}g{i}", "networkName": nets[0], "tenantName": "default"},
            )
            for i in range(n)
        ],
        "policy create": [
            (
                "POST",
                f"/api/v1/policys/default:fc{tag}p{i}/",
                {"policyName": f"fc{tag}p{i}", "tenantName": "default"},
            )
            for i in range(n)
        ],
        "policy delete": [("DELETE", f"/api/v1/policys/default:fc{tag}p{i}/", None) for i in range(n)],
        "group delete": [("DELETE", f"/api/v1/endpointGroups/default:fc{tag}g{i}/", None) for i in range(n)],
        "network delete": [("DELETE", f"/api/v1/networks/default:{x}/", None) for x in nets],
    }


def _one(nm, etcd_url: str, method: str, path: str, body) -> dict[str, float]:
    """etcd's counters moved by one request."""
    before = _metrics(etcd_url)
    nm.json(method, path, body)
    after = _metrics(etcd_url)
    return {k: after[k] - before[k] for k in after}


def _median_per_op(deltas: list[dict[str, float]]) -> dict[str, float]:
    """Median per counter: periodic traffic of other clients (lease keep-alives, the service
    registry refresh) lands in a few requests' windows only."""
    return {k: statistics.median(d[k] for d in deltas) for k in deltas[0]}


def _measure(nm, etcd_url: str, tag: str, base: int, n: int = 10) -> dict[str, dict[str, float]]:
    return {
        phase: _median_per_op([_one(nm, etcd_url, m, p, b) for m, p, b in reqs])
        for phase, reqs in _ops(nm, tag, n, base).items()
    }


def test_etcd_work_per_request_does_not_grow_with_networks(netmaster, etcd_server):
    for i in range(20):
        nm_name = f"fcbase{i}"
        netmaster.json("POST", f"/api/v1/networks/default:{nm_name}/", _net_body(nm_name, 1000 + i))
    small = _measure(netmaster, etcd_server.url, "s", 2000)
    for i in range(400):
        nm_name = f"fcbulk{i}"
        netmaster.json("POST", f"/api/v1/networks/default:{nm_name}/", _net_body(nm_name, 3000 + i))
    large = _measure(netmaster, etcd_server.url, "l", 4000)
    for phase in small:
        s, g = small[phase], large[phase]
        # the same etcd calls per request (+-0.5: leader and lease keep-alives run meanwhile) ...
        assert abs(g["range"] - s["range"]) <= 0.5, (phase, s, g)
        assert abs(g["txn"] - s["txn"]) <= 0.5, (phase, s, g)
        # ... and the same bytes; before the fix a network create with 420 networks moved ~100 kB more
        assert g["sent"] <= s["sent"] * 1.15 + 500, (phase, s, g)
    tenant = netmaster.json("GET", "/api/v1/tenants/default/")
    assert len(tenant["link-sets"]["Networks"]) == 420


def test_tenant_link_sets_derived_on_read(netmaster, etcd_server):
    netmaster.json("POST", "/api/v1/networks/default:fcb/", _net_body("fcb", 2))
    netmaster.json("POST", "/api/v1/networks/default:fca/", _net_body("fca", 1))
    netmaster.json(
        "POST",
        "/api/v1/endpointGroups/default:fcg/",
        {"groupName": "fcg", "networkName": "fca", "tenantName": "default"},
    )
    netmaster.json("POST", "/api/v1/policys/default:fcp/", {"policyName": "fcp", "tenantName": "default"})
    expect = (
        '{"key":"default","tenantName":"default","link-sets":{'
        '"EndpointGroups":{"default:fcg":{"type":"endpointGroup","key":"default:fcg"}},'
        '"Networks":{"default:fca":{"type":"network","key":"default:fca"},'
        '"default:fcb":{"type":"network","key":"default:fcb"}},'
        '"Policies":{"default:fcp":{"type":"policy","key":"default:fcp"}}}}\n'
    )
    status, _, text = netmaster.request("GET", "/api/v1/tenants/default/")
    assert (status, text) == (200, expect)
    status, _, text = netmaster.request("GET", "/api/v1/tenants/")
    assert (status, text) == (200, "[" + expect.rstrip("\n") + "]\n")
    status, _, text = netmaster.request("GET", "/api/v1/inspect/tenants/default/")
    assert json.loads(text)["Oper"]["totalNetworks"] == 2
    # the stored record is not rewritten per member
    stored = etcd_server.etcdctl("get", "--print-value-only", keys.obj_key("tenant", "default")).strip()
    assert json.loads(stored)["link-sets"] == {}
    # a tenant with members is still refused delete, with the original's message (first check: groups)
    status, _, text = netmaster.request("DELETE", "/api/v1/tenants/default/", '"default"')
    assert status == 500 and "cannot delete default has 1 endpoint groups" in text
    netmaster.json("DELETE", "/api/v1/endpointGroups/default:fcg/", '"default:fcg"')
    netmaster.json("DELETE", "/api/v1/networks/default:fcb/", '"default:fcb"')
    assert list(netmaster.json("GET", "/api/v1/tenants/default/")["link-sets"]) == ["Networks", "Policies"]
    assert list(netmaster.json("GET", "/api/v1/tenants/default/")["link-sets"]["Networks"]) == ["default:fca"]


def test_subnet_overlap_through_the_index(netmaster, etcd_server):
    netmaster.json("POST", "/api/v1/networks/default:fco1/", _net_body("fco1", 0, subnet="10.5.0.0/16"))
    netmaster.json(
        "POST",
        "/api/v1/networks/default:fco2/",
        _net_body("fco2", 0, subnet="10.7.1.10-10.7.1.20/24", ipv6Subnet="2001:db8:1::/64"),
    )
    refused = [
        ("10.5.3.0/24", "", "network fco1 conflicts with subnet 10.5.3.0/24"),  # inside fco1
        ("10.0.0.0/8", "", "network fco1 conflicts with subnet 10.0.0.0/8"),  # contains both: lowest first
        ("10.7.1.0/24", "", "network fco2 conflicts with subnet 10.7.1.0/24"),  # contains fco2's range
        ("10.7.1.15-10.7.1.30/24", "", "network fco2 conflicts with subnet 10.7.1.15-10.7.1.30/24"),
        ("10.9.0.0/24", "2001:db8::/32", "network fco2 conflicts with subnetv6  2001:db8::/32"),
    ]
    for subnet, v6, msg in refused:
        body = _net_body("fcox", 0, subnet=subnet, **({"ipv6Subnet": v6} if v6 else {}))
        status, _, text = netmaster.request("POST", "/api/v1/networks/default:fcox/", body)
        assert (status, text.strip()) == (500, msg)
    # neighbours that touch but do not overlap are accepted
    netmaster.json(
        "POST", "/api/v1/networks/default:fco3/", _net_body("fco3", 0, subnet="10.7.1.21-10.7.1.40/24")
    )
    netmaster.json("POST", "/api/v1/networks/default:fco4/", _net_body("fco4", 0, subnet="10.6.0.0/16"))
    # another tenant may reuse the subnet
    netmaster.json("POST", "/api/v1/tenants/fct/", {"tenantName": "fct"})
    netmaster.json(
        "POST",
        "/api/v1/networks/fct:fco1/",
        dict(_net_body("fco1", 0, subnet="10.5.0.0/16"), tenantName="fct"),
    )
    # a delete frees its span
    netmaster.json("DELETE", "/api/v1/networks/default:fco1/", '"default:fco1"')
    netmaster.json("POST", "/api/v1/networks/default:fco5/", _net_body("fco5", 0, subnet="10.5.3.0/24"))
    idx = etcd_server.etcdctl("get", "--prefix", "--keys-only", subnetidx.INDEX + "v4/default/").split()
    assert idx == sorted(idx) and len(idx) == 4 and not any("fco1" in k for k in idx)


def test_networks_stored_before_the_index_are_indexed_at_leader_start(netmaster_factory, etcd_server):
    nm = netmaster_factory()
    nm.json("POST", "/api/v1/networks/default:fcold/", _net_body("fcold", 0, subnet="10.44.0.0/16"))
    nm.stop()
    # what a store written by an earlier version looks like: no index at all
    etcd_server.etcdctl("del", "--prefix", subnetidx.INDEX)
    nm2 = netmaster_factory()
    status, _, text = nm2.request(
        "POST", "/api/v1/networks/default:fcnew/", _net_body("fcnew", 0, subnet="10.44.1.0/24")
    )
    assert (status, text.strip()) == (500, "network fcold conflicts with subnet 10.44.1.0/24")
    assert etcd_server.etcdctl("get", "--print-value-only", subnetidx.BUILT).strip() == "1"


def _group(nm, name: str, net: str = "fcgn") -> None:
    nm.json(
        "POST",
        f"/api/v1/endpointGroups/default:{name}/",
        {"groupName": name, "networkName": net, "tenantName": "default"},
    )


def _epg_ids(etcd_server) -> dict[str, int]:
    out = etcd_server.etcdctl("get", "--prefix", "/contiv.io/master/epgid/").split("\n")
    return {v: int(k.rsplit("/", 1)[1]) for k, v in zip(out[0::2], out[1::2], strict=False) if k}


def test_group_create_cost_does_not_grow_with_groups(netmaster, etcd_server):
    """Groups spread over networks (a network's own EndpointGroups link set still grows with its
    groups: docs/benchmarks.md); the probes use a fresh network each."""

    def per_create(tag: str, i: int) -> float:
        netmaster.json("POST", f"/api/v1/networks/default:fcgn{tag}/", _net_body(f"fcgn{tag}", i))
        deltas = []
        for k in range(10):
            body = {"groupName": f"fcq{tag}{k}", "networkName": f"fcgn{tag}", "tenantName": "default"}
            deltas.append(
                _one(netmaster, etcd_server.url, "POST", f"/api/v1/endpointGroups/default:fcq{tag}{k}/", body)
            )
        return _median_per_op(deltas)["sent"]

    small = per_create("a", 1)
    for n in range(30):
        netmaster.json("POST", f"/api/v1/networks/default:fcgb{n}/", _net_body(f"fcgb{n}", 100 + n))
        for k in range(10):
            _group(netmaster, f"fcgb{n}x{k}", f"fcgb{n}")
    large = per_create("b", 2)
    # before the id bitmap every create read all /contiv.io/master/epgid/* keys (+~60 bytes per group)
    assert large <= small * 1.15 + 500, (small, large)


def test_epg_ids_lowest_free_with_a_missing_or_stale_index(netmaster, etcd_server):
    from contivpy.netmaster.hooks.group import EPG_ID_USED

    netmaster.json("POST", "/api/v1/networks/default:fcgn/", _net_body("fcgn", 7))
    for i in range(5):
        _group(netmaster, f"fce{i}")
    assert sorted(_epg_ids(etcd_server).values()) == [1, 2, 3, 4, 5]
    netmaster.json("DELETE", "/api/v1/endpointGroups/default:fce1/", '"default:fce1"')
    _group(netmaster, "fcex")  # the freed id is reused
    assert _epg_ids(etcd_server)["fcex:default"] == 2
    # index missing (a store written before it existed): rebuilt from the id keys
    etcd_server.etcdctl("del", EPG_ID_USED)
    _group(netmaster, "fcey")
    assert _epg_ids(etcd_server)["fcey:default"] == 6
    # a stale index claiming everything is free never hands out an id in use
    etcd_server.etcdctl("put", EPG_ID_USED, '"AAAAAAAAAAA="')
    _group(netmaster, "fcez")
    ids = _epg_ids(etcd_server)
    assert ids["fcez:default"] == 7 and len(set(ids.values())) == len(ids) == 7


def test_tenant_inspect_reads_state_once_and_matches_each_object(netmaster, etcd_server):
    """The tenant's Oper lists each network's and group's Oper (without their tags) from
    one read of the state records: the same as inspecting each object, with endpoints present,
    and the number of etcd reads does not depend on the number of networks."""
    for i in range(3):
        netmaster.json("POST", f"/api/v1/networks/default:fci{i}/", _net_body(f"fci{i}", 50 + i))
    _group(netmaster, "fcig", "fci1")
    for name, group in (("fciep1", ""), ("fciep2", "fcig"), ("fciep3", "fcig")):
        body = {
            "TenantName": "default",
            "NetworkName": "fci1",
            "ServiceName": group,
            "EndpointID": name,
            "ConfigEP": {"Container": name, "Host": "fcihost", "ServiceName": group},
        }
        netmaster.json("POST", "/plugin/createEndpoint", body)

    def reads() -> float:
        return _metrics(etcd_server.url)["range"]

    r0 = reads()
    oper = netmaster.json("GET", "/api/v1/inspect/tenants/default/")["Oper"]
    small = reads() - r0
    for i in range(3):
        want = netmaster.json("GET", f"/api/v1/inspect/networks/default:fci{i}/")["Oper"]
        assert oper["networks"][i] == {k: v for k, v in want.items() if k != "networkTag"}
    want = netmaster.json("GET", "/api/v1/inspect/endpointGroups/default:fcig/")["Oper"]
    assert want["numEndpoints"] == 2 and len(want["endpoints"]) == 2
    assert oper["endpointGroups"] == [{k: v for k, v in want.items() if k != "groupTag"}]
    assert oper["networks"][1]["numEndpoints"] == 3 and oper["totalEndpoints"] == 3
    for i in range(3, 60):
        netmaster.json("POST", f"/api/v1/networks/default:fci{i}/", _net_body(f"fci{i}", 50 + i))
    r0 = reads()
    assert len(netmaster.json("GET", "/api/v1/inspect/tenants/default/")["Oper"]["networks"]) == 60
    assert reads() - r0 <= small + 1  # was 2 reads per network
