"""Bounded etcd txns: etcd refuses a txn with more than 128 ops
(compares + ops). Every path whose state grows with a collection must stay under it:

- a policy with 200 rules attached to 3 groups (rule-add, attach of a group after the rules,
  rule delete, detach, policy delete with the MatchRules cleanup) -- the 63rd rule-add used to fail;
- a tenant with 300 networks and 200 groups (+ a netprofile and an app profile over all the
  groups, updated and removed), inspect, then every delete;
- a follow-up interrupted after the commit is rolled forward by the next leader start, and a
  refused request writes nothing.

``CountingKV`` wraps the real store and records the size of every txn so the tests also assert
the bound itself (<= 100), not only that etcd accepted them.
"""

from __future__ import annotations

import json

import pytest

from contivpy.common.errors import ResourceExhaustedError
from contivpy.model import keys
from contivpy.netmaster import followup
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.hooks import policy_state

pytestmark = pytest.mark.etcd

BOUND = 100


class CountingKV:
    def __init__(self, kv) -> None:
        self._kv = kv
        self.max_ops = 0
        self.txns = 0

    def __getattr__(self, name):
        return getattr(self._kv, name)

    async def txn(self, compares, success, failure=()):
        self.txns += 1
        self.max_ops = max(self.max_ops, len(compares) + len(success) + len(failure))
        return await self._kv.txn(compares, success, failure)


