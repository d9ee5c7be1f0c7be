"""Network / group / global hooks through the generic CRUD on a real store (``kv``: memory + etcd)."""

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contivpy.common.errors import ContivError
from contivpy.model import keys
from contivpy.netmaster.api.errors import error_middleware
from contivpy.netmaster.api.plugin_routes import add_plugin_routes
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator


@pytest.fixture
async def crud(kv):
    c = Crud(kv, Config(cluster_mode="test"))
    await c.ensure_defaults("bridge")
    return c


def net(name, subnet, tenant="default", encap="vxlan", **kw):
    return {"networkName": name, "tenantName": tenant, "encap": encap, "subnet": subnet, **kw}


async def err(coro) -> str:
    with pytest.raises(ContivError) as ei:
        await coro
    return str(ei.value)


async def test_network_rules_and_messages(crud, kv):
    await crud.create_or_update("network", "default:tal-a", net("tal-a", "10.1.1.0/24"))
    assert await err(crud.create_or_update("network", "default:tal-b", net("tal-b", "10.1.1.0/16"))) == (
        "network tal-a conflicts with subnet 10.1.1.0/16"
    )
    assert await err(
        crud.create_or_update("network", "nosuch:tal-c", net("tal-c", "10.9.0.0/24", "nosuch"))
    ) == ("Tenant not found")
    assert await err(crud.create_or_update("network", "default:tal-a", net("tal-a", "10.1.1.0/24"))) == (
        "Cant change network parameters after its created"
    )
    assert "subnet" in await err(
        crud.create_or_update("network", "default:tal-d", net("tal-d", "10.1.1.0/33"))
    )
    # other tenants may reuse subnets; range subnets that do not touch coexist
    await crud.create_or_update("tenant", "tal-t", {"tenantName": "tal-t"})
    await crud.create_or_update("network", "tal-t:tal-a", net("tal-a", "10.1.1.0/24", "tal-t"))
    await crud.create_or_update("network", "default:tal-r1", net("tal-r1", "20.1.1.10-20.1.1.45/24"))
    await crud.create_or_update("network", "default:tal-r2", net("tal-r2", "20.1.1.46-20.1.1.100/24"))
    assert "conflicts with subnet" in await err(
        crud.create_or_update("network", "default:tal-r3", net("tal-r3", "20.1.1.45-20.1.1.50/24"))
    )
    ins = await crud.inspect("network", "default:tal-r1")
    assert ins["Oper"]["availableIPAddresses"] == "20.1.1.10-20.1.1.45"
    # failed creates left no state and no tags behind
    assert await kv.get(keys.net_state("tal-b.default")) is None
    g = await crud.inspect("global", "global")
    assert g["Oper"]["vxlansInUse"] == "1-4" and g["Oper"]["numNetworks"] == 4


async def test_vlan_tags_and_global_refusals(crud):
    await crud.create_or_update(
        "network", "default:tal-v", net("tal-v", "10.5.0.0/24", encap="vlan", pktTag=100)
    )
    assert (
        await err(
            crud.create_or_update(
                "network", "default:tal-w", net("tal-w", "10.6.0.0/24", encap="vlan", pktTag=100)
            )
        )
        == "requested vlan not available - vlan:100"
    )
    glob = await crud.get("global", "global")
    assert await err(crud.create_or_update("global", "global", dict(glob, fwdMode="routing"))) == (
        "Unable to update forwarding mode due to existing 1 vlans"
    )
    assert await err(crud.create_or_update("global", "global", dict(glob, vlans="200-300"))) == (
        "cannot update the vlan range due to existing vlans 100"
    )
    await crud.create_or_update("global", "global", dict(glob, vlans="50-300", arpMode="flood"))
    cfg = json.loads((await crud.kv.get(keys.MASTER_CONFIG_GLOBAL)).value)
    assert cfg["arp-mode"] == "flood"
    st = json.loads((await crud.kv.get(keys.STATE_GLOBAL)).value)
    assert st == {"id": "", "auto": {"VLANs": "50-300", "VXLANs": "1-10000"}}
    await crud.create_or_update("network", "default:tal-x", net("tal-x", "10.7.0.0/24", encap="vlan"))
    assert (await crud.inspect("network", "default:tal-x"))["Oper"]["pktTag"] == 50
    await crud.delete("network", "default:tal-v")
    await crud.delete("network", "default:tal-x")
    await crud.create_or_update(
        "global", "global", dict(await crud.get("global", "global"), fwdMode="routing")
    )


