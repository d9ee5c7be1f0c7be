"""Tables and request bodies of the less common commands (netprofile, bgp, service, app-profile,
external-contracts, aci-gw), rendered with Go tabwriter rules (reference section 3.2)."""

import re

import pytest

from tests.support.netctl_fakeserver import ReplayServer, run_inprocess

TENANT = (200, '{"key":"default","tenantName":"default","link-sets":{}}')
TS = re.compile(r'time="[^"]*"')


@pytest.fixture
def nm(tmp_path):
    with ReplayServer({("GET", "/api/v1/tenants/default/"): TENANT}) as srv:
        srv.home = str(tmp_path)
        yield srv


def netctl(srv, *args):
    code, out, err = run_inprocess(["--netmaster", srv.url, *args], env={"HOME": srv.home})
    return code, out, TS.sub('time="T"', err)


def test_netprofile_ls_units_and_short_rows(nm):
    nm.routes[("GET", "/api/v1/netprofiles/")] = (
        200,
        '[{"key":"default:p1","DSCP":5,"bandwidth":"100 mbps","burst":10,"profileName":"p1","tenantName":"default"},'
        '{"key":"default:p2","profileName":"p2","tenantName":"default"},'
        '{"key":"other:p3","profileName":"p3","tenantName":"other"}]',
    )
    assert netctl(nm, "netprofile", "ls") == (
        0,
        "Name    Tenant   Bandwidth  DSCP      burst size\n"
        "------  ------   ---------  --------  ----------\n"
        "p1      default  100Mbps    5         10\n"
        "p2      default  " + " " * 11 + "0\n",
        "",
    )
    assert netctl(nm, "netprofile", "ls", "-a", "-q") == (0, "p1\np2\np3\n", "")


def test_netprofile_create_body(nm):
    nm.routes[("POST", "/api/v1/netprofiles/default:gold/")] = (200, "{}")
    assert netctl(nm, "netprofile", "create", "-b", "1gbps", "-d", "10", "-s", "500", "gold") == (
        0,
        "Creating netprofile default:gold\n",
        "",
    )
    assert nm.requests[-1][3] == (
        b'{"DSCP":10,"bandwidth":"1gbps","burst":500,"profileName":"gold","tenantName":"default",'
        b'"link-sets":{},"links":{"Tenant":{}}}'
    )


def test_bgp(nm):
    nm.routes[("GET", "/api/v1/Bgps/")] = (
        200,
        '[{"key":"host1","as":"500","hostname":"host1","neighbor":"10.0.0.2","neighbor-as":"600",'
        '"routerip":"10.0.0.1/24"}]',
    )
    table = (
        "HostName   RouterIP     AS       Neighbor  NeighborAS\n"
        "---------  --------     -------  --------  -------\n"
        "host1      10.0.0.1/24  500      10.0.0.2  600\n"
    )
    assert netctl(nm, "bgp", "ls") == (0, table, "")
    assert netctl(nm, "bgp", "ls", "-q") == (0, table, "")  # the original's -q never worked
    nm.routes[("POST", "/api/v1/Bgps/host1/")] = (200, "{}")
    args = ["bgp", "create", "host1", "--router-ip", "10.0.0.1/24", "--as", "500", "--neighbor-as", "600"]
    assert netctl(nm, *args, "--neighbor", "10.0.0.2") == (0, "", "")
    assert nm.requests[-1][3] == (
        b'{"as":"500","hostname":"host1","neighbor":"10.0.0.2","neighbor-as":"600","routerip":"10.0.0.1/24"}'
    )
    nm.routes[("DELETE", "/api/v1/Bgps/host1/")] = (200, '"host1"')
    assert netctl(nm, "bgp", "rm", "host1") == (0, "Deleting Bgp router config: host1\n", "")


def test_service(nm):
    nm.routes[("GET", "/api/v1/serviceLBs/")] = (
        200,
        '[{"key":"default:svc1","networkName":"net1","selectors":["app=web","tier=fe"],"serviceName":"svc1",'
        '"tenantName":"default"}]',
    )
    assert netctl(nm, "service", "ls") == (
        0,
        "ServiceName  Tenant    Network  Selectors\n"
        "---------    --------  -------  -------\n"
        "svc1         default   net1     [app=web tier=fe]  \n",
        "",
    )
    nm.routes[("POST", "/api/v1/serviceLBs/default:svc1/")] = (200, "{}")
    args = ["service", "create", "svc1", "-s", "net1", "--selector=app=web", "--selector=tier=fe"]
    assert netctl(nm, *args, "-p", "80:8080:TCP", "--ip", "10.1.1.9") == (
        0,
        "Creating ServiceLB default:svc1\n",
        "",
    )
    assert nm.requests[-1][3] == (
        b'{"ipAddress":"10.1.1.9","networkName":"net1","ports":["80:8080:TCP"],"selectors":["app=web","tier=fe"],'
        b'"serviceName":"svc1","tenantName":"default","links":{"Network":{},"Tenant":{}}}'
    )
    nm.routes[("DELETE", "/api/v1/serviceLBs/default:svc1/")] = (200, '"default:svc1"')
    assert netctl(nm, "service", "rm", "svc1") == (0, "Deleting Service  svc1,default\n", "")


