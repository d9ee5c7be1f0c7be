"""Tenant hooks (docs/original.md §2.3): create validates, update is refused, delete is refused
while the tenant still owns app profiles, groups, policies, netprofiles or networks (checked in
the original's order, with its messages). Oper (``model.oper.TenantOper``) counts the link-sets
and lists the networks' and groups' Oper (``hooks.network.oper_struct``, ``hooks.group.oper_struct``)."""

from __future__ import annotations

from contivpy.common.errors import ConflictError, ValidationError
from contivpy.netmaster.txn import TxnContext


async def on_create(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    raise ConflictError("Cant change tenant parameters after its created")


_CHECKS = [
    ("AppProfiles", "cannot delete {t}, has {n} app profiles"),
    ("EndpointGroups", "cannot delete {t} has {n} endpoint groups"),
    ("Policies", "cannot delete {t} has {n} policies"),
    ("NetProfiles", "Cannot delete {t} has {n} netprofiles"),
    ("Networks", "cannot delete {t} has {n} networks"),
]


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    sets = obj.get("link-sets") or {}
    for name, msg in _CHECKS:
        n = len(sets.get(name) or {})
        if n:
            raise ConflictError(msg.format(t=obj["tenantName"], n=n))


async def _sub_oper(ctx: TxnContext, module: str, obj_type: str, keys: list[str], view) -> list:
    """The Oper (``oper_struct``) of each listed object: one prefix read of the objects, the state
    records and endpoints from ``view`` (read once for the whole inspect), whatever the number of
    objects."""
    from contivpy.netmaster import hooks  # the package imports its modules lazily

    mod = hooks.load(module)
    fn = getattr(mod, "oper_struct", None)
    if fn is None or not keys:
        return []
    wanted = set(keys)
    objs = [o for o in await ctx.list_objs(obj_type) if o["key"] in wanted]  # sorted by key
    return [await fn(ctx, o, view) for o in objs]


async def oper(ctx: TxnContext, obj: dict) -> dict:
    """The original's tenant inspect lists networks and groups with their endpoints but without
    their tags (as the original 1.2.1 printed it for the recorded state, docs/upgrade.md)."""
    sets = obj.get("link-sets") or {}
    from contivpy.netmaster.hooks.network import OperView

    view = await OperView(ctx.kv).load() if sets.get("Networks") or sets.get("EndpointGroups") else None
    nets = await _sub_oper(ctx, "network", "network", sorted(sets.get("Networks") or {}), view)
    epgs = await _sub_oper(ctx, "group", "endpointGroup", sorted(sets.get("EndpointGroups") or {}), view)
    # listed when one of them has state (then all, an empty one as {})
    show_nets, show_epgs = any(not n.empty() for n in nets), any(not e.empty() for e in epgs)
    for n in nets:
        n.networkTag = ""
    for e in epgs:
        e.groupTag = ""
    from contivpy.model.oper import TenantOper  # lazy: this module is imported at leader start

    return TenantOper(
        endpointGroups=epgs if show_epgs else [],
        networks=nets if show_nets else [],
        totalAppProfiles=len(sets.get("AppProfiles") or {}),
        totalEPGs=len(sets.get("EndpointGroups") or {}),
        totalEndpoints=sum(len(n.endpoints) for n in nets),
        totalNetprofiles=len(sets.get("NetProfiles") or {}),
        totalNetworks=len(sets.get("Networks") or {}),
        totalPolicies=len(sets.get("Policies") or {}),
        totalServicelbs=len(sets.get("Servicelbs") or {}),
    ).to_dict()
