"""Stateless fuzz of every REST collection and every /plugin/* route of a real netmaster (prefix fzb).

Bodies are built from the field tables (``model.objects.SPECS``): each field valid-ish, mutated
(wrong type, empty / huge / non-ASCII / path-like string) or missing, plus unknown fields; keys
match the key fields or not, and are sometimes odd (unicode, ``..``, ``%2F``). Each example also
reads the object back (GET, inspect, list) and sometimes deletes it. /plugin/* bodies map each
route's fields to arbitrary JSON values, or are not objects at all.

Every reply must be a success or a clean error (conftest.check_reply); netmaster stays alive, its
log holds no traceback, and the store is consistent afterwards (checked every few examples and at
the end). Budget: ``FUZZ_SCALE``.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contivpy.model.objects import SPECS
from contivpy.netmaster import registry as reg
from tests.fuzz import strategies as S
from tests.fuzz.conftest import fuzz_settings, timeout

pytestmark = pytest.mark.etcd

TENANTS = ["default", "fzb"]

VALID = {  # valid-ish values of fields by name (else by kind)
    "tenantName": TENANTS,
    "networkName": ["fzbn1", "fzbn2"],
    "groupName": ["fzbg1", "fzbg2"],
    "policyName": ["fzbp1"],
    "profileName": ["fzbnp"],
    "appProfileName": ["fzbap"],
    "serviceName": ["fzbs"],
    "contractsGroupName": ["fzbc"],
    "ruleId": ["1", "2"],
    "name": ["global", "aciGw"],
    "hostname": ["fzbh"],
    "subnet": ["10.11.0.0/24", "10.11.0.0/16", "10.12.0.10-10.12.0.20/24", "10.13.0.0/30"],
    "gateway": ["10.11.0.1", "10.11.0.254", "10.12.0.15"],
    "ipPool": ["10.11.0.10-10.11.0.20", "10.12.0.11-10.12.0.12"],
    "ipAddress": ["10.11.0.5", "10.12.0.12", ""],
    "encap": ["vlan", "vxlan"],
    "nwType": ["data", "infra"],
    "direction": ["in", "out"],
    "action": ["allow", "deny"],
    "protocol": ["tcp", "udp", "icmp"],
    "vlans": ["1-4094", "100-200"],
    "vxlans": ["1-10000", "1-100"],
    "fwdMode": ["bridge", "routing"],
    "arpMode": ["proxy", "flood"],
    "pvtSubnet": ["172.19.0.0/16"],
    "networkInfraType": ["default", "aci"],
    "ipv6Subnet": ["2001:db8::/64"],
    "ipv6Gateway": ["2001:db8::1"],
    "bandwidth": ["10mbps", "1gbps"],
    "selectors": [["app=web"], ["a=b", "c=d"]],
    "ports": [["80:8080:TCP"], ["53:53:UDP"]],
    "policies": [["fzbp1"], []],
    "endpointGroups": [["fzbg1"], []],
    "routerip": ["10.20.0.1/24"],
    "neighbor": ["10.20.0.2"],
}


def field_value(f) -> st.SearchStrategy:
    if f.name in VALID:
        valid = st.sampled_from(VALID[f.name])
    elif f.kind == "int":
        lo = f.lo if f.lo is not None else 0
        hi = f.hi if f.hi is not None else 100
        valid = st.sampled_from(sorted({lo, hi, hi + 1, lo - 1, (lo + hi) // 2}))
    elif f.kind == "list":
        valid = st.lists(st.text(max_size=8), max_size=3)
    else:
        valid = st.text(max_size=12)
    return S.mutated(valid, 5)


@st.composite
def rest_request(draw):
    t = draw(st.sampled_from(reg._ROWS))
    spec = SPECS[t.name]
    body = {}
    for f in spec.fields:
        if draw(st.integers(0, 3)):
            body[f.name] = draw(field_value(f))
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["bogus", "key", "link-sets", "links", "Tenant"]))] = draw(S.wrong_types)
    parts = [body.get(k) if isinstance(body.get(k), str) else "x" for k in spec.key_fields]
    key = ":".join(parts)
    if draw(st.integers(0, 7)) == 0:
        key = draw(st.sampled_from(["..", "%2F", "a:b:c:d", "ñ", " ", "x" * 300, key + ":"]))
    raw = None
    if draw(st.integers(0, 11)) == 0:  # not an object at all
        raw = draw(st.sampled_from(["[]", "null", "1", '"x"', "{", "{}", '{"a":1}{"b":2}']))
    return t, key or "x", body, raw


@timeout(240)
def test_fuzz_rest_bodies(nm_client):
    n = {"examples": 0}

    @fuzz_settings(200)
    @given(req=rest_request(), delete=st.booleans())
    def run(req, delete):
        t, key, body, raw = req
        c = nm_client
        status, text = c.raw("POST", c.obj_path(t.plural, key), raw if raw is not None else body)
        c.get(t.plural, key)
        c.raw("GET", "/api/v1/inspect/" + c.obj_path(t.plural, key)[len("/api/v1/") :])
        if delete and not (t.name == "global" and status == 200):
            c.delete(t.plural, key)
        n["examples"] += 1
        if n["examples"] % 25 == 0:
            c.alive()
            c.assert_consistent(
                f"REST body fuzz example {n['examples']}: {t.plural}/{key} {json.dumps(body)[:200]}"
            )

    run()
    for t in reg._ROWS:
        nm_client.raw("GET", f"/api/v1/{t.plural}/")
    print(f"REST body fuzz: {nm_client.calls} requests\n{nm_client.summary()}")
    nm_client.assert_consistent("the REST body fuzz")
    nm_client.assert_clean_log()


PLUGIN_FIELDS = {
    "allocAddress": ["NetworkID", "AddressPool", "PreferredIPv4Address"],
    "releaseAddress": ["NetworkID", "IPv4Address"],
    "createEndpoint": ["TenantName", "NetworkName", "ServiceName", "EndpointID", "EPCommonName", "ConfigEP"],
    "deleteEndpoint": ["TenantName", "NetworkName", "ServiceName", "EndpointID", "IPv4Address", "Host"],
    "updateEndpoint": ["IPAddress", "ContainerID", "Labels", "Tenant", "Network", "Event", "EndpointID",
                       "EPCommonName"],
}  # fmt: skip
PLUGIN_VALID = {
    "NetworkID": ["fzbn1.fzb", "fzbn1:fzbg1.fzb", "fzbn1.default"],
    "TenantName": ["fzb", "default"],
    "Tenant": ["fzb"],
    "NetworkName": ["fzbn1"],
    "Network": ["fzbn1"],
    "ServiceName": ["fzbg1", ""],
    "EndpointID": ["c1", "fzbn1.fzb-c1"],
    "AddressPool": ["10.11.0.0/24", "10.11.0.0/24:fzb"],
    "PreferredIPv4Address": ["10.11.0.7", ""],
    "IPv4Address": ["10.11.0.7", "10.11.0.7/24"],
    "IPAddress": ["10.11.0.7"],
    "Event": ["start", "die"],
    "Labels": [{"app": "web"}],
    "ConfigEP": [{"Container": "c1", "Host": "h1", "IPAddress": "10.11.0.8"}, {"Host": "h1"}, {}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def plugin_request(draw):
    route = draw(st.sampled_from(sorted(PLUGIN_FIELDS)))
    if draw(st.integers(0, 9)) == 0:
        return route, draw(st.sampled_from(["[]", "null", '"x"', "1", "{", ""]))
    body = {}
    for f in PLUGIN_FIELDS[route]:
        if draw(st.integers(0, 3)):
            valid = st.sampled_from(PLUGIN_VALID.get(f, ["x"]))
            if f == "ConfigEP" and draw(st.booleans()):
                valid = st.fixed_dictionaries(
                    {}, optional={k: S.mutated(st.sampled_from(["c1", "h1", "10.11.0.9", ""]), 3)
                                  for k in ("Container", "Host", "IPAddress", "IPv6Address", "ServiceName")}
                )  # fmt: skip
            body[f] = draw(st.one_of(valid, valid, valid, json_values))
    return route, body


@timeout(240)
def test_fuzz_plugin_bodies(nm_client):
    c = nm_client
    assert c.put("tenants", "fzb", {"tenantName": "fzb"})[0] == 200
    net = {"tenantName": "fzb", "networkName": "fzbn1", "encap": "vlan", "subnet": "10.11.0.0/24"}
    assert c.put("networks", "fzb:fzbn1", net)[0] == 200
    grp = {
        "tenantName": "fzb",
        "groupName": "fzbg1",
        "networkName": "fzbn1",
        "ipPool": "10.11.0.100-10.11.0.120",
    }
    assert c.put("endpointGroups", "fzb:fzbg1", grp)[0] == 200
    n = {"examples": 0}

    @fuzz_settings(200)
    @given(req=plugin_request())
    def run(req):
        route, body = req
        c.raw("POST", f"/plugin/{route}", body)
        n["examples"] += 1
        if n["examples"] % 25 == 0:
            c.alive()
            c.assert_consistent(
                f"/plugin body fuzz example {n['examples']}: {route} {json.dumps(body)[:200]}"
            )

    run()
    print(f"/plugin body fuzz: {c.calls} requests\n{c.summary()}")
    c.assert_consistent("the /plugin body fuzz")
    c.assert_clean_log()