async def test_groups_pools_ids_and_endpoints(crud, kv):
    await crud.create_or_update("network", "default:tal-n", net("tal-n", "10.3.1.0/24", gateway="10.3.1.254"))
    await crud.create_or_update(
        "endpointGroup",
        "default:tal-g1",
        {
            "groupName": "tal-g1",
            "tenantName": "default",
            "networkName": "tal-n",
            "ipPool": "10.3.1.10-10.3.1.20",
        },
    )
    assert "ip address 10.3.1.15 is not available" in await err(
        crud.create_or_update(
            "endpointGroup",
            "default:tal-g2",
            {
                "groupName": "tal-g2",
                "tenantName": "default",
                "networkName": "tal-n",
                "ipPool": "10.3.1.15-10.3.1.30",
            },
        )
    )
    await crud.create_or_update(
        "endpointGroup",
        "default:tal-g2",
        {"groupName": "tal-g2", "tenantName": "default", "networkName": "tal-n"},
    )
    ids = {
        json.loads((await kv.get(keys.epg_state(f"tal-g{i}:default"))).value)["endpointGroupId"]
        for i in (1, 2)
    }
    assert ids == {1, 2}
    assert (
        await err(
            crud.create_or_update(
                "endpointGroup",
                "default:tal-g1",
                {
                    "groupName": "tal-g1",
                    "tenantName": "default",
                    "networkName": "tal-n",
                    "ipPool": "10.3.1.10-10.3.1.21",
                },
            )
        )
        == "Cannot change IP pool after epg is created."
    )
    alloc = Allocator(kv)
    r = await alloc.alloc_address("tal-n:tal-g1.default")
    assert r == {"NetworkID": "tal-n:tal-g1.default", "IPv4Address": "10.3.1.10/24"}
    ep = await alloc.create_endpoint(
        {
            "TenantName": "default",
            "NetworkName": "tal-n",
            "ServiceName": "tal-g1",
            "EndpointID": "tal1",
            "ConfigEP": {"Container": "tal1", "Host": "h1", "IPAddress": "10.3.1.10"},
        }
    )
    assert (ep.endpointGroupId, ep.endpointGroupKey, ep.macAddress) == (
        1,
        "tal-g1:default",
        "02:02:0a:03:01:0a",
    )
    oper = (await crud.inspect("endpointGroup", "default:tal-g1"))["Oper"]
    assert (
        oper["allocatedIPAddresses"] == "10.3.1.10" and oper["availableIPAddresses"] == "10.3.1.11-10.3.1.20"
    )
    assert oper["numEndpoints"] == 1
    assert (
        await err(crud.delete("endpointGroup", "default:tal-g1")) == "Error: EPG tal-g1 has active endpoints"
    )
    assert await err(crud.delete("network", "default:tal-n")) == "cannot delete tal-n has 2 endpoint groups"
    await alloc.delete_endpoint({"TenantName": "default", "NetworkName": "tal-n", "EndpointID": "tal1"})
    await crud.delete("endpointGroup", "default:tal-g1")
    await crud.delete("endpointGroup", "default:tal-g2")
    assert (await crud.inspect("network", "default:tal-n"))["Oper"]["allocatedIPAddresses"] == "10.3.1.254"
    assert await kv.get(keys.ROOT + "master/epgid/1") is None
    await crud.delete("network", "default:tal-n")
    assert await kv.get(keys.net_state("tal-n.default")) is None


