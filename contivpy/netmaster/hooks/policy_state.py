"""EPG-policy state: contiv rules expanded to ofnet rules (contiv-reference §6.5), as txn ops.

Keys (written only here):
- ``/contiv.io/state/policy/<tenant>:<group>:<tenant>:<policy>`` = EpgPolicy
  ``{"id","EpgPolicyKey","EndpointGroupID","RuleMaps":{<ruleKey>:{"Rule":<rule>,"OfnetRules":{id: r}}}}``
- ``/contiv.io/state/policyRule/<ofnetRuleId>`` = ``{"id":"", <OfnetPolicyRule fields>}``

The EPG-policy state of a (group, policy) pair is a pure function of the group's EPG id, the
policy's rules and the referenced groups' ids / networks' subnets, so every change is
"recompute and replace": ``epg_policy_plan`` rebuilds the pair's records and deletes the ofnet
rules that are gone. Public entry points (used by hooks.rule / hooks.policy, and by the
endpoint-group owner):

    await attach_plan(ctx, tenant, group, epg_id, policy_name) -> Plan   # EPG gets the policy
    await detach_plan(ctx, tenant, group, policy_name) -> Plan           # EPG drops it
    await policy_rules_plan(ctx, policy_obj, extra_rule=None, removed_rule_key="") -> Plan
        # every EPG linked to the policy, after a rule was added/removed in this txn
"""

from __future__ import annotations

import json

from contivpy.common.kv.base import Delete, Put
from contivpy.model import keys, objects
from contivpy.netmaster.crud import Plan, TxnContext

_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "igmp": 2, "": 0}


def epg_policy_key(tenant: str, group: str, policy: str) -> str:
    return f"{tenant}:{group}:{tenant}:{policy}"


def _dirs(rule: dict) -> list[str]:
    ported = rule.get("protocol") in ("tcp", "udp") and rule.get("port", 0) != 0
    if rule.get("direction") == "in":
        return ["inRx", "inTx"] if ported else ["inRx"]
    if rule.get("direction") == "out":
        return ["outRx", "outTx"] if ported else ["outTx"]
    return []


def _proto(p: str) -> int:
    if p in _PROTO:
        return _PROTO[p]
    try:
        n = int(p)
    except ValueError:
        return 0
    return n if 0 <= n < 256 else 0


async def _remote(ctx: TxnContext, rule: dict) -> tuple[int, str, str]:
    """(remote EPG id, from-ip, to-ip) with networks replaced by their subnets."""
    tenant = rule.get("tenantName", "")
    frm, to = rule.get("fromIpAddress", ""), rule.get("toIpAddress", "")
    group = rule.get("fromEndpointGroup") or rule.get("toEndpointGroup")
    if group:
        st = await ctx.read_json(keys.epg_state(keys.epg_id(group, tenant)))
        return (int(st.get("endpointGroupId", 0)) if st else 0), frm, to
    if rule.get("fromNetwork"):
        net = await ctx.get_obj("network", f"{tenant}:{rule['fromNetwork']}")
        frm = net.get("subnet", "") if net else frm
    elif rule.get("toNetwork"):
        net = await ctx.get_obj("network", f"{tenant}:{rule['toNetwork']}")
        to = net.get("subnet", "") if net else to
    return 0, frm, to


async def ofnet_rules(ctx: TxnContext, gp_key: str, epg_id: int, rule: dict) -> dict[str, dict]:
    remote, frm, to = await _remote(ctx, rule)
    port = int(rule.get("port", 0))
    tcp0 = rule.get("protocol") == "tcp" and port == 0
    out: dict[str, dict] = {}
    for d in _dirs(rule):
        r = {
            "RuleId": f"{gp_key}:{rule['key']}:{d}",
            "Priority": int(rule.get("priority", 1)),
            "SrcEndpointGroup": 0,
            "DstEndpointGroup": 0,
            "SrcIpAddr": "",
            "DstIpAddr": "",
            "IpProtocol": _proto(rule.get("protocol", "")),
            "SrcPort": 0,
            "DstPort": 0,
            "TcpFlags": "",
            "Action": rule.get("action", ""),
        }
        if d in ("inRx", "outRx"):
            r["DstEndpointGroup"], r["SrcEndpointGroup"] = epg_id, remote
        else:
            r["SrcEndpointGroup"], r["DstEndpointGroup"] = epg_id, remote
        if d == "inRx":
            r["SrcIpAddr"], r["DstIpAddr"], r["DstPort"] = frm, to, port
            r["TcpFlags"] = "syn,!ack" if tcp0 else ""
        elif d == "inTx":
            r["DstIpAddr"], r["SrcIpAddr"], r["SrcPort"] = frm, to, port
        elif d == "outRx":
            r["SrcIpAddr"], r["SrcPort"] = to, port
        else:
            r["DstIpAddr"], r["DstPort"] = to, port
            r["TcpFlags"] = "syn,!ack" if tcp0 else ""
        out[r["RuleId"]] = r
    return out


