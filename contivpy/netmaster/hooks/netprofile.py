"""Netprofile hooks: create needs the tenant and a burst of 0 or >= 2; update copies
bandwidth/DSCP/burst into the stored profile and pushes them into the state of every linked
EPG (``/contiv.io/state/endpointGroups/<group>:<tenant>`` fields Bandwidth/DSCP/Burst, watched by
netplugin); delete is refused while an EPG uses the profile ("NetProfile is being used").

Bounded txn: the EPG states to update grow with the groups using the profile, so the update's
txn holds only the profile and the intent key of the ``netprofile`` follow-up job
(``netmaster.followup``), which then copies the committed profile into every linked EPG state in
batches, each a CAS on the states it read (/plugin/* allocations update them concurrently).
The existence check of the linked groups is one prefix read."""

from __future__ import annotations

import json

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState
from contivpy.netmaster import followup
from contivpy.netmaster.txn import Plan, TxnContext, read_members

KIND = "netprofile"


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if obj.get("burst", 0) == 1:
        raise ValidationError("Invalid Burst size. burst size > 1500 bytes")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError("Tenant not found")


async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan:
    if new.get("burst", 0) == 1:
        raise ValidationError("Invalid Burst size. burst size must be > 1500 bytes")
    groups = sorted((old.get("link-sets") or {}).get("EndpointGroups") or {})
    existing = {o["key"] for o in await ctx.list_objs("endpointGroup")} if groups else set()
    if any(g not in existing for g in groups):
        raise NotFoundError("EndpointGroups not found")
    plan = Plan()
    if groups:
        followup.schedule(ctx, plan, KIND, new["key"])
    return plan


def _apply(profile: dict | None, value: str) -> str:
    st = EndpointGroupState.from_json(value)
    st.bandwidth = (profile or {}).get("bandwidth", "")
    st.dscp = (profile or {}).get("DSCP", 0)
    st.burst = (profile or {}).get("burst", 0)
    return st.to_json()


@followup.job(KIND)
async def _push_job(crud, profile_key: str) -> None:
    kv = await crud.kv.get(keys.obj_key("netprofile", profile_key))
    if kv is None:
        return
    profile = json.loads(kv.value)
    state_keys = []
    for epg_key in await read_members(crud.kv, "netprofile", profile_key, "EndpointGroups", profile):
        tenant, group = epg_key.split(":", 1)
        state_keys.append(keys.epg_state(keys.epg_id(group, tenant)))
    await followup.cas_update(crud, state_keys, lambda _k, v: _apply(profile, v))


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    if (obj.get("link-sets") or {}).get("EndpointGroups"):
        raise ConflictError("NetProfile is being used")
