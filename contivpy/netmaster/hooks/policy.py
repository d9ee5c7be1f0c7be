"""Policy hooks: create needs the tenant; update is a no-op (the stored object is kept);
delete is refused while an EPG uses the policy ("Policy is being used") and deletes the
policy's rules in the same txn (with their MatchRules links). Oper counts the endpoints of the
groups the policy is attached to."""

from __future__ import annotations

import json

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.model import keys
from contivpy.netmaster.crud import TxnContext, link_set_remove


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError("Tenant not found")


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    new.clear()
    new.update(old)


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    sets = obj.get("link-sets") or {}
    if sets.get("EndpointGroups"):
        raise ConflictError("Policy is being used")
    for rkey in sorted(sets.get("Rules") or {}):
        rule = await ctx.get_obj("rule", rkey)
        if rule is None:
            continue
        epg_key = ((rule.get("links") or {}).get("MatchEndpointGroup") or {}).get("key")
        if epg_key:
            epg = await ctx.get_obj("endpointGroup", epg_key)
            if epg is not None:
                link_set_remove(epg, "MatchRules", rkey)
                ctx.put_obj("endpointGroup", epg)
        ctx.delete_obj("rule", rkey)


async def oper(ctx: TxnContext, obj: dict) -> dict:
    groups = set((obj.get("link-sets") or {}).get("EndpointGroups") or {})
    if not groups:
        return {}
    eps = []
    kvs, _ = await ctx.kv.get_prefix(keys.EPS)
    for item in kvs:
        ep = json.loads(item.value)
        gk = ep.get("endpointGroupKey", "")  # "<group>:<tenant>"
        if ":" in gk:
            g, t = gk.split(":", 1)
            if f"{t}:{g}" in groups:
                eps.append(ep)
    out: dict = {}
    if eps:
        out["numEndpoints"] = len(eps)
    return out
