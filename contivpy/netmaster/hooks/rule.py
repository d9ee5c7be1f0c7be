"""Rule hooks (docs/original.md §2.3, apiController RuleCreate/RuleDelete).

Create: direction checks with the original's messages, referenced EPG / network must exist,
the policy must exist ("Policy not found"), an incoming rule with ``toIpAddress`` needs the
policy attached to exactly one EPG that owns that IP, and so does an outgoing rule with
``fromIpAddress`` (a contivpy addition: an out rule scoped to one member, docs/decisions.md); then the rule links to its matching EPG
(``links.MatchEndpointGroup`` + EPG ``link-sets.MatchRules``) and every EPG that has the policy
gets the rule in its EPG-policy state (policy_state). The rule <-> policy link-sets are kept by
crud (registry relation). Update is refused. Delete removes the links and the ofnet rules.

Bounded txn: the request's txn holds the rule, the policy (link-set), the matching EPG (link-set)
and the intent key of the policy's EPG-policy state, whatever the number of rules or groups; the
ofnet rules are written by the ``policy_state`` follow-up job after the commit.
"""

from __future__ import annotations

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.netmaster.hooks import policy_state
from contivpy.netmaster.hooks.network import endpoints_where
from contivpy.netmaster.txn import Plan, TxnContext, link_set_add, link_set_remove, set_link


def _direction_checks(r: dict) -> None:
    g = r.get
    if g("direction") == "in":
        if g("toNetwork") or g("toEndpointGroup"):
            raise ValidationError("can not specify 'to' parameters in incoming rule")
        if g("fromNetwork") and g("fromIpAddress"):
            raise ValidationError("can not specify both from network and from ip address")
        if g("fromNetwork") and g("fromEndpointGroup"):
            raise ValidationError("can not specify both from network and from EndpointGroup")
    elif g("direction") == "out":
        if g("fromNetwork") or g("fromEndpointGroup"):  # fromIpAddress: a member (contivpy, below)
            raise ValidationError("can not specify 'from' parameters in outgoing rule")
        if g("toNetwork") and g("toIpAddress"):
            raise ValidationError("can not specify both to-network and to-ip address")
        if g("toNetwork") and g("toEndpointGroup"):
            raise ValidationError("can not specify both to-network and to-EndpointGroup")
    else:
        raise ValidationError("invalid direction for the rule")


async def on_create(ctx: TxnContext, obj: dict) -> Plan:
    _direction_checks(obj)
    tenant = obj["tenantName"]
    epg = None
    group = obj.get("fromEndpointGroup") or obj.get("toEndpointGroup")
    if group:
        epg = await ctx.get_obj("endpointGroup", f"{tenant}:{group}")
        if epg is None:
            raise NotFoundError("endpoint group not found")
    elif obj.get("fromNetwork"):
        if await ctx.get_obj("network", f"{tenant}:{obj['fromNetwork']}") is None:
            raise NotFoundError("from Network not found")
    elif obj.get("toNetwork"):
        if await ctx.get_obj("network", f"{tenant}:{obj['toNetwork']}") is None:
            raise NotFoundError("to Network not found")
    policy = await ctx.get_obj("policy", f"{tenant}:{obj['policyName']}")
    if policy is None:
        raise NotFoundError("Policy not found")
    groups = await ctx.members("policy", policy["key"], "EndpointGroups")
    if groups:  # this rule goes into every (group, policy) record: bounded (policy_state)
        rules = await ctx.members("policy", policy["key"], "Rules")
        policy_state.check_pair_size(tenant, obj["policyName"], rules, groups)
    member = obj.get("toIpAddress") if obj["direction"] == "in" else obj.get("fromIpAddress")
    if member:
        ip = member
        if len(groups) != 1:
            raise ValidationError(
                f"failed to configure {ip}, {len(groups)} endpoint groups linked to policy {obj['policyName']} "
            )
        g = next(iter(groups)).replace(f"{tenant}:", "", 1) + ":" + tenant
        if not await endpoints_where(ctx.kv, lambda ep: ep.ipAddress == ip and ep.endpointGroupKey == g):
            raise ValidationError(f"failed to configure {ip}, ip address is not in epg {g}")
    if epg is not None:
        link_set_add(epg, "MatchRules", "rule", obj["key"])
        ctx.put_obj("endpointGroup", epg)
        set_link(obj, "MatchEndpointGroup", "endpointGroup", epg["key"])
    return _sync(ctx, policy, obj, groups)


def _sync(ctx: TxnContext, policy: dict, rule: dict, groups: list[str]) -> Plan:
    """This rule's ofnet rules in the policy's (group, policy) pairs, after the commit."""
    plan = Plan()
    if groups:
        policy_state.schedule_rule(ctx, plan, policy["tenantName"], policy["policyName"], rule["ruleId"])
    return plan


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    raise ConflictError("can not update a rule after its created")


async def on_delete(ctx: TxnContext, obj: dict) -> Plan:
    policy = await ctx.get_obj("policy", f"{obj['tenantName']}:{obj['policyName']}")
    if policy is None:
        raise NotFoundError("Policy not found")
    epg_key = ((obj.get("links") or {}).get("MatchEndpointGroup") or {}).get("key")
    if epg_key:
        epg = await ctx.get_obj("endpointGroup", epg_key)
        if epg is not None:
            link_set_remove(epg, "MatchRules", obj["key"])
            ctx.put_obj("endpointGroup", epg)
    return _sync(ctx, policy, obj, await ctx.members("policy", policy["key"], "EndpointGroups"))
