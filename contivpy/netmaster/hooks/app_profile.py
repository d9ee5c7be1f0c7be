"""App-profile hooks (meaningful with ACI only): the tenant and every listed group must exist;
the profile gets ``link-sets.EndpointGroups`` and each group ``links.AppProfile`` (kept in sync
on update); delete unlinks the groups."""

from __future__ import annotations

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.netmaster.crud import TxnContext, link_set_add, link_set_remove, set_link


async def _link(ctx: TxnContext, prof: dict, names: list[str]) -> None:
    for name in names:
        key = f"{prof['tenantName']}:{name}"
        epg = await ctx.get_obj("endpointGroup", key)
        if epg is None:
            raise NotFoundError(f"EndpointGroup {key} not found")
        link_set_add(prof, "EndpointGroups", "endpointGroup", key)
        set_link(epg, "AppProfile", "appProfile", prof["key"])
        ctx.put_obj("endpointGroup", epg)


async def _unlink(ctx: TxnContext, prof: dict, names: list[str]) -> None:
    for name in names:
        key = f"{prof['tenantName']}:{name}"
        epg = await ctx.get_obj("endpointGroup", key)
        if epg is None:
            raise NotFoundError(f"EndpointGroup {key} not found")
        set_link(epg, "AppProfile", "appProfile", "")
        ctx.put_obj("endpointGroup", epg)
        link_set_remove(prof, "EndpointGroups", key)


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    await _link(ctx, obj, obj.get("endpointGroups", []))


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    await _link(ctx, new, new.get("endpointGroups", []))
    gone = [g for g in old.get("endpointGroups", []) if g not in new.get("endpointGroups", [])]
    await _unlink(ctx, new, gone)


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    await _unlink(ctx, obj, obj.get("endpointGroups", []))
