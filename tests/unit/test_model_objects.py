"""REST object models (contivpy.model.objects) and the generic CRUD path (contivpy.netmaster.crud)
on MemoryKV: canonical JSON byte for byte, validation messages, txn retries and the leader fence."""

from __future__ import annotations

import json

import pytest

from contivpy.common.errors import NotLeaderError, ValidationError
from contivpy.common.kv.base import Compare, Put
from contivpy.model import codec, objects
from contivpy.netmaster import registry
from contivpy.netmaster.crud import Crud, Plan


def test_every_registry_type_has_a_spec():
    assert set(registry.TYPES) == set(objects.SPECS)
    assert registry.BY_PLURAL["policys"].name == "policy" and registry.BY_PLURAL["Bgps"].name == "Bgp"


@pytest.mark.parametrize(
    "obj_type,obj,text",
    [
        (
            "network",
            {
                "subnet": "20.1.1.0/24",
                "tenantName": "t1",
                "pktTag": 100,
                "gateway": "20.1.1.254",
                "key": "t1:n2",
                "networkName": "n2",
                "nwType": "data",
                "encap": "vlan",
                "link-sets": {},
                "links": {"Tenant": {"key": "t1", "type": "tenant"}},
            },
            '{"key":"t1:n2","encap":"vlan","gateway":"20.1.1.254","networkName":"n2","nwType":"data","pktTag":100,'
            '"subnet":"20.1.1.0/24","tenantName":"t1","link-sets":{},"links":{"Tenant":{"type":"tenant","key":"t1"}}}',
        ),
        (
            "tenant",
            {"key": "t9", "tenantName": "t9", "link-sets": {}},
            '{"key":"t9","tenantName":"t9","link-sets":{}}',
        ),
        (
            "endpointGroup",
            {
                "key": "default:web",
                "groupName": "web",
                "networkName": "test-net",
                "tenantName": "default",
                "link-sets": {},
                "links": {
                    "Network": {"type": "network", "key": "default:test-net"},
                    "Tenant": {"type": "tenant", "key": "default"},
                },
            },
            '{"key":"default:web","groupName":"web","networkName":"test-net","tenantName":"default","link-sets":{},'
            '"links":{"AppProfile":{},"NetProfile":{},"Network":{"type":"network","key":"default:test-net"},'
            '"Tenant":{"type":"tenant","key":"default"}}}',
        ),
        (
            "global",
            codec.default_global("bridge"),
            '{"key":"global","arpMode":"proxy","fwdMode":"bridge","name":"global","networkInfraType":"default",'
            '"pvtSubnet":"172.19.0.0/16","vlans":"1-4094","vxlans":"1-10000"}',
        ),
        (
            "tenant",
            {
                "key": "default",
                "tenantName": "default",
                "link-sets": {
                    "Policies": {"default:p1": {"type": "policy", "key": "default:p1"}},
                    "Networks": {
                        "default:test-net": {"type": "network", "key": "default:test-net"},
                        "default:badsub3": {"type": "network", "key": "default:badsub3"},
                    },
                    "EndpointGroups": {"default:web": {"type": "endpointGroup", "key": "default:web"}},
                },
            },
            '{"key":"default","tenantName":"default","link-sets":{"EndpointGroups":{"default:web":{"type":"endpointGroup",'
            '"key":"default:web"}},"Networks":{"default:badsub3":{"type":"network","key":"default:badsub3"},'
            '"default:test-net":{"type":"network","key":"default:test-net"}},"Policies":{"default:p1":{"type":"policy",'
            '"key":"default:p1"}}}}',
        ),
    ],
)
def test_canonical_json_matches_transcripts(obj_type, obj, text):
    assert codec.dumps(obj_type, obj) == text


def test_decode_and_validate():
    body = codec.decode(
        "rule",
        b'{"ruleId":"1","policyName":"p1","tenantName":"default","direction":"in",'
        b'"action":"allow","port":0,"links":{"MatchEndpointGroup":{}},"key":"ignored"}',
    )
    assert body == {
        "ruleId": "1",
        "policyName": "p1",
        "tenantName": "default",
        "direction": "in",
        "action": "allow",
    }
    body["key"] = "default:p1:1"
    codec.validate("rule", body)
    assert body["priority"] == 1  # default
    net = {
        "key": "default:n",
        "tenantName": "default",
        "networkName": "n",
        "encap": "vxlan",
        "subnet": "10.1.1.5/24",
    }
    codec.validate("network", net)  # the original accepts a host address as subnet
    assert net["nwType"] == "data"
    for bad, msg in [
        ({"subnet": "10.1.1.0/33"}, "subnet string invalid format"),
        ({"subnet": "10.1.1.0/24\n"}, "subnet string invalid format"),
        ({"encap": ""}, "encap string invalid format"),
        ({"cfgdTag": "x" * 129}, "cfgdTag string too long"),
        ({"key": "default:m"}, "Invalid Key"),
    ]:
        with pytest.raises(ValidationError) as exc:
            codec.validate("network", dict(net, **bad))
        assert str(exc.value) == msg
    with pytest.raises(ValidationError, match='unknown field "x"'):
        codec.decode("tenant", '{"x":1}')
    with pytest.raises(ValidationError, match="request body too large"):
        codec.decode("tenant", b" " * (objects.MAX_BODY + 1))


async def test_crud_links_one_txn_and_retries(memory_kv):
    crud = Crud(memory_kv)
    await crud.ensure_defaults("bridge")
    await crud.create_or_update("tenant", "t1", {"tenantName": "t1"})
    await crud.create_or_update("policy", "t1:p", {"tenantName": "t1", "policyName": "p"})
    t1 = await crud.get("tenant", "t1")
    assert t1["link-sets"] == {"Policies": {"t1:p": {"type": "policy", "key": "t1:p"}}}
    await crud.delete("policy", "t1:p")
    assert (await crud.get("tenant", "t1"))["link-sets"] == {}

    # a hook whose read is invalidated by a concurrent writer is re-run on fresh state
    calls = []

    async def build(ctx):
        kv = await ctx.read("/contiv.io/state/counter")
        n = int(kv.value) if kv else 0
        calls.append(n)
        if len(calls) == 1:
            await memory_kv.put("/contiv.io/state/counter", "41")  # concurrent change after our read
        return Plan(ops=[Put("/contiv.io/state/counter", str(n + 1))])

    await crud.run_plan(build)
    assert calls == [0, 41]
    assert (await memory_kv.get("/contiv.io/state/counter")).value == "42"


async def test_crud_fence_blocks_deposed_leader(memory_kv):
    lease = await memory_kv.grant_lease(30)
    await memory_kv.put("/contiv.io/lock/netmaster/leader", "1.1.1.1:9999", lease)
    fence = Compare("/contiv.io/lock/netmaster/leader", "lease", "==", lease)
    crud = Crud(memory_kv, fence=lambda: fence)
    await crud.create_or_update("tenant", "t1", {"tenantName": "t1"})
    other = await memory_kv.grant_lease(30)
    await memory_kv.put("/contiv.io/lock/netmaster/leader", "2.2.2.2:9999", other)  # someone else leads now
    with pytest.raises(NotLeaderError):
        await crud.create_or_update("tenant", "t2", {"tenantName": "t2"})
    assert await memory_kv.get("/contiv.io/obj/modeldb/tenant/t2") is None
    assert json.loads((await memory_kv.get("/contiv.io/obj/modeldb/tenant/t1")).value)["key"] == "t1"
