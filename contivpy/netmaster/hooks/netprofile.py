"""Netprofile hooks: create needs the tenant and a burst of 0 or >= 2; update copies
bandwidth/DSCP/burst into the stored profile and pushes them into the state of every linked
EPG (``/contiv.io/state/endpointGroups/<group>:<tenant>`` fields Bandwidth/DSCP/Burst, watched by
netplugin); delete is refused while an EPG uses the profile ("NetProfile is being used")."""

from __future__ import annotations

import json

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.common.kv.base import Put
from contivpy.model import keys
from contivpy.netmaster.crud import Plan, TxnContext


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if obj.get("burst", 0) == 1:
        raise ValidationError("Invalid Burst size. burst size > 1500 bytes")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError("Tenant not found")


async def push_to_epgs(ctx: TxnContext, profile: dict | None, epg_keys: list[str]) -> Plan:
    """EPG states get the profile's bandwidth/DSCP/burst (profile None = clear them)."""
    plan = Plan()
    for epg_key in epg_keys:
        tenant, group = epg_key.split(":", 1)
        skey = keys.epg_state(keys.epg_id(group, tenant))
        st = await ctx.read_json(skey)
        if st is None:
            continue
        st["Bandwidth"] = (profile or {}).get("bandwidth", "")
        st["DSCP"] = (profile or {}).get("DSCP", 0)
        st["Burst"] = (profile or {}).get("burst", 0)
        plan.ops.append(Put(skey, json.dumps(st, separators=(",", ":"))))
    return plan


async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan:
    if new.get("burst", 0) == 1:
        raise ValidationError("Invalid Burst size. burst size must be > 1500 bytes")
    groups = sorted((old.get("link-sets") or {}).get("EndpointGroups") or {})
    for g in groups:
        if await ctx.get_obj("endpointGroup", g) is None:
            raise NotFoundError("EndpointGroups not found")
    return await push_to_epgs(ctx, new, groups)


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    if (obj.get("link-sets") or {}).get("EndpointGroups"):
        raise ConflictError("NetProfile is being used")
