"""Every inspect body of a real netmaster (real etcd) matches the OpenAPI document's schema, whose
``Oper`` parts come from the declarations the hooks build them with (contivpy/model/oper.py,
docs/rest-api.md "Inspect Oper").

- One object of every type is created with run-time state: a tenant with vlan and vxlan networks
  (IPv6 too), endpoint groups (one with an IP pool, a netprofile and a policy), endpoints made through
  ``/plugin/createEndpoint`` and labelled by ``/plugin/updateEndpoint``, a policy with rules, a
  service LB whose selector matches two of them (providers), an app profile and the aciGw, a Bgp
  host, the global object. One endpoint gets the owning host's oper record (``virtualPort``).
- Each ``GET /api/v1/inspect/<plural>/<key>/`` of every object of every collection, and
  ``/api/v1/inspect/endpoints/<id>/`` of every endpoint, is validated with ``jsonschema`` against
  ``Inspect<Type>`` / the endpoint inspect answer of the served document. The Oper schemas have
  ``additionalProperties: false`` and omitempty constraints, so an undeclared field, a wrong type or
  an empty value that the original would leave out fails (the test shows the validator refuses each).
- Coverage: every declared Oper field appears in some body, except the few that neither the
  original nor contivpy fills (``UNFILLED``), so the test cannot pass by inspecting empty objects;
  and the fields of every Oper (nested ones too) come in the declaration's order.
- Bgp's Oper is fetched live from the host agent's ``:9090/inspect/bgp``. Here the agent is a small
  loopback HTTP server on 127.79.0.9:9090 (a loopback address of its own, so no netplugin of
  another test is disturbed) answering in the agent's format (netplugin/managers/bgp.py
  ``inspect``); tests/integration/test_dataplane_bgp.py validates the same against real agents.
"""

from __future__ import annotations

import json
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from contivpy.model.objects import SPECS
from contivpy.model.oper import OPER, STRUCTS, EndpointOper
from contivpy.netmaster import registry as reg

jsonschema = pytest.importorskip("jsonschema")

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(120)]

T = "tio"
AGENT = "127.79.0.9"
SPEC_GO = {name: spec.go for name, spec in SPECS.items()}
# Declared by the original and never filled (by it or by contivpy), or filled only by a netplugin
# that this test does not run (the interface name and VTEP of an endpoint).
UNFILLED = {
    ("PolicyOper", "policyViolations"),
    ("TenantOper", "endpoints"),
    ("TenantOper", "policies"),
    ("TenantOper", "servicelbs"),
    ("EndpointOper", "intfName"),
    ("EndpointOper", "vtepIP"),
    ("GlobalOper", "defaultNetwork"),  # only a record migrated from the original carries one
}


