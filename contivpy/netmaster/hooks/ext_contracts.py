"""External-contracts-group hooks (ACI): type must be provided|consumed; delete refused while a
group uses it. Groups link to it from the endpoint-group side (``link-sets.EndpointGroups``)."""

from __future__ import annotations

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.netmaster.txn import TxnContext


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if obj.get("contractsType") not in ("provided", "consumed"):
        raise ValidationError(f"Contract type {obj.get('contractsType', '')} not supported")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    if new.get("contractsType") not in ("provided", "consumed"):
        raise ValidationError(f"Contract type {new.get('contractsType', '')} not supported")


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    n = len((obj.get("link-sets") or {}).get("EndpointGroups") or {})
    if n:
        raise ConflictError(f"External contracts group is being used by {n} endpoint groups")
