"""Rule ``toIpAddress`` check and policy inspect read endpoint state through model.state (memory, etcd)."""

from __future__ import annotations

import pytest

from contivpy.model import keys
from contivpy.model.state import EndpointState
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud


async def _setup(kv) -> Crud:
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    body = {"networkName": "ttinet", "tenantName": "default", "encap": "vxlan", "subnet": "10.92.0.0/24"}
    await crud.create_or_update("network", "default:ttinet", body)
    await crud.create_or_update("policy", "default:ttip", {"policyName": "ttip", "tenantName": "default"})
    g = {"groupName": "ttig", "networkName": "ttinet", "tenantName": "default", "policies": ["ttip"]}
    await crud.create_or_update("endpointGroup", "default:ttig", g)
    ep = EndpointState(
        id="ttinet.default-ttiep1",
        netID="ttinet.default",
        endpointID="ttiep1",
        serviceName="ttig",
        endpointGroupKey="ttig:default",
        ipAddress="10.92.0.7",
        macAddress="02:02:0a:5c:00:07",
    )
    await kv.put(keys.ep_state(ep.id), ep.to_json())
    return crud


def _rule(rid: str, ip: str) -> dict:
    return {
        "tenantName": "default",
        "policyName": "ttip",
        "ruleId": rid,
        "direction": "in",
        "toIpAddress": ip,
        "action": "allow",
    }


async def test_rule_to_ip_must_be_an_endpoint_of_the_group(kv):
    crud = await _setup(kv)
    with pytest.raises(
        Exception, match="failed to configure 10.92.0.8, ip address is not in epg ttig:default"
    ):
        await crud.create_or_update("rule", "default:ttip:1", _rule("1", "10.92.0.8"))
    await crud.create_or_update("rule", "default:ttip:2", _rule("2", "10.92.0.7"))
    assert await kv.get(keys.obj_key("rule", "default:ttip:2")) is not None
    out = await crud.inspect("policy", "default:ttip")
    assert out["Oper"]["numEndpoints"] == 1
    assert out["Oper"]["endpoints"][0]["ipAddress"] == ["10.92.0.7", ""]
