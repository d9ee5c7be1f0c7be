"""netctl commands against a recording HTTP server replaying the original netmaster's answers.

Expected outputs and request bodies are the verbatim ones the original printed and sent
(docs/original.md R4.1-R4.8; timestamps normalised).
"""

import re

import pytest

from tests.support.netctl_fakeserver import ReplayServer, run_inprocess

TENANT_DEFAULT = (
    '{"key":"default","tenantName":"default","link-sets":{"EndpointGroups":{"default:web":{"type":"endpointGroup",'
    '"key":"default:web"}},"Networks":{"default:test-net":{"type":"network","key":"default:test-net"}},'
    '"Policies":{"default:p1":{"type":"policy","key":"default:p1"}}}}'
)
NET_TEST = (
    '{"key":"default:test-net","encap":"vxlan","networkName":"test-net","nwType":"data","subnet":"10.103.1.0/24",'
    '"tenantName":"default","link-sets":{},"links":{"Tenant":{"type":"tenant","key":"default"}}}'
)
NET_N2 = (
    '{"key":"t1:n2","encap":"vlan","gateway":"20.1.1.254","networkName":"n2","nwType":"data","pktTag":100,'
    '"subnet":"20.1.1.0/24","tenantName":"t1","link-sets":{},"links":{"Tenant":{"type":"tenant","key":"t1"}}}'
)
GROUP_WEB = (
    '{"key":"default:web","groupName":"web","networkName":"test-net","tenantName":"default","link-sets":{},'
    '"links":{"AppProfile":{},"NetProfile":{},"Network":{"type":"network","key":"default:test-net"},'
    '"Tenant":{"type":"tenant","key":"default"}}}'
)
RULE_1 = (
    '{"key":"default:p1:1","action":"allow","direction":"in","policyName":"p1","port":80,"priority":1,'
    '"protocol":"tcp","ruleId":"1","tenantName":"default","link-sets":{"Policies":{"default:p1":{"type":"policy",'
    '"key":"default:p1"}}},"links":{"MatchEndpointGroup":{}}}'
)
POLICY_P1 = (
    '{"key":"default:p1","policyName":"p1","tenantName":"default","link-sets":{"Rules":{"default:p1:1":'
    '{"type":"rule","key":"default:p1:1"}}},"links":{"Tenant":{"type":"tenant","key":"default"}}}'
)
GLOBAL = (
    '{"key":"global","arpMode":"proxy","fwdMode":"bridge","name":"global","networkInfraType":"default",'
    '"pvtSubnet":"172.19.0.0/16","vlans":"1-4094","vxlans":"1-10000"}'
)
STACK = (
    "Tenant not found\ngithub.com/contiv/netplugin/netmaster/objApi.(*APIController).NetworkCreate "
    "[apiController.go 1065]\nruntime.goexit [asm_amd64.s 1594]\n\n"
)

