"""Tenant hooks (contiv-reference §2.3): create validates, update is refused, delete is refused
while the tenant still owns app profiles, groups, policies, netprofiles or networks (checked in
the original's order, with its messages). Oper counts the link-sets and lists network/group oper
through the network owner's ``hooks.network.oper`` / ``hooks.group.oper`` when present."""

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


async def _sub_oper(ctx: TxnContext, module: str, obj_type: str, keys: list[str], view) -> list[dict]:
    """The Oper of each listed object: one prefix read of the objects, the state records and
    endpoints from ``view`` (read once for the whole inspect), whatever the number of objects."""
    from contivpy.netmaster import hooks  # the package imports its modules lazily

    mod = hooks.load(module)
    fn = getattr(mod, "oper", None)
    if fn is None or not keys:
        return []
    wanted = set(keys)
    objs = [o for o in await ctx.list_objs(obj_type) if o["key"] in wanted]  # sorted by key
    return [await fn(ctx, o, view) for o in objs]


def _brief(oper: dict, tag: str) -> dict:
    """The original's tenant inspect lists networks/groups with their endpoints, without their tags
    (as the original 1.2.1 printed it for the recorded state, docs/upgrade.md)."""
    return {k: v for k, v in oper.items() if k != tag}


async def oper(ctx: TxnContext, obj: dict) -> dict:
    sets = obj.get("link-sets") or {}
    out: dict = {}
    for name, field in [
        ("Networks", "totalNetworks"),
        ("EndpointGroups", "totalEPGs"),
        ("NetProfiles", "totalNetprofiles"),
        ("Policies", "totalPolicies"),
        ("AppProfiles", "totalAppProfiles"),
        ("Servicelbs", "totalServicelbs"),
    ]:
        if sets.get(name):
            out[field] = len(sets[name])
    from contivpy.netmaster.hooks.network import OperView

    view = await OperView(ctx.kv).load() if sets.get("Networks") or sets.get("EndpointGroups") else None
    nets = await _sub_oper(ctx, "network", "network", sorted(sets.get("Networks") or {}), view)
    epgs = await _sub_oper(ctx, "group", "endpointGroup", sorted(sets.get("EndpointGroups") or {}), view)
    n_eps = sum(len(n.get("endpoints") or []) for n in nets)
    if n_eps:
        out["totalEndpoints"] = n_eps
    if any(nets):
        out["networks"] = [_brief(n, "networkTag") for n in nets]
    if any(epgs):
        out["endpointGroups"] = [_brief(e, "groupTag") for e in epgs]
    return out