async def test_plugin_http_routes(crud, kv):
    await crud.create_or_update("tenant", "t1", {"tenantName": "t1"})
    await crud.create_or_update(
        "network", "t1:n2", net("n2", "20.1.1.0/24", "t1", encap="vlan", pktTag=100, gateway="20.1.1.254")
    )
    app = web.Application(middlewares=[error_middleware])  # netmaster's one error mapping
    add_plugin_routes(app, Allocator(kv))
    async with TestClient(TestServer(app)) as cli:
        body = {"NetworkID": "n2.t1", "AddressPool": "", "PreferredIPv4Address": ""}
        r = await cli.post("/plugin/allocAddress", json=body)
        assert r.status == 200 and r.content_type == "application/json"
        assert await r.text() == '{"NetworkID":"n2.t1","IPv4Address":"20.1.1.1/24"}\n'
        r = await cli.post("/plugin/allocAddress", data=json.dumps(body))  # no Content-Type: no route
        assert r.status == 404
        r = await cli.post("/plugin/allocAddress", json=dict(body, PreferredIPv4Address="20.1.1.1"))
        assert r.status == 500 and await r.text() == "ip address 20.1.1.1 is not available\n"
        # a network (or group) that does not exist: the original's words (decisions.md "allocAddress errors")
        before = await kv.get_prefix(keys.STATE)
        for missing in ("nosuch.t1", "n2.nosuch", "nosuch", "nosuch:grp.t1", "n2:nogroup.t1"):
            r = await cli.post("/plugin/allocAddress", json=dict(body, NetworkID=missing))
            assert (r.status, await r.text()) == (500, "key not found\n"), missing
            if missing != "n2:nogroup.t1":  # a release through a deleted group still frees (decisions.md)
                r = await cli.post(
                    "/plugin/releaseAddress", json={"NetworkID": missing, "IPv4Address": "20.1.1.1/24"}
                )
                assert (r.status, await r.text()) == (500, "key not found\n"), missing
        r = await cli.post("/plugin/allocAddress", json=dict(body, NetworkID="", AddressPool="99.9.9.0/24"))
        assert (r.status, await r.text()) == (500, "network not found\n")
        assert (await kv.get_prefix(keys.STATE))[0] == before[0]
        r = await cli.post("/plugin/allocAddress", data=b"{bad", headers={"Content-Type": "application/json"})
        assert r.status == 500
        ce = {
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
        }
        r = await cli.post("/plugin/createEndpoint", json=ce)
        assert await r.text() == (
            '{"EndpointConfig":{"id":"n2.t1-ep0123456789abcdef","netID":"n2.t1","endpointID":"ep0123456789abcdef",'
            '"serviceName":"","endpointGroupId":0,"endpointGroupKey":"","ipAddress":"20.1.1.1","ipv6Address":"",'
            '"macAddress":"02:02:14:01:01:01","homingHost":"host1","intfName":"","vtepIP":"","labels":null,'
            '"containerId":"","epCommonName":"ctr1"}}\n'
        )
        r = await cli.post(
            "/plugin/releaseAddress", json={"NetworkID": "n2.t1|20.1.1.0/24", "IPv4Address": "20.1.1.1/24"}
        )
        assert await r.text() == '"success"\n'
        ins = await crud.inspect("network", "t1:n2")
        assert ins["Oper"]["allocatedIPAddresses"] == "20.1.1.1, 20.1.1.254"  # still owned by the endpoint
        assert await err(crud.delete("network", "t1:n2")) == "Error: Network has active endpoints"
        r = await cli.post(
            "/plugin/deleteEndpoint",
            json={"TenantName": "t1", "NetworkName": "n2", "EndpointID": "ep0123456789abcdef"},
        )
        assert r.status == 200
        r = await cli.post("/plugin/updateEndpoint", json={"IPAddress": "20.1.1.1", "Event": "start"})
        assert await r.json() == {"IPAddress": "20.1.1.1"}
    ins = await crud.inspect("network", "t1:n2")
    assert ins["Oper"] == {
        "allocatedIPAddresses": "20.1.1.254",
        "availableIPAddresses": "20.1.1.1-20.1.1.253",
        "networkTag": "n2.t1",
        "pktTag": 100,
    }


async def test_global_range_checks_in_the_original_order(crud, kv):
    """docs/original.md "Global update": forwarding mode, private subnet, VLAN range, VXLAN range;
    the first refusal that applies is the answer, and a refused update changes nothing."""
    await crud.create_or_update(
        "network", "default:tgo-v", net("tgo-v", "10.8.0.0/24", encap="vlan", pktTag=100)
    )
    await crud.create_or_update("network", "default:tgo-x", net("tgo-x", "10.8.1.0/24", pktTag=3000))
    glob = await crud.get("global", "global")
    before = {
        k: (await kv.get(k)).value for k in (keys.STATE_GLOBAL, keys.STATE_AUTO_VLAN, keys.OPER_AUTO_VLAN)
    }
    existing = "due to existing 1 vlans and 1 vxlans"
    refusals = [
        # the forwarding mode is checked before either range (even a malformed one)
        (dict(fwdMode="routing", vlans="1-5000"), f"Unable to update forwarding mode {existing}"),
        (dict(fwdMode="routing", vxlans="5000-6000"), f"Unable to update forwarding mode {existing}"),
        # then the private subnet
        (dict(pvtSubnet="172.20.0.0/16", vlans="200-300"), f"Unable to update private subnet {existing}"),
        # then the VLAN range, before the VXLAN range
        (dict(vlans="200-300", vxlans="1-20000"), "cannot update the vlan range due to existing vlans 100"),
        (dict(vlans="200-300", vxlans="5000-6000"), "cannot update the vlan range due to existing vlans 100"),
        (dict(vxlans="5000-6000"), "cannot update the vxlan range due to existing vxlans 3000"),
        # inside one range: the format first (decisions.md "Global range checks")
        (dict(vlans="1-5000"), "invalid range 1-5000, vlan values exceed 4095 max allowed"),
        (dict(vxlans="1-20000"), "does not allow vxlan range to exceed 16000 range 1-20000"),
    ]
    for change, message in refusals:
        assert await err(crud.create_or_update("global", "global", dict(glob, **change))) == message, change
        assert await crud.get("global", "global") == glob
        assert {k: (await kv.get(k)).value for k in before} == before
    # ranges that keep every tag in use are accepted
    await crud.create_or_update("global", "global", dict(glob, vlans="100-4000", vxlans="3000-9000"))
    assert (await crud.inspect("global", "global"))["Oper"]["vlansInUse"] == "100"
    await crud.create_or_update("global", "global", glob)
    await crud.delete("network", "default:tgo-v")
    await crud.delete("network", "default:tgo-x")