ROUTES = {
    ("GET", "/api/v1/tenants/default/"): (200, TENANT_DEFAULT),
    ("GET", "/api/v1/tenants/t1/"): (200, '{"key":"t1","tenantName":"t1","link-sets":{}}'),
    ("GET", "/api/v1/tenants/"): (
        200,
        f'[{TENANT_DEFAULT},{{"key":"t1","tenantName":"t1","link-sets":{{}}}}]',
    ),
    ("GET", "/api/v1/networks/"): (200, f"[{NET_N2},{NET_TEST}]"),
    ("GET", "/api/v1/endpointGroups/"): (200, f"[{GROUP_WEB}]"),
    ("GET", "/api/v1/policys/"): (200, f"[{POLICY_P1}]"),
    ("GET", "/api/v1/policys/default:p1/"): (200, POLICY_P1),
    ("GET", "/api/v1/rules/"): (200, f"[{RULE_1}]"),
    ("GET", "/api/v1/globals/"): (200, f"[{GLOBAL}]"),
    ("GET", "/api/v1/globals/global/"): (200, GLOBAL),
    ("POST", "/api/v1/globals/global/"): (
        500,
        "Unable to update forwarding mode due to existing 1 vlans and 1 vxlans\n",
    ),
    ("POST", "/api/v1/networks/default:test-net/"): (200, NET_TEST),
    ("POST", "/api/v1/networks/t1:n2/"): (500, STACK),
    ("POST", "/api/v1/tenants/t1/"): (200, '{"key":"t1","tenantName":"t1","link-sets":{}}'),
    ("POST", "/api/v1/endpointGroups/default:web/"): (200, GROUP_WEB),
    ("POST", "/api/v1/endpointGroups/default:db/"): (200, "{}"),
    ("POST", "/api/v1/policys/default:p1/"): (200, POLICY_P1),
    ("POST", "/api/v1/rules/default:p1:1/"): (200, RULE_1),
    ("DELETE", "/api/v1/networks/t1:n2/"): (200, '"t1:n2"'),
    ("DELETE", "/api/v1/tenants/t1/"): (200, '"t1"'),
    ("DELETE", "/api/v1/policys/default:p1/"): (200, '"default:p1"'),
    ("GET", "/version"): (
        200,
        '{"GitCommit":"965773066d2b8ebed3514979949061a03d46fd20","Version":"1.2.1-HEAD-9657730",'
        '"BuildTime":"11-27-2026.20-05-16.UTC"}',
    ),
    ("GET", "/api/v1/inspect/networks/default:test-net/"): (
        200,
        f'{{"Config":{NET_TEST},"Oper":{{"availableIPAddresses":"10.103.1.1-10.103.1.254","externalPktTag":1,'
        '"networkTag":"test-net.default","pktTag":1}}',
    ),
    ("GET", "/api/v1/inspect/policys/default:p1/"): (200, f'{{"Config":{POLICY_P1},"Oper":{{}}}}'),
}

