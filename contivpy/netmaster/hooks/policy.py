"""Policy hooks: create needs the tenant; update is a no-op (the stored object is kept);
delete is refused while an EPG uses the policy ("Policy is being used") and deletes the
policy's rules. Oper lists the endpoints of the groups the policy is attached to.

Bounded txn: the delete removes every rule object of the policy with ONE prefix delete
(``/contiv.io/obj/modeldb/rule/<tenant>:<policy>:``; names cannot hold ':'), whatever their
number. The ``MatchRules`` links those rules left on groups (one group object per referenced
group: unbounded) are removed by the ``unmatch`` follow-up job (``netmaster.followup``) whose
intent key rides in the same txn; the job drops from every group of the tenant the MatchRules
entries of this policy whose rule object no longer exists (idempotent)."""

from __future__ import annotations

import json

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.common.kv.base import Delete
from contivpy.model import codec, keys
from contivpy.model.oper import PolicyOper
from contivpy.model.state import EndpointState
from contivpy.netmaster import followup
from contivpy.netmaster.hooks.network import endpoint_oper, endpoints_where
from contivpy.netmaster.txn import Plan, TxnContext, link_set_remove

UNMATCH = "unmatch"


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError("Tenant not found")


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    new.clear()
    new.update(old)


async def on_delete(ctx: TxnContext, obj: dict) -> Plan | None:
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    sets = obj.get("link-sets") or {}
    if sets.get("EndpointGroups"):
        raise ConflictError("Policy is being used")
    if not sets.get("Rules"):
        return None
    plan = Plan()
    plan.ops.append(Delete(keys.obj_key("rule", f"{obj['key']}:"), prefix=True))
    followup.schedule(ctx, plan, UNMATCH, obj["key"])
    return plan


@followup.job(UNMATCH)
async def _unmatch(crud, policy_key: str) -> None:
    """Drop MatchRules entries of ``policy_key``'s rules that no longer exist from the tenant's groups."""
    tenant = policy_key.split(":", 1)[0]
    rule_prefix = f"{policy_key}:"
    live = {i.key for i in (await crud.kv.get_prefix(keys.obj_key("rule", rule_prefix)))[0]}
    items, _ = await crud.kv.get_prefix(keys.obj_key("endpointGroup", f"{tenant}:"))
    stale = []
    for item in items:
        matches = ((json.loads(item.value).get("link-sets") or {}).get("MatchRules")) or {}
        if any(k.startswith(rule_prefix) and keys.obj_key("rule", k) not in live for k in matches):
            stale.append(item.key)

    def change(_key: str, value: str) -> str | None:
        epg = json.loads(value)
        for k in list(((epg.get("link-sets") or {}).get("MatchRules")) or {}):
            if k.startswith(rule_prefix) and keys.obj_key("rule", k) not in live:
                link_set_remove(epg, "MatchRules", k)
        return codec.dumps("endpointGroup", epg)

    await followup.cas_update(crud, stale, change)


async def oper(ctx: TxnContext, obj: dict) -> dict:
    groups = set((obj.get("link-sets") or {}).get("EndpointGroups") or {})
    if not groups:
        return {}

    def linked(ep: EndpointState) -> bool:
        g, sep, t = ep.endpointGroupKey.partition(":")  # "<group>:<tenant>"
        return bool(sep) and f"{t}:{g}" in groups

    eps = await endpoints_where(ctx.kv, linked)
    return PolicyOper(endpoints=[endpoint_oper(ep) for ep in eps], numEndpoints=len(eps)).to_dict()


__all__ = ["on_create", "on_update", "on_delete", "oper", "UNMATCH"]