async def epg_policy_plan(
    ctx: TxnContext, tenant: str, group: str, epg_id: int | None, policy: str, rules: list[dict] | None
) -> Plan:
    """Replace the (group, policy) records; ``rules=None`` removes them. ``epg_id=None`` reads it
    from the EPG state."""
    plan = Plan()
    gp_key = epg_policy_key(tenant, group, policy)
    state_key = keys.POLICY + gp_key
    old = await ctx.read_json(state_key) or {}
    old_ids = {rid for rm in (old.get("RuleMaps") or {}).values() for rid in (rm.get("OfnetRules") or {})}
    if rules is None:
        plan.ops += [ctx_delete(state_key)] if old else []
        plan.ops += [ctx_delete(keys.POLICY_RULE + rid) for rid in sorted(old_ids)]
        return plan
    if epg_id is None:
        st = await ctx.read_json(keys.epg_state(keys.epg_id(group, tenant))) or {}
        epg_id = int(st.get("endpointGroupId", 0))
    rule_maps: dict[str, dict] = {}
    new_ids: set[str] = set()
    for rule in sorted(rules, key=lambda r: r["key"]):
        ofr = await ofnet_rules(ctx, gp_key, epg_id, rule)
        rule_maps[rule["key"]] = {"Rule": objects.canonical("rule", rule), "OfnetRules": ofr}
        for rid, r in ofr.items():
            new_ids.add(rid)
            plan.ops.append(ctx_put(keys.POLICY_RULE + rid, {"id": "", **r}))
    state = {"id": gp_key, "EpgPolicyKey": gp_key, "EndpointGroupID": epg_id, "RuleMaps": rule_maps}
    plan.ops.append(ctx_put(state_key, state))
    plan.ops += [ctx_delete(keys.POLICY_RULE + rid) for rid in sorted(old_ids - new_ids)]
    return plan


async def _policy_rules(ctx: TxnContext, policy: dict) -> list[dict]:
    out = []
    for rkey in sorted((policy.get("link-sets") or {}).get("Rules") or {}):
        r = await ctx.get_obj("rule", rkey)
        if r is not None:
            out.append(r)
    return out


async def attach_plan(ctx: TxnContext, tenant: str, group: str, epg_id: int, policy_name: str) -> Plan:
    policy = await ctx.get_obj("policy", f"{tenant}:{policy_name}")
    rules = await _policy_rules(ctx, policy) if policy else []
    return await epg_policy_plan(ctx, tenant, group, epg_id, policy_name, rules)


async def detach_plan(ctx: TxnContext, tenant: str, group: str, policy_name: str) -> Plan:
    return await epg_policy_plan(ctx, tenant, group, None, policy_name, None)


async def policy_rules_plan(
    ctx: TxnContext, policy: dict, extra_rule: dict | None = None, removed_rule_key: str = ""
) -> Plan:
    plan = Plan()
    rules = [r for r in await _policy_rules(ctx, policy) if r["key"] != removed_rule_key]
    if extra_rule is not None:
        rules = [r for r in rules if r["key"] != extra_rule["key"]] + [extra_rule]
    for epg_key in sorted((policy.get("link-sets") or {}).get("EndpointGroups") or {}):
        tenant, group = epg_key.split(":", 1)
        plan.extend(await epg_policy_plan(ctx, tenant, group, None, policy["policyName"], rules))
    return plan


def ctx_put(key: str, value: dict) -> Put:
    return Put(key, json.dumps(value, separators=(",", ":")))


def ctx_delete(key: str) -> Delete:
    return Delete(key)


__all__ = [
    "epg_policy_key",
    "ofnet_rules",
    "epg_policy_plan",
    "attach_plan",
    "detach_plan",
    "policy_rules_plan",
]