TS = re.compile(r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')


@pytest.fixture
def nm(tmp_path):
    with ReplayServer(ROUTES) as srv:
        srv.home = str(tmp_path)
        yield srv


def netctl(srv, *args):
    code, out, err = run_inprocess(["--netmaster", srv.url, *args], env={"HOME": srv.home, "NETMASTER": None})
    return code, out, TS.sub('time="T"', err)


def test_network_create_prints_and_sends_exact_body(nm):
    assert netctl(nm, "network", "create", "--subnet", "10.103.1.0/24", "test-net") == (
        0,
        "Creating network default:test-net\n",
        "",
    )
    method, path, headers, body = nm.requests[-1]
    assert (method, path) == ("POST", "/api/v1/networks/default:test-net/")
    assert headers["User-Agent"] == "Go-http-client/1.1"
    assert body == (
        b'{"encap":"vxlan","networkName":"test-net","nwType":"data","subnet":"10.103.1.0/24",'
        b'"tenantName":"default","link-sets":{},"links":{"Tenant":{}}}'
    )


def test_network_create_vlan_body(nm):
    nm.routes[("POST", "/api/v1/networks/t1:n2/")] = (200, NET_N2)
    args = ["network", "create", "-t", "t1", "--encap", "vlan", "--pkt-tag", "100"]
    args += ["--subnet", "20.1.1.0/24", "--gateway", "20.1.1.254", "n2"]
    assert netctl(nm, *args) == (0, "Creating network t1:n2\n", "")
    assert nm.requests[-1][3] == (
        b'{"encap":"vlan","gateway":"20.1.1.254","networkName":"n2","nwType":"data","pktTag":100,'
        b'"subnet":"20.1.1.0/24","tenantName":"t1","link-sets":{},"links":{"Tenant":{}}}'
    )


def test_server_error_body_keeps_trailing_newline_in_quotes(nm):
    code, out, err = netctl(nm, "network", "create", "-t", "t1", "--subnet", "20.1.1.0/24", "n2")
    assert (code, out) == (3, "")
    assert err == f'time="T" level=error msg="{STACK}" \n'


def test_network_ls_first_gets_tenant_then_filters(nm):
    code, out, err = netctl(nm, "network", "ls")
    assert (code, err) == (0, "")
    assert out == (
        "Tenant   Network   Nw Type  Encap type  Packet tag  Subnet         Gateway  IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------   -------   -------  ----------  ----------  -------        ------   ----------  -----------  ---------\n"
        "default  test-net  data     vxlan       0           10.103.1.0/24                                    \n"
    )
    assert [(m, p) for m, p, _h, _b in nm.requests] == [
        ("GET", "/api/v1/tenants/default/"),
        ("GET", "/api/v1/networks/"),
    ]


def test_network_ls_all_and_by_tenant(nm):
    assert netctl(nm, "network", "ls", "-a")[1] == (
        "Tenant   Network   Nw Type  Encap type  Packet tag  Subnet         Gateway     IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------   -------   -------  ----------  ----------  -------        ------      ----------  -----------  ---------\n"
        "t1       n2        data     vlan        100         20.1.1.0/24    20.1.1.254                           \n"
        "default  test-net  data     vxlan       0           10.103.1.0/24                                       \n"
    )
    assert netctl(nm, "network", "ls", "-t", "t1")[1] == (
        "Tenant  Network  Nw Type  Encap type  Packet tag  Subnet       Gateway     IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------  -------  -------  ----------  ----------  -------      ------      ----------  -----------  ---------\n"
        "t1      n2       data     vlan        100         20.1.1.0/24  20.1.1.254                           \n"
    )
    assert netctl(nm, "net", "list", "-q", "--all") == (0, "n2\ntest-net\n", "")


def test_network_ls_json_is_go_marshal_indent(nm):
    nm.routes[("GET", "/api/v1/networks/")] = (200, f"[{NET_TEST}]")
    assert netctl(nm, "network", "ls", "--json")[1] == (
        "[\n  {\n"
        '    "key": "default:test-net",\n    "encap": "vxlan",\n    "networkName": "test-net",\n'
        '    "nwType": "data",\n    "subnet": "10.103.1.0/24",\n    "tenantName": "default",\n'
        '    "link-sets": {},\n    "links": {\n      "Tenant": {\n        "type": "tenant",\n'
        '        "key": "default"\n      }\n    }\n  }\n]\n'
    )


def test_network_inspect(nm):
    assert netctl(nm, "network", "inspect", "test-net")[1].endswith(
        '  "Oper": {\n    "availableIPAddresses": "10.103.1.1-10.103.1.254",\n    "externalPktTag": 1,\n'
        '    "networkTag": "test-net.default",\n    "pktTag": 1\n  }\n}\n'
    )


def test_tenant_create_ls_rm(nm):
    assert netctl(nm, "tenant", "create", "t1") == (0, "Creating tenant: t1\n", "")
    assert nm.requests[-1][3] == b'{"tenantName":"t1","link-sets":{}}'
    assert netctl(nm, "tenant", "ls") == (0, "Name     \n------   \ndefault  \nt1       \n", "")
    assert netctl(nm, "tenant", "rm", "t1") == (0, "Deleting tenant t1\n", "")
    assert nm.requests[-1][:2] == ("DELETE", "/api/v1/tenants/t1/")


def test_group_create_ls_and_policies_body(nm):
    assert netctl(nm, "group", "create", "test-net", "web") == (0, "Creating EndpointGroup default:web\n", "")
    assert nm.requests[-1][3] == (
        b'{"groupName":"web","networkName":"test-net","tenantName":"default","link-sets":{},'
        b'"links":{"AppProfile":{},"NetProfile":{},"Network":{},"Tenant":{}}}'
    )
    assert netctl(nm, "group", "create", "-p", "p1", "test-net", "db")[0] == 0
    assert nm.requests[-1][3] == (
        b'{"groupName":"db","networkName":"test-net","policies":["p1"],"tenantName":"default","link-sets":{},'
        b'"links":{"AppProfile":{},"NetProfile":{},"Network":{},"Tenant":{}}}'
    )
    assert netctl(nm, "group", "ls") == (
        0,
        "Tenant   Group  Network   IP Pool  CfgdTag  Policies  Network profile\n"
        "------   -----  -------   -------  -------  --------  ---------------\n"
        "default  web    test-net                              \n",
        "",
    )


def test_policy_rules(nm):
    assert netctl(nm, "policy", "create", "p1") == (0, "Creating policy default:p1\n", "")
    args = ["policy", "rule-add", "p1", "1", "--direction", "in", "--protocol", "tcp", "--port", "80"]
    assert netctl(nm, *args, "--action", "allow") == (0, "", "")
    assert nm.requests[-1][3] == (
        b'{"action":"allow","direction":"in","policyName":"p1","port":80,"priority":1,"protocol":"tcp",'
        b'"ruleId":"1","tenantName":"default","link-sets":{},"links":{"MatchEndpointGroup":{}}}'
    )
    nm.requests.clear()
    assert netctl(nm, "policy", "rule-ls", "p1") == (
        0,
        "Incoming Rules:\n"
        "Rule  Priority  From EndpointGroup  From Network  From IpAddress  To IpAddress  Protocol  Port  Action\n"
        "----  --------  ------------------  ------------  ---------       ------------  --------  ----  ------\n"
        "1     1                                                                         tcp       80    allow\n"
        "Outgoing Rules:\n"
        "Rule  Priority  To EndpointGroup  To Network  To IpAddress  Protocol  Port  Action\n"
        "----  --------  ----------------  ----------  ---------     --------  ----  ------\n",
        "",
    )
    assert [p for _m, p, _h, _b in nm.requests] == [
        "/api/v1/tenants/default/",
        "/api/v1/policys/default:p1/",
        "/api/v1/rules/",
    ]
    assert netctl(nm, "policy", "ls") == (0, "Tenant   Policy\n------   ------\ndefault  p1\n", "")
    assert netctl(nm, "policy", "inspect", "p1")[1].endswith('  "Oper": {}\n}\n')
    assert netctl(nm, "policy", "rm", "p1") == (0, "Deleting policy default:p1\n", "")


def test_rule_ls_sorts_by_priority_and_splits_directions(nm):
    r2 = RULE_1.replace('"priority":1', '"priority":5').replace('"ruleId":"1"', '"ruleId":"2"')
    r3 = (
        '{"key":"default:p1:3","action":"deny","direction":"out","policyName":"p1","priority":3,'
        '"toEndpointGroup":"db","ruleId":"3","tenantName":"default"}'
    )
    nm.routes[("GET", "/api/v1/rules/")] = (200, f"[{r2},{r3},{RULE_1}]")
    assert netctl(nm, "policy", "rule-ls", "p1", "-q") == (0, "1\n3\n2\n", "")
    out = netctl(nm, "policy", "rule-ls", "p1")[1].splitlines()
    assert out[3:5] == [
        "1     1                                                                         tcp       80    allow",
        "2     5                                                                         tcp       80    allow",
    ]
    assert out[7:] == [
        "----  --------  ----------------  ----------  ---------     --------  ----  ------",
        "3     3         db                                                    0     deny",
    ]


def test_global_info_and_set_failure(nm):
    assert netctl(nm, "global", "info") == (
        0,
        "Fabric mode: default\nForward mode: bridge\nARP mode: proxy\nVlan Range: 1-4094\n"
        "Vxlan range: 1-10000\nPrivate subnet: 172.19.0.0/16\n",
        "",
    )
    assert netctl(nm, "global", "set", "--fwd-mode", "routing") == (
        3,
        "",
        'time="T" level=error msg="Unable to update forwarding mode due to existing 1 vlans and 1 vxlans\n" \n',
    )
    assert nm.requests[-1][3] == (
        b'{"key":"global","arpMode":"proxy","fwdMode":"routing","name":"global","networkInfraType":"default",'
        b'"pvtSubnet":"172.19.0.0/16","vlans":"1-4094","vxlans":"1-10000"}'
    )


def test_version(nm):
    code, out, err = netctl(nm, "version")
    assert (code, err) == (0, "")
    assert out.startswith("Client Version:\nVersion: ")
    assert out.endswith(
        "\n\nServer Version:\nVersion: 1.2.1-HEAD-9657730\nGitCommit: 965773066d2b8ebed3514979949061a03d46fd20\n"
        "BuildTime: 11-27-2026.20-05-16.UTC\n"
    )


def test_network_rm_prints_before_request_and_delete_404_is_success(nm):
    assert netctl(nm, "network", "rm", "-t", "t1", "n2") == (0, "Deleting network t1:n2\n", "")
    assert netctl(nm, "network", "rm", "gone") == (0, "Deleting network default:gone\n", "")
    assert nm.requests[-1][:2] == ("DELETE", "/api/v1/networks/default:gone/")


def test_status_mapping(nm):
    nm.routes[("GET", "/api/v1/inspect/networks/default:x/")] = (403, "nope")
    assert netctl(nm, "network", "inspect", "x") == (3, "", 'time="T" level=error msg="Access denied!" \n')
    assert netctl(nm, "network", "inspect", "y") == (3, "", 'time="T" level=error msg="Page not found!" \n')
    nm.routes[("GET", "/api/v1/inspect/networks/default:z/")] = (502, "bad")
    assert netctl(nm, "network", "inspect", "z") == (3, "", 'time="T" level=error msg="502 Bad Gateway" \n')
    nm.routes[("GET", "/api/v1/inspect/networks/default:j/")] = (200, "{bad")
    assert netctl(nm, "network", "inspect", "j")[0] == 3


def test_netmaster_down_is_exit_2_with_go_style_message(tmp_path):
    with ReplayServer() as srv:
        url = srv.url
    code, out, err = run_inprocess(["--netmaster", url, "network", "ls"], env={"HOME": str(tmp_path)})
    assert (code, out) == (2, "")
    assert f'msg="Get "{url}/api/v1/tenants/default/": dial tcp 127.0.0.1:' in err
    assert err.endswith(': connect: connection refused" \n')


def test_netmaster_env_var_and_bad_url(tmp_path):
    with ReplayServer(ROUTES) as srv:
        code, out, _ = run_inprocess(
            ["tenant", "ls", "-q"], env={"HOME": str(tmp_path), "NETMASTER": srv.url}
        )
        assert (code, out) == (0, "default\nt1\n")
    code, out, err = run_inprocess(["--netmaster", "ftp://x", "tenant", "ls"], env={"HOME": str(tmp_path)})
    assert (code, out) == (1, "")
    assert "msg=\"Error connecting to netmaster: 'ftp://x' is not a netmaster URL" in err
    assert "write it as --netmaster http://x" in err


def test_token_from_config_requires_https(nm, tmp_path):
    (tmp_path / ".netctl").mkdir()
    (tmp_path / ".netctl" / "config.json").write_text('{"token":"abc"}')
    code, _out, err = netctl(nm, "tenant", "ls")
    assert code == 3
    assert "setting auth token requires a https auth_proxy URL" in err
    assert nm.requests == []


def test_endpoint_inspect_drops_fields_unknown_to_the_struct(nm):
    nm.routes[("GET", "/api/v1/inspect/endpoints/ep01/")] = (
        200,
        '{"Oper":{"key":"ep01","containerName":"ctr1","ipAddress":["20.1.1.1",""],"labels":"map[]"}}',
    )
    assert netctl(nm, "ep", "inspect", "ep01") == (
        0,
        '{\n  "Oper": {\n    "containerName": "ctr1",\n    "ipAddress": [\n      "20.1.1.1",\n      ""\n'
        '    ],\n    "labels": "map[]"\n  }\n}\n',
        "",
    )
