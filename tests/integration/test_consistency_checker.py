"""The whole-store consistency checker (tests/support/consistency.py) on a real netmaster and etcd
(prefix tcc): it finds nothing after normal scenarios, and it reports each kind of broken state
when one is planted in etcd on purpose (so a fuzz run that passes it means something).
"""

from __future__ import annotations

import json

import pytest

from contivpy.model.state import EndpointGroupState, EndpointState, NetworkState
from contivpy.netmaster.bitset import Bitset
from tests.support import consistency

pytestmark = pytest.mark.etcd

T = "tcct"


@pytest.fixture
def scenario(netmaster_factory, etcd_server):
    """A populated store: every object kind, endpoints (free, claimed, in a pool), a VIP, open
    allocations, IPv6, a range subnet, vlan and vxlan networks."""
    nm = netmaster_factory()

    def ok(method: str, path: str, body=None):
        status, _, text = nm.request(method, path, body)
        assert status == 200, f"{method} {path} -> {status}: {text}"
        return json.loads(text)

    ok("POST", f"/api/v1/tenants/{T}/", {"tenantName": T})
    ok("POST", f"/api/v1/networks/{T}:tccv/", {"tenantName": T, "networkName": "tccv", "encap": "vlan",
       "subnet": "10.81.0.0/24", "gateway": "10.81.0.254", "ipv6Subnet": "2001:db8:81::/64",
       "ipv6Gateway": "2001:db8:81::1"})  # fmt: skip
    ok("POST", f"/api/v1/networks/{T}:tccx/", {"tenantName": T, "networkName": "tccx", "encap": "vxlan",
       "subnet": "10.82.0.10-10.82.0.40/24"})  # fmt: skip
    ok(
        "POST",
        f"/api/v1/netprofiles/{T}:tccnp/",
        {"tenantName": T, "profileName": "tccnp", "bandwidth": "10mbps"},
    )
    ok("POST", f"/api/v1/policys/{T}:tccp/", {"tenantName": T, "policyName": "tccp"})
    ok("POST", f"/api/v1/endpointGroups/{T}:tccg/", {"tenantName": T, "groupName": "tccg", "networkName": "tccv",
       "ipPool": "10.81.0.100-10.81.0.110", "netProfile": "tccnp", "policies": ["tccp"]})  # fmt: skip
    ok(
        "POST",
        f"/api/v1/endpointGroups/{T}:tcch/",
        {"tenantName": T, "groupName": "tcch", "networkName": "tccx"},
    )
    ok("POST", f"/api/v1/rules/{T}:tccp:1/", {"tenantName": T, "policyName": "tccp", "ruleId": "1",
       "direction": "in", "action": "allow", "fromEndpointGroup": "tcch"})  # fmt: skip
    ok("POST", f"/api/v1/appProfiles/{T}:tccap/", {"tenantName": T, "appProfileName": "tccap",
       "endpointGroups": ["tccg", "tcch"]})  # fmt: skip
    ok("POST", f"/api/v1/serviceLBs/{T}:tccs/", {"tenantName": T, "serviceName": "tccs", "networkName": "tccv",
       "selectors": ["app=web"], "ports": ["80:8080:TCP"], "ipAddress": "10.81.0.50"})  # fmt: skip
    a1 = ok("POST", "/plugin/allocAddress", {"NetworkID": f"tccv.{T}"})["IPv4Address"].split("/")[0]
    a2 = ok("POST", "/plugin/allocAddress", {"NetworkID": f"tccv:tccg.{T}"})["IPv4Address"].split("/")[0]
    ok("POST", "/plugin/allocAddress", {"NetworkID": f"tccx.{T}"})  # left open
    ok("POST", "/plugin/createEndpoint", {"TenantName": T, "NetworkName": "tccv", "EndpointID": "c1",
       "ConfigEP": {"Container": "c1", "Host": "h1", "IPAddress": a1}})  # fmt: skip
    ok("POST", "/plugin/createEndpoint", {"TenantName": T, "NetworkName": "tccv", "ServiceName": "tccg",
       "EndpointID": "c2", "ConfigEP": {"Container": "c2", "Host": "h1", "IPAddress": a2}})  # fmt: skip
    ok("POST", "/plugin/createEndpoint", {"TenantName": T, "NetworkName": "tccx",
       "ConfigEP": {"Host": "h2"}})  # fmt: skip
    nm.ok, nm.etcd = ok, etcd_server
    return nm


def _snap(nm) -> consistency.Snapshot:
    return consistency.load_etcdctl(nm.etcd.etcdctl)


