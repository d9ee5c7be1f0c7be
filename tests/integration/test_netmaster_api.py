"""REST object API of a real netmaster process on a real etcd: exact bodies from the transcripts
(docs/original.md R4.6, §4.8, §5.1), error texts, 404s, sorted lists, every collection."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.etcd

NET_BODY = {
    "encap": "vxlan",
    "networkName": "test-net",
    "nwType": "data",
    "subnet": "10.103.1.0/24",
    "tenantName": "default",
    "link-sets": {},
    "links": {"Tenant": {}},
}
NET_JSON = (
    '{"key":"default:test-net","encap":"vxlan","networkName":"test-net","nwType":"data",'
    '"subnet":"10.103.1.0/24","tenantName":"default","link-sets":{},'
    '"links":{"Tenant":{"type":"tenant","key":"default"}}}'
)
GLOBAL_JSON = (
    '{"key":"global","arpMode":"proxy","fwdMode":"bridge","name":"global","networkInfraType":"default",'
    '"pvtSubnet":"172.19.0.0/16","vlans":"1-4094","vxlans":"1-10000"}'
)


def etcd_get(etcd_server, key: str) -> str | None:
    out = etcd_server.etcdctl("get", key, "--print-value-only")
    return out[:-1] if out else None


def test_fresh_start_defaults_and_etcd_keys(netmaster, etcd_server):
    st, hdrs, body = netmaster.request("GET", "/api/v1/tenants/")
    assert st == 200 and hdrs["Content-Type"] == "application/json"
    assert body == '[{"key":"default","tenantName":"default","link-sets":{}}]\n'
    assert netmaster.request("GET", "/api/v1/globals/")[2] == f"[{GLOBAL_JSON}]\n"
    assert etcd_get(etcd_server, "/contiv.io/obj/modeldb/global/global") == GLOBAL_JSON
    assert (
        etcd_get(etcd_server, "/contiv.io/obj/modeldb/tenant/default")
        == '{"key":"default","tenantName":"default","link-sets":{}}'
    )
    ctl = f"127.0.0.1:{netmaster.port}"
    assert etcd_get(etcd_server, "/contiv.io/lock/netmaster/leader") == ctl
    svc = json.loads(etcd_get(etcd_server, f"/contiv.io/service/netmaster/{ctl}"))
    assert svc == {
        "ServiceName": "netmaster",
        "Role": "leader",
        "Version": "",
        "TTL": 10,
        "HostAddr": "127.0.0.1",
        "Port": netmaster.port,
        "Hostname": "",
    }
    rpc_keys = etcd_server.etcdctl("get", "--prefix", "--keys-only", "/contiv.io/service/netmaster.rpc/")
    assert rpc_keys.startswith("/contiv.io/service/netmaster.rpc/127.0.0.1:")
    info = netmaster.json("GET", "/info")
    assert list(info) == ["current-state", "leader-ip", "local-ip", "netmaster-nodes", "netplugin-nodes"]
    assert info["current-state"] == "leader" and info["leader-ip"] == ctl
    assert info["netmaster-nodes"] == ["127.0.0.1"] and info["netplugin-nodes"] == []
    st, hdrs, body = netmaster.request("GET", "/version")
    assert hdrs["Content-Type"].startswith("text/plain") and not body.endswith("\n")
    assert list(json.loads(body)) == ["GitCommit", "Version", "BuildTime"]
    dump = json.loads(netmaster.request("GET", "/debug/ofnet")[2])
    assert dump["MyAddr"] == "127.0.0.1" and dump["AgentDb"] == {}


def test_netctl_wire_session(netmaster, etcd_server):
    """The requests netctl sends (transcript §4.8) and the exact answers."""
    st, hdrs, body = netmaster.request("POST", "/api/v1/networks/default:test-net/", NET_BODY)
    assert (st, body) == (200, NET_JSON + "\n")
    assert hdrs["Content-Type"] == "application/json"
    n2 = dict(NET_BODY, networkName="n2", subnet="20.1.1.0/24", tenantName="t1")
    assert netmaster.request("POST", "/api/v1/networks/t1:n2/", n2)[:3:2] == (500, "Tenant not found\n")
    st, _, body = netmaster.request("POST", "/api/v1/tenants/t1/", {"tenantName": "t1", "link-sets": {}})
    assert body == '{"key":"t1","tenantName":"t1","link-sets":{}}\n'
    st, _, body = netmaster.request(
        "POST",
        "/api/v1/endpointGroups/default:web/",
        {
            "groupName": "web",
            "networkName": "test-net",
            "tenantName": "default",
            "link-sets": {},
            "links": {"AppProfile": {}, "NetProfile": {}, "Network": {}, "Tenant": {}},
        },
    )
    assert body == (
        '{"key":"default:web","groupName":"web","networkName":"test-net","tenantName":"default",'
        '"link-sets":{},"links":{"AppProfile":{},"NetProfile":{},"Network":{"type":"network",'
        '"key":"default:test-net"},"Tenant":{"type":"tenant","key":"default"}}}\n'
    )
    body = netmaster.request(
        "POST",
        "/api/v1/policys/default:p1/",
        {"policyName": "p1", "tenantName": "default", "link-sets": {}, "links": {"Tenant": {}}},
    )[2]
    assert body == (
        '{"key":"default:p1","policyName":"p1","tenantName":"default","link-sets":{},'
        '"links":{"Tenant":{"type":"tenant","key":"default"}}}\n'
    )
    rule = {
        "action": "allow",
        "direction": "in",
        "policyName": "p1",
        "port": 80,
        "priority": 1,
        "protocol": "tcp",
        "ruleId": "1",
        "tenantName": "default",
        "link-sets": {},
        "links": {"MatchEndpointGroup": {}},
    }
    rule_json = (
        '{"key":"default:p1:1","action":"allow","direction":"in","policyName":"p1","port":80,"priority":1,'
        '"protocol":"tcp","ruleId":"1","tenantName":"default","link-sets":{"Policies":{"default:p1":'
        '{"type":"policy","key":"default:p1"}}},"links":{"MatchEndpointGroup":{}}}'
    )
    assert netmaster.request("POST", "/api/v1/rules/default:p1:1/", rule)[2] == rule_json + "\n"
    assert netmaster.request("GET", "/api/v1/rules/")[2] == f"[{rule_json}]\n"
    assert netmaster.request("GET", "/api/v1/policys/default:p1/")[2] == (
        '{"key":"default:p1","policyName":"p1","tenantName":"default","link-sets":{"Rules":{"default:p1:1":'
        '{"type":"rule","key":"default:p1:1"}}},"links":{"Tenant":{"type":"tenant","key":"default"}}}\n'
    )
    assert netmaster.request("GET", "/api/v1/tenants/default/")[2] == (
        '{"key":"default","tenantName":"default","link-sets":{"EndpointGroups":{"default:web":{"type":'
        '"endpointGroup","key":"default:web"}},"Networks":{"default:test-net":{"type":"network","key":'
        '"default:test-net"}},"Policies":{"default:p1":{"type":"policy","key":"default:p1"}}}}\n'
    )
    # the policy is inspected with an (empty) Oper, the rule has no Oper at all
    assert netmaster.json("GET", "/api/v1/inspect/policys/default:p1/")["Oper"] == {}
    assert list(netmaster.json("GET", "/api/v1/inspect/rules/default:p1:1/")) == ["Config"]
    # modeldb holds exactly what GET returns
    assert etcd_get(etcd_server, "/contiv.io/obj/modeldb/rule/default:p1:1") == rule_json
    # deletes answer the key as a JSON string
    for path, key in [
        ("/api/v1/rules/default:p1:1/", "default:p1:1"),
        ("/api/v1/policys/default:p1/", "default:p1"),
        ("/api/v1/tenants/t1/", "t1"),
    ]:
        st, hdrs, body = netmaster.request("DELETE", path)
        assert (st, body, hdrs["Content-Type"]) == (200, json.dumps(key) + "\n", "application/json")
    assert etcd_get(etcd_server, "/contiv.io/obj/modeldb/tenant/t1") is None
    assert etcd_get(etcd_server, "/contiv.io/obj/modeldb/policy/default:p1") is None


@pytest.mark.parametrize(
    "method,path,body,status,text",
    [
        ("GET", "/api/v1/networks/default:nosuch/", None, 500, "network not found\n"),
        ("GET", "/api/v1/inspect/networks/default:nosuch/", None, 500, "network not found\n"),
        ("DELETE", "/api/v1/networks/default:nosuch/", None, 500, "network not found\n"),
        ("GET", "/api/v1/tenants/nosuch/", None, 500, "tenant not found\n"),
        ("GET", "/api/v1/nosuch/", None, 404, "404 page not found\n"),
        ("GET", "/api/v1/networks", None, 404, "404 page not found\n"),
        ("GET", "/api/v1/tenants/default", None, 404, "404 page not found\n"),
        ("GET", "/api/v1/inspect/nosuch/x/", None, 404, "404 page not found\n"),
        ("POST", "/api/v1/networks/default:rest-min/", {"subnet": "10.52.0.0/24"}, 500, "Invalid Key\n"),
        (
            "POST",
            "/api/v1/networks/default:rest-mm/",
            {
                "key": "default:other",
                "tenantName": "default",
                "networkName": "other",
                "subnet": "10.53.0.0/24",
            },
            500,
            "Invalid Key\n",
        ),
        (
            "POST",
            "/api/v1/tenants/t9/",
            "{bad json",
            500,
            "invalid character 'b' looking for beginning of object key string\n",
        ),
        (
            "PUT",
            "/api/v1/tenants/default/",
            {"tenantName": "default"},
            500,
            "Cant change tenant parameters after its created\n",
        ),
        ("GET", "/api/v1/volumes/", None, 200, "[]\n"),
        (
            "POST",
            "/api/v1/volumes/default:v1/",
            {"tenantName": "default", "volumeName": "v1"},
            500,
            "Invalid object type\n",
        ),
        ("DELETE", "/api/v1/volumeProfiles/default:v1/", None, 500, "volumeProfile not found\n"),
        (
            "POST",
            "/api/v1/tenants/contiv:invalid/",
            {"tenantName": "contiv:invalid"},
            500,
            "tenantName string invalid format\n",
        ),
        (
            "POST",
            "/api/v1/tenants/-invalid/",
            {"tenantName": "-invalid"},
            500,
            "tenantName string invalid format\n",
        ),
        (
            "POST",
            "/api/v1/policys/nosuch:p/",
            {"tenantName": "nosuch", "policyName": "p"},
            500,
            "Tenant not found\n",
        ),
    ],
)
def test_errors_and_404s(netmaster, method, path, body, status, text):
    st, hdrs, got = netmaster.request(method, path, body)
    assert (st, got) == (status, text)
    if status != 200:
        assert hdrs["Content-Type"] == "text/plain; charset=utf-8"
        assert "Traceback" not in got


def test_lists_sorted_by_key(netmaster):
    for t in ["zeta", "alpha", "mid", "beta1"]:
        netmaster.json("POST", f"/api/v1/tenants/{t}/", {"tenantName": t})
    keys = [o["key"] for o in netmaster.json("GET", "/api/v1/tenants/")]
    assert keys == ["alpha", "beta1", "default", "mid", "zeta"]


def test_tenant_delete_refused_while_it_owns_objects(netmaster, etcd_server):
    netmaster.json("POST", "/api/v1/tenants/t1/", {"tenantName": "t1"})
    netmaster.json("POST", "/api/v1/policys/t1:p/", {"tenantName": "t1", "policyName": "p"})
    netmaster.json(
        "POST", "/api/v1/netprofiles/t1:np/", {"tenantName": "t1", "profileName": "np", "bandwidth": "10Mbps"}
    )
    st, _, body = netmaster.request("DELETE", "/api/v1/tenants/t1/")
    assert (st, body) == (500, "cannot delete t1 has 1 policies\n")
    netmaster.json("DELETE", "/api/v1/policys/t1:p/")
    assert netmaster.request("DELETE", "/api/v1/tenants/t1/")[2] == "Cannot delete t1 has 1 netprofiles\n"
    netmaster.json("DELETE", "/api/v1/netprofiles/t1:np/")
    net = dict(NET_BODY, networkName="n2", tenantName="t1", subnet="20.1.1.0/24", encap="vlan", pktTag=100)
    netmaster.json("POST", "/api/v1/networks/t1:n2/", net)
    assert netmaster.request("DELETE", "/api/v1/tenants/t1/")[2] == "cannot delete t1 has 1 networks\n"
    assert etcd_get(etcd_server, "/contiv.io/obj/modeldb/tenant/t1") is not None
    netmaster.json("DELETE", "/api/v1/networks/t1:n2/")
    assert netmaster.json("DELETE", "/api/v1/tenants/t1/") == "t1"


def test_policy_rules_and_epg_policy_state(netmaster, etcd_server):
    netmaster.json("POST", "/api/v1/networks/default:test-net/", NET_BODY)
    netmaster.json("POST", "/api/v1/policys/default:p1/", {"tenantName": "default", "policyName": "p1"})
    bad = {"tenantName": "default", "policyName": "p1", "ruleId": "9", "direction": "in", "action": "allow"}
    for extra, msg in [
        ({"toNetwork": "test-net"}, "can not specify 'to' parameters in incoming rule"),
        (
            {"fromNetwork": "test-net", "fromIpAddress": "1.2.3.4"},
            "can not specify both from network and from ip address",
        ),
        ({"fromEndpointGroup": "nosuch"}, "endpoint group not found"),
        (
            {"direction": "out", "fromNetwork": "test-net"},
            "can not specify 'from' parameters in outgoing rule",
        ),
        ({"direction": "both"}, "direction string invalid format"),
        ({"priority": 101}, "priority Value Out of bound"),
        ({"protocol": "sctp"}, "protocol string invalid format"),
        ({"policyName": "nosuch"}, "Invalid Key"),
    ]:
        st, _, body = netmaster.request("POST", "/api/v1/rules/default:p1:9/", dict(bad, **extra))
        assert (st, body) == (500, msg + "\n"), extra
    assert etcd_get(etcd_server, "/contiv.io/obj/modeldb/rule/default:p1:9") is None
    rule = dict(bad, ruleId="1", protocol="tcp", port=80)
    created = netmaster.json("POST", "/api/v1/rules/default:p1:1/", rule)
    assert created["priority"] == 1  # default filled
    st, _, body = netmaster.request("POST", "/api/v1/rules/default:p1:1/", rule)
    assert body == "can not update a rule after its created\n"
    # attaching the policy to a group materialises the EPG-policy and ofnet rule states
    netmaster.json(
        "POST",
        "/api/v1/endpointGroups/default:db/",
        {"groupName": "db", "networkName": "test-net", "tenantName": "default", "policies": ["p1"]},
    )
    gp = json.loads(etcd_get(etcd_server, "/contiv.io/state/policy/default:db:default:p1"))
    assert gp["EpgPolicyKey"] == "default:db:default:p1"
    assert sorted(gp["RuleMaps"]["default:p1:1"]["OfnetRules"]) == [
        "default:db:default:p1:default:p1:1:inRx",
        "default:db:default:p1:default:p1:1:inTx",
    ]
    rx = json.loads(
        etcd_get(etcd_server, "/contiv.io/state/policyRule/default:db:default:p1:default:p1:1:inRx")
    )
    assert (rx["IpProtocol"], rx["DstPort"], rx["Action"], rx["DstEndpointGroup"]) == (
        6,
        80,
        "allow",
        gp["EndpointGroupID"],
    )
    # a second rule on an attached policy is pushed to the group at once; deleting it removes it
    netmaster.json(
        "POST", "/api/v1/rules/default:p1:2/", dict(bad, ruleId="2", action="deny", protocol="tcp")
    )
    gp = json.loads(etcd_get(etcd_server, "/contiv.io/state/policy/default:db:default:p1"))
    assert sorted(gp["RuleMaps"]) == ["default:p1:1", "default:p1:2"]
    rx2 = json.loads(
        etcd_get(etcd_server, "/contiv.io/state/policyRule/default:db:default:p1:default:p1:2:inRx")
    )
    assert rx2["TcpFlags"] == "syn,!ack"
    netmaster.json("DELETE", "/api/v1/rules/default:p1:2/")
    assert (
        etcd_get(etcd_server, "/contiv.io/state/policyRule/default:db:default:p1:default:p1:2:inRx") is None
    )
    assert netmaster.request("DELETE", "/api/v1/policys/default:p1/")[2] == "Policy is being used\n"


def test_other_collections_crud(netmaster, etcd_server):
    netmaster.json("POST", "/api/v1/networks/default:test-net/", NET_BODY)
    # netprofile
    np = netmaster.json(
        "POST",
        "/api/v1/netprofiles/default:np1/",
        {"tenantName": "default", "profileName": "np1", "bandwidth": "10Mbps", "DSCP": 5},
    )
    assert list(np) == ["key", "DSCP", "bandwidth", "profileName", "tenantName", "link-sets", "links"]
    assert netmaster.request(
        "POST",
        "/api/v1/netprofiles/default:np2/",
        {"tenantName": "default", "profileName": "np2", "burst": 1},
    )[2] == ("Invalid Burst size. burst size > 1500 bytes\n")
    assert netmaster.request(
        "POST",
        "/api/v1/netprofiles/default:np2/",
        {"tenantName": "default", "profileName": "np2", "DSCP": 64},
    )[2] == ("DSCP Value Out of bound\n")
    tenant = netmaster.json("GET", "/api/v1/tenants/default/")
    assert "default:np1" in tenant["link-sets"]["NetProfiles"]
    # appProfile (+ group link)
    netmaster.json(
        "POST",
        "/api/v1/endpointGroups/default:web/",
        {"groupName": "web", "networkName": "test-net", "tenantName": "default"},
    )
    ap = netmaster.json(
        "POST",
        "/api/v1/appProfiles/default:app1/",
        {"tenantName": "default", "appProfileName": "app1", "endpointGroups": ["web"]},
    )
    assert ap["link-sets"] == {
        "EndpointGroups": {"default:web": {"type": "endpointGroup", "key": "default:web"}}
    }
    assert netmaster.json("GET", "/api/v1/endpointGroups/default:web/")["links"]["AppProfile"] == {
        "type": "appProfile",
        "key": "default:app1",
    }
    assert netmaster.request(
        "POST",
        "/api/v1/aciGws/aciGw/",
        {"name": "aciGw", "enforcePolicies": "yes", "includeCommonTenant": "no", "physicalDomain": "pd1"},
    )[2] == ("1 App-Profiles found. Delete them first\n")
    assert netmaster.json("DELETE", "/api/v1/appProfiles/default:app1/") == "default:app1"
    assert netmaster.json("GET", "/api/v1/endpointGroups/default:web/")["links"]["AppProfile"] == {}
    # aciGw
    aci = netmaster.json(
        "POST",
        "/api/v1/aciGws/aciGw/",
        {"name": "aciGw", "enforcePolicies": "yes", "includeCommonTenant": "no", "physicalDomain": "pd1"},
    )
    assert aci == {
        "key": "aciGw",
        "enforcePolicies": "yes",
        "includeCommonTenant": "no",
        "name": "aciGw",
        "physicalDomain": "pd1",
    }
    assert netmaster.request(
        "POST",
        "/api/v1/aciGws/other/",
        {"name": "other", "enforcePolicies": "yes", "includeCommonTenant": "no", "physicalDomain": "pd1"},
    )[2] == ("name string invalid format\n")
    # Bgp -> /contiv.io/state/bgp/<host> (only for a host a netplugin registered as)
    reg = '{"ServiceName":"netplugin","HostAddr":"192.0.2.7","Port":9002,"Hostname":"host1"}'
    etcd_server.etcdctl("put", "/contiv.io/service/netplugin/192.0.2.7:9002", reg)
    bgp = {
        "hostname": "host1",
        "routerip": "50.1.1.1/24",
        "as": "65002",
        "neighbor-as": "500",
        "neighbor": "50.1.1.2",
    }
    assert list(netmaster.json("POST", "/api/v1/Bgps/host1/", bgp)) == [
        "key",
        "as",
        "hostname",
        "neighbor",
        "neighbor-as",
        "routerip",
    ]
    assert json.loads(etcd_get(etcd_server, "/contiv.io/state/bgp/host1")) == {
        "hostname": "host1",
        "router-ip": "50.1.1.1/24",
        "as": "65002",
        "neighbor-as": "500",
        "neighbor": "50.1.1.2",
    }
    netmaster.json("DELETE", "/api/v1/Bgps/host1/")
    assert etcd_get(etcd_server, "/contiv.io/state/bgp/host1") is None
    etcd_server.etcdctl("del", "/contiv.io/service/netplugin/192.0.2.7:9002")
    # extContractsGroup
    ecg = {
        "tenantName": "default",
        "contractsGroupName": "ext1",
        "contractsType": "provided",
        "contracts": ["uni/tn-t/brc-c"],
    }
    assert netmaster.json("POST", "/api/v1/extContractsGroups/default:ext1/", ecg)["link-sets"] == {}
    # serviceLB: VIP from the network's IPAM, preferred address honoured
    svc = {
        "tenantName": "default",
        "serviceName": "lb1",
        "networkName": "test-net",
        "selectors": ["app=web"],
        "ports": ["80:8080:TCP"],
        "ipAddress": "10.103.1.50",
    }
    got = netmaster.json("POST", "/api/v1/serviceLBs/default:lb1/", svc)
    assert got["links"] == {
        "Network": {"type": "network", "key": "default:test-net"},
        "Tenant": {"type": "tenant", "key": "default"},
    }
    assert "link-sets" not in got
    assert netmaster.json("GET", "/api/v1/inspect/serviceLBs/default:lb1/")["Oper"] == {
        "serviceVip": "10.103.1.50"
    }
    state = json.loads(etcd_get(etcd_server, "/contiv.io/state/serviceLB/lb1:default"))
    assert (state["ipaddress"], state["selectors"], state["subnet"]) == (
        "10.103.1.50",
        {"app": "web"},
        "test-net",
    )
    assert netmaster.request(
        "POST", "/api/v1/serviceLBs/default:lb2/", dict(svc, serviceName="lb2", ports=["80:x:TCP"])
    )[2] == ("Invalid Port maping . Port format is - Port:TargetPort:Protocol\n")
    assert (
        netmaster.request(
            "POST", "/api/v1/serviceLBs/default:lb2/", dict(svc, serviceName="lb2", ipAddress="")
        )[0]
        == 200
    )
    assert (
        netmaster.json("GET", "/api/v1/inspect/serviceLBs/default:lb2/")["Oper"]["serviceVip"] == "10.103.1.1"
    )
    services = json.loads(netmaster.request("GET", "/services")[2])
    assert sorted(x["servicename"] for x in services) == ["lb1", "lb2"]
    assert json.loads(netmaster.request("GET", "/service/lb1:default")[2])["ipaddress"] == "10.103.1.50"
    assert netmaster.request("GET", "/service/nosuch:default")[:3:2] == (500, "service not found\n")
    # groups and services still use the network
    assert netmaster.request("DELETE", "/api/v1/networks/default:test-net/")[0] == 500
    netmaster.json("DELETE", "/api/v1/serviceLBs/default:lb1/")
    assert etcd_get(etcd_server, "/contiv.io/state/serviceLB/lb1:default") is None
    assert "default:lb1" not in netmaster.json("GET", "/api/v1/networks/default:test-net/")["link-sets"].get(
        "Servicelbs", {}
    )


def test_inspect_endpoint_after_plugin_create(netmaster):
    """Transcript §4.4/§4.6: endpoint created through /plugin/*, then /api/v1/inspect/endpoints/."""
    netmaster.json("POST", "/api/v1/tenants/t1/", {"tenantName": "t1"})
    net = dict(
        NET_BODY,
        networkName="n2",
        tenantName="t1",
        subnet="20.1.1.0/24",
        encap="vlan",
        pktTag=100,
        gateway="20.1.1.254",
    )
    netmaster.json("POST", "/api/v1/networks/t1:n2/", net)
    alloc = netmaster.json(
        "POST", "/plugin/allocAddress", {"NetworkID": "n2.t1", "AddressPool": "", "PreferredIPv4Address": ""}
    )
    assert alloc == {"NetworkID": "n2.t1", "IPv4Address": "20.1.1.1/24"}
    netmaster.json(
        "POST",
        "/plugin/createEndpoint",
        {
            "TenantName": "t1",
            "NetworkName": "n2",
            "ServiceName": "",
            "EndpointID": "ep0123456789abcdef",
            "EPCommonName": "ctr1",
            "ConfigEP": {
                "Container": "ep0123456789abcdef",
                "Host": "host1",
                "IPAddress": "20.1.1.1",
                "ServiceName": "",
            },
        },
    )
    st, hdrs, body = netmaster.request("GET", "/api/v1/inspect/endpoints/ep0123456789abcdef/")
    assert (st, hdrs["Content-Type"]) == (200, "application/json")
    assert body == (
        '{"Oper":{"key":"ep0123456789abcdef","containerName":"ctr1","endpointID":"ep0123456789abcdef",'
        '"homingHost":"host1","ipAddress":["20.1.1.1",""],"labels":"map[]","macAddress":"02:02:14:01:01:01",'
        '"network":"n2.t1"}}\n'
    )
    assert (
        netmaster.json("GET", "/api/v1/inspect/endpoints/ctr1/")["Oper"]["endpointID"] == "ep0123456789abcdef"
    )
    assert netmaster.request("GET", "/api/v1/inspect/endpoints/nosuch/")[:3:2] == (
        500,
        "endpoint not found\n",
    )
    st, _, body = netmaster.request("DELETE", "/api/v1/networks/t1:n2/")
    assert (st, body) == (500, "Error: Network has active endpoints\n")
    # the tenant keeps its link (the original's in-memory corruption bug is not reproduced)
    assert netmaster.request("DELETE", "/api/v1/tenants/t1/")[2] == "cannot delete t1 has 1 networks\n"
