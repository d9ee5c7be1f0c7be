"""ServiceLB hooks (contiv-reference §2.3, apiController ServiceLBCreate/Update/Delete).

Create: service name, >= 1 selector ``k=v``, ports ``svc:prov:proto`` (TCP/UDP; every port is
checked, the original stopped at the first valid one), tenant and network must exist. The VIP is
allocated from the service network's IPAM (``/contiv.io/state/nets/<net>.<tenant>``, preferred
``ipAddress`` honoured) in the same txn, and ``/contiv.io/state/serviceLB/<svc>:<tenant>`` is
written: ``{"id","servicename","tenantname","subnet"(network name),"ports","selectors"{},
"ipaddress","providers"{}}``. Update = re-create keeping the VIP when the network and requested
address are unchanged. Delete releases the VIP and removes the serviceLB and provider states.
Provider matching (containers whose labels carry the selectors) is done by /plugin/updateEndpoint.
"""

from __future__ import annotations

import json

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.common.kv.base import Delete, Put
from contivpy.model import keys
from contivpy.netmaster.crud import Plan, TxnContext


def _ports_ok(ports: list[str]) -> bool:
    if not ports:
        return False
    for p in ports:
        parts = p.split(":")
        if len(parts) != 3 or not all(parts):
            return False
        if not (parts[0].isdigit() and parts[1].isdigit()):
            return False
        if parts[2].lower() not in ("tcp", "udp"):
            return False
    return True


def _svc_id(obj: dict) -> str:
    return f"{obj['serviceName']}:{obj['tenantName']}"


async def _checks(ctx: TxnContext, obj: dict) -> None:
    if not obj.get("serviceName"):
        raise ValidationError("Invalid service name")
    if not obj.get("selectors"):
        raise ValidationError("Invalid selector options")
    if not _ports_ok(obj.get("ports", [])):
        raise ValidationError("Invalid Port maping . Port format is - Port:TargetPort:Protocol")
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    if await ctx.get_obj("network", f"{obj['tenantName']}:{obj.get('networkName', '')}") is None:
        raise NotFoundError(f"Network {obj.get('networkName', '')} not found")
    for sel in obj["selectors"]:
        if sel.count("=") != 1:
            raise ValidationError(f"Invalid selector {sel}. selector format is key1=value1")


async def _net_state(ctx: TxnContext, obj: dict):
    from contivpy.model.state import NetworkState

    skey = keys.net_state(keys.network_id(obj["networkName"], obj["tenantName"]))
    item = await ctx.read(skey)
    if item is None:
        raise NotFoundError(f"Network {obj['networkName']} not found")
    return skey, NetworkState.from_json(item.value)


async def _allocate_vip(ctx: TxnContext, obj: dict, plan: Plan) -> str:
    from contivpy.netmaster import ipam

    skey, net = await _net_state(ctx, obj)
    vip = ipam.allocate(net, None, obj.get("ipAddress", ""))
    plan.ops.append(Put(skey, net.to_json()))
    return vip


async def _release_vip(ctx: TxnContext, obj: dict, vip: str, plan: Plan) -> None:
    from contivpy.netmaster import ipam

    try:
        skey, net = await _net_state(ctx, obj)
    except NotFoundError:
        return
    if vip and ipam.release(net, None, vip):
        plan.ops.append(Put(skey, net.to_json()))


def _state(obj: dict, vip: str, providers: dict | None = None) -> Put:
    st = {
        "id": _svc_id(obj),
        "servicename": obj["serviceName"],
        "tenantname": obj["tenantName"],
        "subnet": obj["networkName"],
        "ports": list(obj.get("ports", [])),
        "selectors": dict(s.split("=", 1) for s in obj["selectors"]),
        "ipaddress": vip,
        "providers": providers or {},
    }
    return Put(keys.SERVICE_LB + _svc_id(obj), json.dumps(st, separators=(",", ":")))


async def on_create(ctx: TxnContext, obj: dict) -> Plan:
    await _checks(ctx, obj)
    plan = Plan()
    vip = await _allocate_vip(ctx, obj, plan)
    plan.ops.append(_state(obj, vip))
    return plan


async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan:
    await _checks(ctx, new)
    plan = Plan()
    cur = await ctx.read_json(keys.SERVICE_LB + _svc_id(old)) or {}
    vip = cur.get("ipaddress", "")
    same = old.get("networkName") == new.get("networkName") and new.get("ipAddress", vip) in ("", vip)
    if not (same and vip):
        await _release_vip(ctx, old, vip, plan)
        vip = await _allocate_vip(ctx, new, plan)
    plan.ops.append(_state(new, vip, cur.get("providers")))
    return plan


async def on_delete(ctx: TxnContext, obj: dict) -> Plan:
    if not obj.get("serviceName"):
        raise ValidationError("Invalid service name")
    plan = Plan()
    cur = await ctx.read_json(keys.SERVICE_LB + _svc_id(obj)) or {}
    await _release_vip(ctx, obj, cur.get("ipaddress", ""), plan)
    plan.ops += [Delete(keys.SERVICE_LB + _svc_id(obj)), Delete(keys.PROVIDER + _svc_id(obj))]
    return plan


async def oper(ctx: TxnContext, obj: dict) -> dict:
    cur = await ctx.read_json(keys.SERVICE_LB + _svc_id(obj))
    if cur is None:
        raise NotFoundError("invalid Service name. Oper state does not exist")
    out: dict = {}
    if cur.get("ipaddress"):
        out["serviceVip"] = cur["ipaddress"]
    providers = []
    for prov in (cur.get("providers") or {}).values():
        ep = await ctx.read_json(keys.ep_state(prov.get("EpIDKey", ""))) if prov.get("EpIDKey") else None
        if ep is not None:
            providers.append(
                {
                    "network": ep.get("netID", ""),
                    "endpointID": ep.get("endpointID", ""),
                    "ipAddress": [ep.get("ipAddress", ""), ep.get("ipv6Address", "")],
                    "macAddress": ep.get("macAddress", ""),
                    "homingHost": ep.get("homingHost", ""),
                }
            )
    if providers:
        out["providers"] = providers
        out["numProviders"] = len(providers)
    return out
