"""Bad input against a real netmaster: every request gets a clear HTTP 500 text (or 404), never a
traceback, the daemon stays up, and etcd (modeldb + state) is left exactly as it was."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.etcd

NET = {"tenantName": "default", "networkName": "n1", "encap": "vxlan", "subnet": "10.1.1.0/24"}


def snapshot(etcd_server) -> str:
    return etcd_server.etcdctl("get", "--prefix", "/contiv.io/obj") + etcd_server.etcdctl(
        "get", "--prefix", "/contiv.io/state"
    )


CASES = [
    # (path, body, expected message)
    (
        "/api/v1/networks/default:n1/",
        "{bad json",
        "invalid character 'b' looking for beginning of object key string",
    ),
    ("/api/v1/networks/default:n1/", "", "EOF"),
    ("/api/v1/networks/default:n1/", '{"subnet": "10.1.1.0/24"', "unexpected end of JSON input"),
    (
        "/api/v1/networks/default:n1/",
        "[1,2]",
        "json: cannot unmarshal array into Go value of type contivModel.Network",
    ),
    (
        "/api/v1/networks/default:n1/",
        '"str"',
        "json: cannot unmarshal string into Go value of type contivModel.Network",
    ),
    ("/api/v1/networks/default:n1/", '{"a":1} x', "invalid character 'x' after top-level value"),
    ("/api/v1/networks/default:n1/", dict(NET, bogus=1), 'json: unknown field "bogus"'),
    (
        "/api/v1/networks/default:n1/",
        dict(NET, pktTag="100"),
        "json: cannot unmarshal string into Go struct field Network.pktTag of type int",
    ),
    (
        "/api/v1/networks/default:n1/",
        dict(NET, pktTag=1.5),
        "json: cannot unmarshal number 1.5 into Go struct field Network.pktTag of type int",
    ),
    (
        "/api/v1/networks/default:n1/",
        dict(NET, subnet=["10.1.1.0/24"]),
        "json: cannot unmarshal array into Go struct field Network.subnet of type string",
    ),
    (
        "/api/v1/endpointGroups/default:g/",
        {"tenantName": "default", "groupName": "g", "networkName": "n1", "policies": "p1"},
        "json: cannot unmarshal string into Go struct field EndpointGroup.policies of type []string",
    ),
    (
        "/api/v1/networks/default:n1/",
        dict(NET, pktTag=True),
        "json: cannot unmarshal bool into Go struct field Network.pktTag of type int",
    ),
    ("/api/v1/networks/default:n1/", dict(NET, subnet="10.1.1.0/33"), "subnet string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, subnet="foo"), "subnet string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, subnet="300.1.1.0/24"), "subnet string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, encap="gre"), "encap string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, nwType="mgmt"), "nwType string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, pktTag=16777217), "pktTag Value Out of bound"),
    ("/api/v1/networks/default:n1/", dict(NET, gateway="10.1.1.256"), "gateway string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, subnet="10.1.1.0/24\n"), "subnet string invalid format"),
    ("/api/v1/networks/default:a:b/", dict(NET, networkName="a:b"), "networkName string invalid format"),
    ("/api/v1/networks/default:x%2Fy/", dict(NET, networkName="x/y"), "networkName string invalid format"),
    ("/api/v1/networks/default:n1/", dict(NET, networkName="n" * 65), "Invalid Key"),
    (
        "/api/v1/networks/default:" + "n" * 65 + "/",
        dict(NET, networkName="n" * 65),
        "networkName string too long",
    ),
    ("/api/v1/tenants/t%7Cx/", {"tenantName": "t|x"}, "tenantName string invalid format"),
    (
        "/api/v1/tenants/t1/",
        {"tenantName": "t1", "key": 5},
        "json: cannot unmarshal number into Go struct field Tenant.key of type string",
    ),
    (
        "/api/v1/tenants/t1/",
        {"tenantName": "t1", "link-sets": []},
        "json: cannot unmarshal array into Go struct field Tenant.link-sets",
    ),
    ("/api/v1/tenants/t1/", b"\xff\xfe{}", "invalid UTF-8 in request body"),
    ("/api/v1/tenants/t1/", "[" * 100000, "exceeded max depth"),
    ("/api/v1/globals/global/", {"name": "global", "fwdMode": "fast"}, "fwdMode string invalid format"),
    ("/api/v1/globals/other/", {"name": "other"}, "name string invalid format"),
    (
        "/api/v1/rules/default:p:1/",
        {
            "tenantName": "default",
            "policyName": "p",
            "ruleId": "1",
            "direction": "in",
            "action": "allow",
            "port": 70000,
        },
        "port Value Out of bound",
    ),
    ("/api/v1/Bgps/h1/", {"hostname": "h1", "routerip": "1.1.1.1"}, "routerip string invalid format"),
    (
        "/api/v1/serviceLBs/default:s/",
        {"tenantName": "default", "serviceName": "s", "networkName": "n1"},
        "Invalid selector options",
    ),
]


@pytest.mark.parametrize("path,body,message", CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_bad_input_is_refused_and_state_untouched(netmaster, etcd_server, path, body, message):
    before = snapshot(etcd_server)
    for method in ("POST", "PUT"):
        status, headers, text = netmaster.request(method, path, body)
        assert status == 500, text
        assert text == message + "\n" if "\n" not in message else text.startswith(message)
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert "Traceback" not in text
    assert snapshot(etcd_server) == before
    assert netmaster.request("GET", "/version")[0] == 200  # still alive


def test_huge_body_refused(netmaster, etcd_server):
    before = snapshot(etcd_server)
    big = '{"tenantName":"t1","defaultNetwork":"' + "a" * (2 << 20) + '"}'
    status, _, text = netmaster.request("POST", "/api/v1/tenants/t1/", big)
    assert (status, text) == (500, "request body too large (limit 1048576 bytes)\n")
    assert snapshot(etcd_server) == before
    assert netmaster.request("GET", "/api/v1/tenants/")[0] == 200


def test_subnet_too_large_for_etcd_is_a_clear_error(netmaster, etcd_server):
    """A /8's address bitmap (2.8 MB) exceeds etcd's default request limit: the error says what to
    change and nothing is written (with etcd --max-request-bytes 8388608 the network is created:
    docs/deployment.md)."""
    before = snapshot(etcd_server)
    body = {"tenantName": "default", "networkName": "big", "subnet": "10.0.0.0/8", "encap": "vxlan"}
    status, _, text = netmaster.request("POST", "/api/v1/networks/default:big/", body)
    assert status == 500
    assert text.startswith("etcd txn failed: request too large for etcd (") and text.endswith(
        "start etcd with a larger --max-request-bytes\n"
    ), text
    assert snapshot(etcd_server) == before
    assert netmaster.request("GET", "/api/v1/networks/default:big/")[0] != 200


def test_failed_hook_leaves_nothing_half_written(netmaster, etcd_server):
    """Network in a missing tenant, rule on a missing policy, tenant delete refused: no partial writes."""
    netmaster.json("POST", "/api/v1/networks/default:n1/", NET)
    before = snapshot(etcd_server)
    assert (
        netmaster.request("POST", "/api/v1/networks/nosuch:n1/", dict(NET, tenantName="nosuch"))[2]
        == "Tenant not found\n"
    )
    rule = {
        "tenantName": "default",
        "policyName": "nosuch",
        "ruleId": "1",
        "direction": "in",
        "action": "allow",
    }
    assert netmaster.request("POST", "/api/v1/rules/default:nosuch:1/", rule)[2] == "Policy not found\n"
    assert (
        netmaster.request("DELETE", "/api/v1/tenants/default/")[2] == "cannot delete default has 1 networks\n"
    )
    assert (
        netmaster.request("PUT", "/api/v1/networks/default:n1/", NET)[2]
        == "Cant change network parameters after its created\n"
    )
    assert snapshot(etcd_server) == before