def test_app_profile(nm):
    nm.routes[("GET", "/api/v1/appProfiles/")] = (
        200,
        '[{"key":"default:ap1","appProfileName":"ap1","endpointGroups":["web","db"],"tenantName":"default"}]',
    )
    assert netctl(nm, "app-profile", "ls") == (
        0,
        "Tenant   AppProfile  Groups\n------   ----------  ------\ndefault  ap1         web,db\n",
        "",
    )
    nm.routes[("GET", "/api/v1/appProfiles/default:ap1/")] = (
        200,
        '{"key":"default:ap1","appProfileName":"ap1","endpointGroups":["web","db"],"tenantName":"default"}',
    )
    assert netctl(nm, "app-profile", "group-ls", "ap1") == (0, "web,db", "")
    nm.routes[("POST", "/api/v1/appProfiles/default:ap2/")] = (200, "{}")
    assert netctl(nm, "app-profile", "create", "-g", "web,db", "ap2") == (
        0,
        "Creating AppProfile default:ap2\n",
        "",
    )
    assert nm.requests[-1][3] == (
        b'{"appProfileName":"ap2","endpointGroups":["web","db"],"tenantName":"default","link-sets":{},'
        b'"links":{"Tenant":{}}}'
    )
    assert netctl(nm, "app-profile", "update", "ap2") == (0, "", "")
    assert b'"endpointGroups"' not in nm.requests[-1][3]


def test_external_contracts(nm):
    nm.routes[("GET", "/api/v1/extContractsGroups/")] = (
        200,
        '[{"key":"default:c1","contracts":["a","b"],"contractsGroupName":"c1","contractsType":"provided",'
        '"tenantName":"default"}]',
    )
    assert netctl(nm, "external-contracts", "ls") == (
        0,
        "Tenant   Name      Type        Contracts\n------   ------    ------      -------\ndefault  c1        provided  [a b]\n",
        "",
    )
    nm.routes[("POST", "/api/v1/extContractsGroups/default:c2/")] = (200, "{}")
    assert netctl(nm, "external-contracts", "create", "-c", "-a", "x", "-a", "y", "c2") == (
        0,
        "Creating ExternalContracts default:c2\n",
        "",
    )
    assert nm.requests[-1][3] == (
        b'{"contracts":["x","y"],"contractsGroupName":"c2","contractsType":"consumed","tenantName":"default",'
        b'"link-sets":{}}'
    )
    assert netctl(nm, "external-contracts", "rm", "c2") == (
        0,
        "Deleting external contracts group c2 in tenant default\n",
        "",
    )


def test_aci_gw_set_without_existing_object_and_info(nm):
    nm.routes[("POST", "/api/v1/aciGws/aciGw/")] = (200, "{}")
    assert netctl(nm, "aci-gw", "set", "-d", "dom1") == (0, "", "")
    assert nm.requests[0][:2] == ("GET", "/api/v1/aciGws/aciGw/")
    assert nm.requests[-1][3] == (
        b'{"enforcePolicies":"yes","includeCommonTenant":"no","name":"aciGw","physicalDomain":"dom1"}'
    )
    nm.routes[("GET", "/api/v1/aciGws/")] = (
        200,
        '[{"key":"aciGw","enforcePolicies":"yes","includeCommonTenant":"no","name":"aciGw","physicalDomain":"d"}]',
    )
    assert netctl(nm, "aci-gw", "info") == (
        0,
        "Path bindings: \nNode bindings: \nPhysical domain: d\nEnforce policies: yes\nInclude Common-Tenant: no\n",
        "",
    )


def test_global_set_overlays_fields_and_always_sends_private_subnet(nm):
    nm.routes[("GET", "/api/v1/globals/global/")] = (
        200,
        '{"key":"global","arpMode":"proxy","fwdMode":"bridge","name":"global","networkInfraType":"default",'
        '"pvtSubnet":"172.20.0.0/16","vlans":"1-4094","vxlans":"1-10000"}',
    )
    nm.routes[("POST", "/api/v1/globals/global/")] = (200, "{}")
    assert netctl(nm, "global", "set", "--arp-mode", "flood", "-v", "100-200", "-x=5000-6000") == (0, "", "")
    assert nm.requests[-1][3] == (
        b'{"key":"global","arpMode":"flood","fwdMode":"bridge","name":"global","networkInfraType":"default",'
        b'"pvtSubnet":"172.19.0.0/16","vlans":"100-200","vxlans":"5000-6000"}'
    )


def test_go_json_escaping_in_output(nm):
    nm.routes[("GET", "/api/v1/tenants/")] = (200, '[{"key":"a<b>&c","tenantName":"x\\u2028\\b\\u00e9\\t"}]')
    assert netctl(nm, "tenant", "ls", "--json")[1] == (
        '[\n  {\n    "key": "a\\u003cb\\u003e\\u0026c",\n    "tenantName": "x\\u2028\\u0008é\\t",\n'
        '    "link-sets": {}\n  }\n]\n'
    )


def test_type_mismatch_from_server_is_exit_3(nm):
    nm.routes[("GET", "/api/v1/networks/")] = (200, '[{"pktTag":"x"}]')
    assert netctl(nm, "network", "ls") == (
        3,
        "",
        'time="T" level=error msg="json: cannot unmarshal string into Go struct field Network.pktTag of type int" \n',
    )