def test_normal_scenario_is_consistent_and_stays_so_while_torn_down(scenario):
    nm = scenario
    snap = _snap(nm)
    assert consistency.check(snap) == []
    assert sum(k.startswith(consistency.EPS) for k in snap) == 3
    assert sum(k.startswith(consistency.ALLOC) for k in snap) == 1  # the open allocation
    steps = [
        ("POST", "/plugin/deleteEndpoint", {"TenantName": T, "NetworkName": "tccv", "EndpointID": "c2"}),
        ("DELETE", f"/api/v1/appProfiles/{T}:tccap/", None),
        ("DELETE", f"/api/v1/endpointGroups/{T}:tccg/", None),
        ("DELETE", f"/api/v1/endpointGroups/{T}:tcch/", None),  # a rule still names it
        ("DELETE", f"/api/v1/policys/{T}:tccp/", None),
        ("DELETE", f"/api/v1/serviceLBs/{T}:tccs/", None),
        ("POST", "/plugin/deleteEndpoint", {"TenantName": T, "NetworkName": "tccv", "EndpointID": "c1"}),
        ("POST", "/plugin/deleteEndpoint", {"TenantName": T, "NetworkName": "tccx", "Host": "h2"}),
        ("DELETE", f"/api/v1/networks/{T}:tccv/", None),
        ("DELETE", f"/api/v1/networks/{T}:tccx/", None),
        ("DELETE", f"/api/v1/netprofiles/{T}:tccnp/", None),
        ("DELETE", f"/api/v1/tenants/{T}/", None),
    ]
    for method, path, body in steps:
        nm.ok(method, path, body)
        consistency.assert_consistent(_snap(nm), context=f"{method} {path}")
    assert not [k for k in _snap(nm) if T in k and "svcProviderGen" not in k]


def _edit(nm, key: str, fn) -> None:
    value = nm.etcd.etcdctl("get", key, "--print-value-only").rstrip("\n")
    nm.etcd.etcdctl("put", key, fn(value))


def _net_bits(fn):
    def edit(value: str) -> str:
        st = NetworkState.from_json(value)
        bm = Bitset.decode(st.ipAllocMap)
        fn(st, bm)
        st.ipAllocMap = bm.encode()
        return st.to_json()

    return edit


NET_V = f"/contiv.io/state/nets/tccv.{T}"

