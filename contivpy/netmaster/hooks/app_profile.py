"""App-profile hooks (meaningful with ACI only): the tenant and every listed group must exist;
the profile gets ``link-sets.EndpointGroups`` and each group ``links.AppProfile`` (kept in sync
on update); delete unlinks the groups.

Bounded txn: the group objects to re-link grow with the profile's groups, so the request's txn
holds the profile, its link-set and the intent key of the ``appProfile`` follow-up job
(``netmaster.followup``); the job then sets ``links.AppProfile`` on the listed groups and clears
it on the tenant's groups that point at the profile but are no longer listed (or whose profile
is gone), in bounded CAS batches. The existence check of the groups is one prefix read."""

from __future__ import annotations

import json

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.model import codec, keys
from contivpy.netmaster import followup
from contivpy.netmaster.txn import Plan, TxnContext, link_set_add, link_set_remove, set_link

KIND = "appProfile"


async def _check(ctx: TxnContext, prof: dict, names: list[str]) -> None:
    if not names:
        return
    existing = {o["key"] for o in await ctx.list_objs("endpointGroup")}
    for name in names:
        key = f"{prof['tenantName']}:{name}"
        if key not in existing:
            raise NotFoundError(f"EndpointGroup {key} not found")


def _schedule(ctx: TxnContext, prof: dict) -> Plan:
    plan = Plan()
    followup.schedule(ctx, plan, KIND, prof["key"])
    return plan


async def on_create(ctx: TxnContext, obj: dict) -> Plan:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    await _check(ctx, obj, obj.get("endpointGroups", []))
    for name in obj.get("endpointGroups", []):
        link_set_add(obj, "EndpointGroups", "endpointGroup", f"{obj['tenantName']}:{name}")
    return _schedule(ctx, obj)


async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan:
    names = new.get("endpointGroups", [])
    gone = [g for g in old.get("endpointGroups", []) if g not in names]
    await _check(ctx, new, names + gone)
    for name in names:
        link_set_add(new, "EndpointGroups", "endpointGroup", f"{new['tenantName']}:{name}")
    for name in gone:
        link_set_remove(new, "EndpointGroups", f"{new['tenantName']}:{name}")
    return _schedule(ctx, new)


async def on_delete(ctx: TxnContext, obj: dict) -> Plan:
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    await _check(ctx, obj, obj.get("endpointGroups", []))
    return _schedule(ctx, obj)


@followup.job(KIND)
async def _relink(crud, prof_key: str) -> None:
    tenant = prof_key.split(":", 1)[0]
    kv = await crud.kv.get(keys.obj_key("appProfile", prof_key))
    listed = {f"{tenant}:{g}" for g in (json.loads(kv.value).get("endpointGroups") or [])} if kv else set()

    def want(epg: dict) -> str | None:
        cur = ((epg.get("links") or {}).get("AppProfile") or {}).get("key", "")
        if epg["key"] in listed:
            return prof_key
        return "" if cur == prof_key else None  # None: leave other profiles' links alone

    items, _ = await crud.kv.get_prefix(keys.obj_key("endpointGroup", f"{tenant}:"))
    todo = []
    for item in items:
        epg = json.loads(item.value)
        w = want(epg)
        if w is not None and ((epg.get("links") or {}).get("AppProfile") or {}).get("key", "") != w:
            todo.append(item.key)

    def change(_k: str, value: str) -> str | None:
        epg = json.loads(value)
        w = want(epg)
        if w is None:
            return None
        set_link(epg, "AppProfile", "appProfile" if w else "", w)
        return codec.dumps("endpointGroup", epg)

    await followup.cas_update(crud, todo, change)


__all__ = ["on_create", "on_update", "on_delete", "KIND"]