class _Agent(BaseHTTPRequestHandler):
    """The host agent's ``/inspect/bgp`` (the shape of netplugin's ``BgpManager.inspect``)."""

    BODY = {
        "Global": {"As": "65001", "RouterId": "50.79.1.1"},
        "Peers": [
            {
                "Conf": {"NeighborAddress": "50.79.1.2", "PeerAs": "65000"},
                "State": {"SessionState": "established", "AdminState": "up", "Received": 2},
            }
        ],
        "Dsts": ["10.79.9.0/24", "10.79.8.7/32"],
        "Restarts": 0,
        "Pid": 1,
        "Error": "",
    }

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps(self.BODY).encode() if self.path == "/inspect/bgp" else b"{}"
        self.send_response(200 if self.path == "/inspect/bgp" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def bgp_agent(etcd_server):
    server = ThreadingHTTPServer((AGENT, 9090), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reg_key = f"/contiv.io/service/netplugin/{AGENT}:9002"
    etcd_server.etcdctl(
        "put",
        reg_key,
        json.dumps({"ServiceName": "netplugin", "HostAddr": AGENT, "Port": 9002, "Hostname": "tio-h1"}),
    )
    try:
        yield
    finally:
        etcd_server.etcdctl("del", reg_key)
        server.shutdown()
        server.server_close()
        thread.join(5)


def _seed(nm, etcd_server) -> list[str]:
    """Objects of every type with state; returns the endpoint ids."""
    post = nm.json
    glob = {k: v for k, v in post("GET", "/api/v1/globals/global/").items() if k != "key"}
    post("POST", "/api/v1/globals/global/", {**glob, "vxlans": "5000-8000"})  # freeVXLANsStart 4999
    post("POST", f"/api/v1/tenants/{T}/", {"tenantName": T})
    post("POST", f"/api/v1/networks/{T}:tio-vl/", {
        "tenantName": T, "networkName": "tio-vl", "encap": "vlan", "subnet": "10.79.1.0/24",
        "gateway": "10.79.1.254",
    })  # fmt: skip
    post("POST", f"/api/v1/networks/{T}:tio-vx/", {
        "tenantName": T, "networkName": "tio-vx", "encap": "vxlan", "subnet": "10.79.2.0/24",
        "ipv6Subnet": "2001:db8:79::/64", "cfgdTag": "tio-tag",
    })  # fmt: skip
    post("POST", f"/api/v1/netprofiles/{T}:tio-np/", {
        "tenantName": T, "profileName": "tio-np", "bandwidth": "10Mbps", "DSCP": 5,
    })  # fmt: skip
    post("POST", f"/api/v1/policys/{T}:tio-pol/", {"tenantName": T, "policyName": "tio-pol"})
    post("POST", f"/api/v1/endpointGroups/{T}:tio-db/", {
        "tenantName": T, "groupName": "tio-db", "networkName": "tio-vx",
    })  # fmt: skip
    for rule in (
        {"ruleId": "1", "direction": "in", "action": "allow", "protocol": "tcp", "port": 80, "priority": 5},
        {"ruleId": "2", "direction": "in", "action": "deny", "fromEndpointGroup": "tio-db"},
        {"ruleId": "3", "direction": "out", "action": "allow", "toIpAddress": "10.9.0.0/16"},
    ):
        post("POST", f"/api/v1/rules/{T}:tio-pol:{rule['ruleId']}/",
             {"tenantName": T, "policyName": "tio-pol", **rule})  # fmt: skip
    post("POST", f"/api/v1/endpointGroups/{T}:tio-web/", {
        "tenantName": T, "groupName": "tio-web", "networkName": "tio-vl", "ipPool": "10.79.1.10-10.79.1.20",
        "policies": ["tio-pol"], "netProfile": "tio-np",
    })  # fmt: skip
    post("POST", "/api/v1/aciGws/aciGw/", {
        "name": "aciGw", "enforcePolicies": "yes", "includeCommonTenant": "no", "physicalDomain": "tio-pd",
    })  # fmt: skip
    post("POST", f"/api/v1/appProfiles/{T}:tio-app/",
         {"tenantName": T, "appProfileName": "tio-app", "endpointGroups": ["tio-web"]})  # fmt: skip
    post("POST", "/api/v1/Bgps/tio-h1/", {
        "hostname": "tio-h1", "routerip": "50.79.1.1/24", "as": "65001", "neighbor-as": "65000",
        "neighbor": "50.79.1.2",
    })  # fmt: skip
    post("POST", f"/api/v1/serviceLBs/{T}:tio-lb/", {
        "tenantName": T, "serviceName": "tio-lb", "networkName": "tio-vl", "selectors": ["app=web"],
        "ports": ["80:8080:TCP"],
    })  # fmt: skip
    eps = []
    for name, net, group in (
        ("tio-e1", "tio-vl", "tio-web"),
        ("tio-e2", "tio-vl", "tio-web"),
        ("tio-e3", "tio-vx", "tio-db"),
        ("tio-e4", "tio-vx", ""),
    ):
        ep = post("POST", "/plugin/createEndpoint", {
            "TenantName": T, "NetworkName": net, "ServiceName": group, "EndpointID": name,
            "EPCommonName": f"{name}-c", "ConfigEP": {"Container": name, "Host": "tio-h1", "ServiceName": group},
        })["EndpointConfig"]  # fmt: skip
        eps.append(ep)
        if group == "tio-web":  # labelled: providers of tio-lb
            post("POST", "/plugin/updateEndpoint", {
                "EndpointID": ep["id"], "EPCommonName": f"{name}-c", "ContainerID": f"cid-{name}",
                "Labels": {"app": "web", "tier": name}, "Event": "start", "IPAddress": ep["ipAddress"],
                "Tenant": T, "Network": net,
            })  # fmt: skip
    # the owning host's record of e1 (netplugin writes it once the port is plugged): virtualPort
    first = eps[0]
    etcd_server.etcdctl("put", f"/contiv.io/oper/eps/{first['id']}", json.dumps({
        "id": first["id"], "netID": first["netID"], "endpointID": first["endpointID"], "contUUID": "",
        "ipAddress": first["ipAddress"], "ipv6Address": "", "macAddress": first["macAddress"],
        "homingHost": "tio-h1", "intfName": "", "portName": "vport7", "vtepIP": "",
    }))  # fmt: skip
    return [e["endpointID"] for e in eps]


def _validator(doc: dict, ref: str):
    """A validator of ``#/components/schemas/<ref>`` (refs resolve inside the document)."""
    schema = {"$ref": f"#/components/schemas/{ref}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def _seen(struct: type, value: dict, out: set) -> None:
    """Record (struct, field) of every field present in ``value``, nested Oper lists included, and
    check the fields come in the declaration's order (the original's struct order)."""
    hints = typing.get_type_hints(struct)
    assert list(value) == [n for n in struct.NAMES if n in value], (struct.GO, list(value))
    for name, v in value.items():
        out.add((struct.GO, name))
        inner = typing.get_args(hints[name])
        if inner and inner[0] in STRUCTS:
            for item in v:
                _seen(inner[0], item, out)


def test_every_inspect_body_matches_the_document(netmaster, etcd_server, bgp_agent):
    ep_ids = _seed(netmaster, etcd_server)
    doc = netmaster.json("GET", "/api/v1/openapi.json")
    schemas = doc["components"]["schemas"]
    for t in reg.TYPES.values():  # the document declares exactly the registry's Oper parts
        inspect = schemas["Inspect" + SPEC_GO[t.name]]
        assert ("Oper" in inspect["properties"]) == t.has_oper, t.name
        if t.has_oper:
            assert inspect["properties"]["Oper"] == {"$ref": f"#/components/schemas/{OPER[t.name].GO}"}
            assert schemas[OPER[t.name].GO]["additionalProperties"] is False

    seen: set[tuple[str, str]] = set()
    failures: list[str] = []
    bodies: dict[str, dict] = {}
    for t in reg.TYPES.values():
        check = _validator(doc, "Inspect" + SPEC_GO[t.name])
        for obj in netmaster.json("GET", f"/api/v1/{t.plural}/"):
            path = f"/api/v1/inspect/{t.plural}/{obj['key']}/"
            body = netmaster.json("GET", path)
            bodies[path] = body
            failures += [f"{path}: {e.message} at {list(e.absolute_path)}" for e in check.iter_errors(body)]
            if t.has_oper:
                _seen(OPER[t.name], body["Oper"], seen)
    ep_schema = doc["paths"]["/api/v1/inspect/endpoints/{key}/"]["get"]["responses"]["200"]
    ep_check = jsonschema.Draft202012Validator(
        {**ep_schema["content"]["application/json"]["schema"], "components": doc["components"]}
    )
    for ep_id in ep_ids:
        path = f"/api/v1/inspect/endpoints/{ep_id}/"
        body = netmaster.json("GET", path)
        bodies[path] = body
        failures += [f"{path}: {e.message} at {list(e.absolute_path)}" for e in ep_check.iter_errors(body)]
        _seen(EndpointOper, body["Oper"], seen)
    assert not failures, "\n".join(failures)

    # the state is really there (not a pass on empty Opers)
    declared = {(s.GO, n) for s in STRUCTS for n in s.NAMES}
    missing = sorted(declared - seen - UNFILLED)
    assert not missing, f"declared Oper fields no inspect body showed: {missing}"
    net = bodies[f"/api/v1/inspect/networks/{T}:tio-vl/"]["Oper"]
    assert net["numEndpoints"] == 2 and len(net["endpoints"]) == 2
    lb = bodies[f"/api/v1/inspect/serviceLBs/{T}:tio-lb/"]["Oper"]
    assert lb["numProviders"] == 2 and {p["serviceName"] for p in lb["providers"]} == {"tio-lb"}
    assert bodies["/api/v1/inspect/Bgps/tio-h1/"]["Oper"] == {
        "adminStatus": "up", "neighborStatus": "established", "numRoutes": 2,
        "routes": ["10.79.9.0/24", "10.79.8.7/32"],
    }  # fmt: skip
    # the validator refuses what the declarations do not allow
    check = _validator(doc, "InspectNetwork")
    good = bodies[f"/api/v1/inspect/networks/{T}:tio-vl/"]
    assert check.is_valid(good)
    bad_bodies = [
        {**good, "Oper": {**good["Oper"], "undeclared": 1}},  # an undeclared field
        {**good, "Oper": {**good["Oper"], "pktTag": "100"}},  # a wrong type
        {**good, "Oper": {**good["Oper"], "networkTag": ""}},  # an empty value omitempty leaves out
        {**good, "Oper": {**good["Oper"], "endpoints": [{**good["Oper"]["endpoints"][0], "extra": "x"}]}},
    ]
    for bad in bad_bodies:
        assert not check.is_valid(bad), bad