CORRUPTIONS = {
    "extra bit": (
        lambda nm: _edit(nm, NET_V, _net_bits(lambda st, bm: bm.set(77))),
        "ipAllocMap extra bit 10.81.0.77",
    ),
    "endpoint bit cleared": (
        lambda nm: _edit(nm, NET_V, _net_bits(lambda st, bm: bm.clear(1))),
        "address 10.81.0.1 is clear but held by endpoint tccv.tcct-c1",
    ),
    "gateway bit cleared": (
        lambda nm: _edit(nm, NET_V, _net_bits(lambda st, bm: bm.clear(254))),
        "reserved address 10.81.0.254 is not marked used",
    ),
    "pool bit cleared in the group map": (
        lambda nm: _edit(
            nm,
            f"/contiv.io/state/endpointGroups/tccg:{T}",
            lambda v: (
                lambda g: (setattr(g, "epgIpAllocMap", _cleared(g.epgIpAllocMap, 100)), g.to_json())[1]
            )(EndpointGroupState.from_json(v)),
        ),
        "pool of group tccg: address 10.81.0.100 is clear but held by endpoint",
    ),
    "two endpoints, one address": (
        lambda nm: _edit(
            nm,
            f"/contiv.io/state/eps/tccv.{T}-c1",
            lambda v: (
                nm.etcd.etcdctl(
                    "put",
                    f"/contiv.io/state/eps/tccv.{T}-c9",
                    EndpointState.from_json(v)
                    .__class__(**{**EndpointState.from_json(v).__dict__, "id": f"tccv.{T}-c9"})
                    .to_json(),
                )
                and v
            ),
        ),  # fmt: skip
        "address 10.81.0.1 held twice",
    ),
    "missing reverse link": (  # a network's groups are link keys (netmaster/registry.py)
        lambda nm: nm.etcd.etcdctl("del", f"/contiv.io/obj/links/network/{T}:tccv/EndpointGroups/{T}:tccg"),
        f"object endpointGroup/{T}:tccg: links.Network -> {T}:tccv but network/{T}:tccv has no "
        "link-sets.EndpointGroups",
    ),
    "link key of a missing owner": (
        lambda nm: nm.etcd.etcdctl(
            "put", f"/contiv.io/obj/links/network/{T}:gone/EndpointGroups/{T}:tccg", "endpointGroup"
        ),
        f"link key network/{T}:gone/EndpointGroups/{T}:tccg: owner network/{T}:gone does not exist",
    ),
    "member stored and linked": (  # a stored (legacy) member is never also a link key
        lambda nm: _edit(
            nm,
            f"/contiv.io/obj/modeldb/network/{T}:tccv",
            lambda v: json.dumps(
                {
                    **json.loads(v),
                    "link-sets": {
                        "EndpointGroups": {f"{T}:tccg": {"type": "endpointGroup", "key": f"{T}:tccg"}}
                    },
                }
            ),
        ),
        f"link key network/{T}:tccv/EndpointGroups/{T}:tccg: network/{T}:tccv also stores the member",
    ),
    "derived link set stored": (  # a tenant's members are derived on read, never stored
        lambda nm: _edit(
            nm,
            f"/contiv.io/obj/modeldb/tenant/{T}",
            lambda v: json.dumps(
                {
                    **json.loads(v),
                    "link-sets": {"Networks": {f"{T}:tccv": {"type": "network", "key": f"{T}:tccv"}}},
                }
            ),
        ),
        f"object tenant/{T}: stores the derived link-sets.Networks",
    ),
    "dangling link": (
        lambda nm: nm.etcd.etcdctl("del", f"/contiv.io/obj/modeldb/netprofile/{T}:tccnp"),
        f"links.NetProfile -> netprofile/{T}:tccnp does not exist",
    ),
    "vlan freed while a network holds it": (
        lambda nm: nm.etcd.etcdctl(
            "put",
            "/contiv.io/oper/auto-vlan/global",
            json.dumps({"id": "global", "freeVLANs": _all_vlans_free()}),
        ),
        f"of network tccv.{T} is not marked in use",
    ),
    "epg id reservation lost": (
        lambda nm: nm.etcd.etcdctl("del", "--prefix", "/contiv.io/master/epgid/"),
        f"group tccg:{T}: id 1 reserved for None",
    ),
    "epAddrCount off": (
        lambda nm: _edit(nm, NET_V, _net_bits(lambda st, bm: setattr(st, "epAddrCount", 9))),
        f"network tccv.{T}: epAddrCount 9 but",
    ),
    "group QoS not its netprofile's": (
        lambda nm: _edit(
            nm,
            f"/contiv.io/state/endpointGroups/tccg:{T}",
            lambda v: json.dumps({**json.loads(v), "Bandwidth": "1gbps"}),
        ),
        f"group state tccg:{T}: DSCP/bandwidth/burst (0, '1gbps', 0) but its netprofile says (0, '10mbps', 0)",
    ),
    "address index entry lost": (  # netmaster/addridx.py: every endpoint has its entries
        lambda nm: nm.etcd.etcdctl("del", f"/contiv.io/index/addr/tccv.{T}/v4/10.81.0.1/tccv.{T}-c1"),
        f"address index: endpoint tccv.{T}-c1 has no entry /contiv.io/index/addr/tccv.{T}/v4/10.81.0.1/",
    ),
    "address index entry of a gone endpoint": (
        lambda nm: nm.etcd.etcdctl(
            "put", f"/contiv.io/index/addr/tccv.{T}/v4/10.81.0.9/tccv.{T}-c7", f"tccv.{T}-c7"
        ),
        f"address index: /contiv.io/index/addr/tccv.{T}/v4/10.81.0.9/tccv.{T}-c7 = 'tccv.{T}-c7' names no",
    ),
    "endpoint of a deleted network": (
        lambda nm: nm.etcd.etcdctl(
            "put",
            f"/contiv.io/state/eps/gone.{T}-c1",
            json.dumps({"id": f"gone.{T}-c1", "netID": f"gone.{T}", "ipAddress": "10.1.1.1"}),
        ),  # fmt: skip
        f"endpoint gone.{T}-c1: network state gone.{T} does not exist",
    ),
}


def _cleared(encoded: str, bit: int) -> str:
    bm = Bitset.decode(encoded)
    bm.clear(bit)
    return bm.encode()


def _all_vlans_free() -> str:
    from contivpy.netmaster.tags import vlan_bitset

    return vlan_bitset("1-4094").encode()


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_checker_reports_a_planted_inconsistency(scenario, corruption):
    nm = scenario
    assert consistency.check(_snap(nm)) == []
    plant, expected = CORRUPTIONS[corruption]
    plant(nm)
    problems = consistency.check(_snap(nm))
    assert any(expected in p for p in problems), f"{corruption}: expected {expected!r} in {problems}"
    with pytest.raises(AssertionError, match="etcd state inconsistent"):
        consistency.assert_consistent(_snap(nm))