async def _crud(etcd_kv) -> tuple[Crud, CountingKV]:
    ckv = CountingKV(etcd_kv)
    crud = Crud(ckv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    return crud, ckv


async def _keys(kv, prefix: str) -> dict[str, str]:
    items, _ = await kv.get_prefix(prefix)
    return {i.key: i.value for i in items}


async def _net(crud, name: str, subnet: str, tenant: str = "default") -> None:
    body = {"networkName": name, "tenantName": tenant, "encap": "vxlan", "subnet": subnet}
    await crud.create_or_update("network", f"{tenant}:{name}", body)


async def _group(crud, name: str, net: str, policies=(), tenant: str = "default", **extra) -> None:
    body = {"groupName": name, "networkName": net, "tenantName": tenant, "policies": list(policies)}
    await crud.create_or_update("endpointGroup", f"{tenant}:{name}", dict(body, **extra))


def _rule(i: int) -> dict:
    """200 rules of every shape: ported in (2 ofnet rules), from-group, to-network, out ported."""
    r = {"tenantName": "default", "policyName": "tchp", "ruleId": str(i), "priority": 1 + i % 100}
    kind = i % 4
    if kind == 0:
        r.update(direction="in", protocol="tcp", port=1000 + i, action="allow")
    elif kind == 1:
        r.update(direction="in", fromEndpointGroup=f"tchr{i % 7}", action="deny")
    elif kind == 2:
        r.update(direction="out", toNetwork="tchnet2", protocol="udp", action="allow")
    else:
        r.update(direction="out", protocol="tcp", port=2000 + i, action="deny")
    return r


def _ofnet_count(rules: list[dict]) -> int:
    return sum(len(policy_state._dirs(r)) for r in rules)


async def test_policy_with_200_rules_on_3_groups(etcd_kv):
    crud, ckv = await _crud(etcd_kv)
    await _net(crud, "tchnet", "10.200.0.0/16")
    await _net(crud, "tchnet2", "10.201.0.0/24")
    for i in range(7):  # groups referenced by from-group rules
        await _group(crud, f"tchr{i}", "tchnet")
    await crud.create_or_update("policy", "default:tchp", {"policyName": "tchp", "tenantName": "default"})
    await _group(crud, "tchg1", "tchnet", ["tchp"])
    await _group(crud, "tchg2", "tchnet", ["tchp"])
    rules = [_rule(i) for i in range(200)]
    for r in rules:  # used to fail at the 63rd
        await crud.create_or_update("rule", f"default:tchp:{r['ruleId']}", r)
    await _group(crud, "tchg3", "tchnet", ["tchp"])  # attach after the rules: 200 rules at once
    policy = await crud.get("policy", "default:tchp")
    assert len(policy["link-sets"]["Rules"]) == 200 and len(policy["link-sets"]["EndpointGroups"]) == 3

    per_group = _ofnet_count(rules)
    for g in ("tchg1", "tchg2", "tchg3"):
        gp = f"default:{g}:default:tchp"
        rec = json.loads((await etcd_kv.get(keys.POLICY + gp)).value)
        assert len(rec["RuleMaps"]) == 200
        ofr = await _keys(etcd_kv, keys.POLICY_RULE + gp + ":")
        assert len(ofr) == per_group
        # a from-group rule carries the referenced group's EPG id, a to-network rule its subnet
        remote = json.loads(ofr[f"{keys.POLICY_RULE}{gp}:default:tchp:1:inRx"])
        r1 = json.loads((await etcd_kv.get(keys.epg_state("tchr1:default"))).value)
        assert remote["SrcEndpointGroup"] == r1["endpointGroupId"] and remote["Action"] == "deny"
        out = json.loads(ofr[f"{keys.POLICY_RULE}{gp}:default:tchp:2:outTx"])
        assert out["DstIpAddr"] == "10.201.0.0/24" and out["IpProtocol"] == 17
        assert remote["DstEndpointGroup"] == rec["EndpointGroupID"]
    assert await _keys(etcd_kv, followup.PENDING_PREFIX) == {}
    # rules and groups were applied one at a time (policyrule / policypair jobs): a full rebuild
    # of the policy's state from the model finds nothing to change
    assert await policy_state.policy_ops(etcd_kv, "default", "tchp") == []
    # a referenced group got its MatchRules links
    r3 = await crud.get("endpointGroup", "default:tchr3")
    assert "default:tchp:101" in r3["link-sets"]["MatchRules"]

    # rule delete: gone from all 3 groups
    await crud.delete("rule", "default:tchp:0")
    for g in ("tchg1", "tchg2", "tchg3"):
        gp = f"default:{g}:default:tchp"
        assert len(await _keys(etcd_kv, keys.POLICY_RULE + gp + ":")) == per_group - 2
        assert "default:tchp:0" not in json.loads((await etcd_kv.get(keys.POLICY + gp)).value)["RuleMaps"]
    assert await policy_state.policy_ops(etcd_kv, "default", "tchp") == []

    # detach one group (update), delete the others: their pair records and ofnet rules vanish
    await _group(crud, "tchg1", "tchnet", [])
    assert await etcd_kv.get(keys.POLICY + "default:tchg1:default:tchp") is None
    assert await _keys(etcd_kv, keys.POLICY_RULE + "default:tchg1:") == {}
    await crud.delete("endpointGroup", "default:tchg2")
    await crud.delete("endpointGroup", "default:tchg3")
    assert await _keys(etcd_kv, keys.POLICY) == {}
    assert await _keys(etcd_kv, keys.POLICY_RULE) == {}

    # policy delete with 199 rules: one prefix delete + MatchRules cleanup on the 7 groups
    await crud.delete("policy", "default:tchp")
    assert await _keys(etcd_kv, keys.obj_prefix("rule")) == {}
    for i in range(7):
        g = await crud.get("endpointGroup", f"default:tchr{i}")
        assert "MatchRules" not in g["link-sets"], g
    assert await _keys(etcd_kv, followup.PENDING_PREFIX) == {}
    assert ckv.max_ops <= BOUND, ckv.max_ops


async def test_tenant_with_300_networks_and_200_groups(etcd_kv):
    crud, ckv = await _crud(etcd_kv)
    await crud.create_or_update("tenant", "tcht", {"tenantName": "tcht"})
    for i in range(300):
        await _net(crud, f"tchn{i:03d}", f"10.{50 + i // 256}.{i % 256}.0/24", "tcht")
    await crud.create_or_update(
        "netprofile", "tcht:tchnp", {"profileName": "tchnp", "tenantName": "tcht", "bandwidth": "10Mbps"}
    )
    groups = [f"tchg{i:03d}" for i in range(200)]
    for i, g in enumerate(groups):
        await _group(crud, g, f"tchn{i:03d}", tenant="tcht", netProfile="tchnp")
    tenant = await crud.get("tenant", "tcht")
    assert len(tenant["link-sets"]["Networks"]) == 300
    assert len(tenant["link-sets"]["EndpointGroups"]) == 200
    oper = (await crud.inspect("tenant", "tcht"))["Oper"]
    assert (oper["totalNetworks"], oper["totalEPGs"]) == (300, 200)

    # netprofile update pushes to the 200 EPG states
    await crud.create_or_update(
        "netprofile",
        "tcht:tchnp",
        {"profileName": "tchnp", "tenantName": "tcht", "bandwidth": "20Mbps", "DSCP": 7},
    )
    states = await _keys(etcd_kv, keys.STATE + "endpointGroups/")
    mine = [json.loads(v) for k, v in states.items() if k.endswith(":tcht")]
    assert len(mine) == 200 and all((s["Bandwidth"], s["DSCP"]) == ("20Mbps", 7) for s in mine)

    # app profile over the 200 groups: links set, then half removed, then the profile deleted
    body = {"appProfileName": "tchap", "tenantName": "tcht", "endpointGroups": groups}
    await crud.create_or_update("appProfile", "tcht:tchap", body)
    epgs = [e for e in await crud.list("endpointGroup") if e["tenantName"] == "tcht"]
    assert len(epgs) == 200
    assert all(e["links"]["AppProfile"] == {"type": "appProfile", "key": "tcht:tchap"} for e in epgs)
    await crud.create_or_update("appProfile", "tcht:tchap", dict(body, endpointGroups=groups[:100]))
    assert (await crud.get("endpointGroup", "tcht:tchg150"))["links"]["AppProfile"] == {}
    assert (await crud.get("endpointGroup", "tcht:tchg050"))["links"]["AppProfile"]["key"] == "tcht:tchap"
    await crud.delete("appProfile", "tcht:tchap")
    assert (await crud.get("endpointGroup", "tcht:tchg050"))["links"]["AppProfile"] == {}

    for g in groups:
        await crud.delete("endpointGroup", f"tcht:{g}")
    await crud.delete("netprofile", "tcht:tchnp")
    for i in range(300):
        await crud.delete("network", f"tcht:tchn{i:03d}")
    await crud.delete("tenant", "tcht")
    assert [o["key"] for o in await crud.list("tenant")] == ["default"]
    assert await _keys(etcd_kv, keys.obj_prefix("network")) == {}
    assert await _keys(etcd_kv, keys.obj_prefix("endpointGroup")) == {}
    assert await _keys(etcd_kv, followup.PENDING_PREFIX) == {}
    assert ckv.max_ops <= BOUND, ckv.max_ops


async def test_interrupted_followup_is_rolled_forward_by_next_leader(etcd_kv, monkeypatch):
    crud, _ = await _crud(etcd_kv)
    await _net(crud, "tchnet", "10.200.0.0/16")
    await crud.create_or_update("policy", "default:tchp", {"policyName": "tchp", "tenantName": "default"})
    rules = [  # 60 rules x 2 ofnet rules: more than one follow-up txn
        {"tenantName": "default", "policyName": "tchp", "ruleId": str(i), "direction": "in"}
        | {"protocol": "tcp", "port": 100 + i, "action": "allow"}
        for i in range(60)
    ]
    for r in rules:
        await crud.create_or_update("rule", f"default:tchp:{r['ruleId']}", r)

    real = followup.write_ops
    calls = {"n": 0}

    async def dies_after_first_txn(c, ops):  # the leader "dies" after one follow-up txn
        calls["n"] += 1
        await real(c, followup.chunks(ops)[0])
        raise followup.NotLeaderError("netmaster is not the leader any more")

    monkeypatch.setattr(followup, "write_ops", dies_after_first_txn)
    with pytest.raises(Exception, match="not the leader"):
        await _group(crud, "tchg1", "tchnet", ["tchp"])
    monkeypatch.setattr(followup, "write_ops", real)
    assert calls["n"] == 1
    # the model change is committed, the derived state is partial, the intent key says so
    assert (await crud.get("endpointGroup", "default:tchg1"))["policies"] == ["tchp"]
    pending = await _keys(etcd_kv, followup.PENDING_PREFIX)
    # attaching a group rebuilds only its own (group, policy) pair: that is the intent recorded
    assert list(pending) == [followup.pending_key("policypair", "default:tchg1:tchp")]
    gp = "default:tchg1:default:tchp"
    assert 0 < len(await _keys(etcd_kv, keys.POLICY_RULE + gp + ":")) < 2 * len(rules)

    crud2 = Crud(etcd_kv, Config(cluster_mode="test"))  # next leader start rolls it forward
    await crud2.ensure_defaults("bridge")
    assert len(await _keys(etcd_kv, keys.POLICY_RULE + gp + ":")) == 2 * len(rules)
    assert len(json.loads((await etcd_kv.get(keys.POLICY + gp)).value)["RuleMaps"]) == len(rules)
    assert await _keys(etcd_kv, followup.PENDING_PREFIX) == {}


async def test_refused_request_writes_nothing(etcd_kv):
    crud, _ = await _crud(etcd_kv)
    await _net(crud, "tchnet", "10.200.0.0/16")
    await crud.create_or_update("policy", "default:tchp", {"policyName": "tchp", "tenantName": "default"})
    await _group(crud, "tchg1", "tchnet", ["tchp"])
    _, before = await etcd_kv.get_prefix("/contiv.io/")
    bad = {"tenantName": "default", "policyName": "tchp", "ruleId": "1", "direction": "in", "action": "allow"}
    with pytest.raises(Exception, match="endpoint group not found"):
        await crud.create_or_update("rule", "default:tchp:1", dict(bad, fromEndpointGroup="nosuch"))
    with pytest.raises(Exception, match="Policy is being used"):
        await crud.delete("policy", "default:tchp")
    _, after = await etcd_kv.get_prefix("/contiv.io/")
    assert after == before  # no revision moved: nothing was written


async def test_group_policies_bounded_with_clear_error(etcd_kv):
    from contivpy.netmaster.hooks.group import MAX_POLICIES

    crud, ckv = await _crud(etcd_kv)
    await _net(crud, "tchnet", "10.200.0.0/16")
    names = [f"tchp{i:02d}" for i in range(MAX_POLICIES + 1)]
    for n in names:
        await crud.create_or_update("policy", f"default:{n}", {"policyName": n, "tenantName": "default"})
        r = {"tenantName": "default", "policyName": n, "ruleId": "1", "direction": "in", "action": "deny"}
        await crud.create_or_update("rule", f"default:{n}:1", r)
    with pytest.raises(Exception, match=f"too many policies for a group \\({MAX_POLICIES + 1}, at most"):
        await _group(crud, "tchg", "tchnet", names)
    assert await etcd_kv.get(keys.obj_key("endpointGroup", "default:tchg")) is None
    await _group(crud, "tchg", "tchnet", names[:MAX_POLICIES])  # the most a group may hold
    assert len(await _keys(etcd_kv, keys.POLICY)) == MAX_POLICIES
    await _group(crud, "tchg", "tchnet", names[1 : MAX_POLICIES + 1])  # swap one
    assert await etcd_kv.get(keys.POLICY + "default:tchg:default:tchp00") is None
    assert await etcd_kv.get(keys.POLICY + f"default:tchg:default:{names[-1]}") is not None
    await crud.delete("endpointGroup", "default:tchg")
    assert await _keys(etcd_kv, keys.POLICY) == {} and await _keys(etcd_kv, keys.POLICY_RULE) == {}
    assert await _keys(etcd_kv, followup.PENDING_PREFIX) == {}
    assert ckv.max_ops <= 128, ckv.max_ops
    print("max txn ops", ckv.max_ops)


async def test_group_policy_changes_per_update_bounded(etcd_kv):
    """Replacing all MAX_POLICIES policies of a group in one update would need 2 x 32 policy objects
    in one txn (128 puts + the group's own: etcd refused it with "too many operations"); it is
    refused with a clear error and nothing written; the same change in two updates works. (tti)"""
    from contivpy.netmaster.hooks.group import MAX_POLICIES

    crud, _ = await _crud(etcd_kv)
    sizes: list[tuple[int, int]] = []
    inner_txn = etcd_kv.txn

    async def txn(compares, success, failure=()):
        sizes.append((len(compares), len(success)))
        return await inner_txn(compares, success, failure)

    await _net(crud, "ttinet", "10.201.0.0/16")
    names = [f"ttip{i:02d}" for i in range(2 * MAX_POLICIES)]
    for n in names:
        await crud.create_or_update("policy", f"default:{n}", {"policyName": n, "tenantName": "default"})
    old, new = names[:MAX_POLICIES], names[MAX_POLICIES:]
    await _group(crud, "ttig", "ttinet", old)
    _, rev = await etcd_kv.get_prefix("/contiv.io/")
    with pytest.raises(
        Exception, match=f"too many policy changes for a group in one update \\({2 * MAX_POLICIES}"
    ):
        await _group(crud, "ttig", "ttinet", new)
    assert (await etcd_kv.get_prefix("/contiv.io/"))[1] == rev  # nothing written
    etcd_kv.txn = txn
    try:
        half = MAX_POLICIES // 2
        await _group(crud, "ttig", "ttinet", old[half:] + new[:half])  # MAX_POLICIES changes
        await _group(crud, "ttig", "ttinet", new)
    finally:
        del etcd_kv.txn
    g = await crud.get("endpointGroup", "default:ttig")
    assert sorted(g["policies"]) == new
    assert sorted(k.rsplit(":", 1)[1] for k in await _keys(etcd_kv, keys.POLICY)) == new
    assert max(max(c, o) for c, o in sizes) <= 128, sizes


async def test_rule_entry_size_bound_holds_for_any_name_length():
    """check_pair_size's per-rule bound is never below a real RuleMaps entry (longest fields)."""
    from contivpy.model import codec

    class _NoKV:
        async def get(self, _k):
            return None

    for n in (1, 8, 20, 64):
        t, p, g, rid = "t" * n, "p" * n, "g" * n, "r" * n
        gp = policy_state.epg_policy_key(t, g, p)
        rng = "100.100.100.100-100.100.100.200"
        rule = {"key": f"{t}:{p}:{rid}", "tenantName": t, "policyName": p, "ruleId": rid, "direction": "in"}
        rule |= {"action": "allow", "protocol": "tcp", "port": 65535, "priority": 100}
        rule |= {"fromIpAddress": rng, "toIpAddress": rng}
        ofr = await policy_state.ofnet_rules(policy_state.Lookup(_NoKV()), gp, 65535, rule)
        entry = {
            "Rule": codec.canonical("rule", rule),
            "OfnetRules": {k: r.rule_dict() for k, r in ofr.items()},
        }
        real = len(json.dumps({rule["key"]: entry}, separators=(",", ":"))) + 1
        assert policy_state._rule_bytes(t, p, n, n) >= real, (n, real)


async def test_policy_too_large_for_its_groups_is_refused_clearly(etcd_kv, monkeypatch):
    crud, _ = await _crud(etcd_kv)
    await _net(crud, "tchnet", "10.200.0.0/16")
    per = policy_state._rule_bytes("default", "tchp", len("tchg1"), 1)
    monkeypatch.setattr(
        policy_state, "MAX_PAIR_BYTES", 3 * per
    )  # 3 rules fit (the real bound: etcd's 1.5 MiB)
    await crud.create_or_update("policy", "default:tchp", {"policyName": "tchp", "tenantName": "default"})
    await _group(crud, "tchg1", "tchnet", ["tchp"])
    rules = [_rule(4 * i) for i in range(4)]  # ruleIds 0, 4, 8, 12
    for r in rules[:3]:
        await crud.create_or_update("rule", f"default:tchp:{r['ruleId']}", r)
    before = await _keys(etcd_kv, "/contiv.io/")
    with pytest.raises(
        ResourceExhaustedError, match=r"too many rules in policy tchp for its endpoint groups \(4 rules"
    ):
        await crud.create_or_update("rule", "default:tchp:12", rules[3])
    after = await _keys(etcd_kv, "/contiv.io/")
    assert {k: v for k, v in after.items() if "/lock/" not in k and "/service/" not in k} == {
        k: v for k, v in before.items() if "/lock/" not in k and "/service/" not in k
    }
    # the other way round: a policy with 4 rules and no group, then a group attached
    await crud.create_or_update("policy", "default:tchq", {"policyName": "tchq", "tenantName": "default"})
    for r in rules:
        r = dict(r, policyName="tchq")
        await crud.create_or_update("rule", f"default:tchq:{r['ruleId']}", r)
    with pytest.raises(ResourceExhaustedError, match="too many rules in policy tchq"):
        await _group(crud, "tchg2", "tchnet", ["tchq"])
    assert await etcd_kv.get(keys.obj_key("endpointGroup", "default:tchg2")) is None
