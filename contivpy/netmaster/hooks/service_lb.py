"""ServiceLB hooks (docs/original.md §2.3, apiController ServiceLBCreate/Update/Delete).

Create: service name, >= 1 selector ``k=v``, ports ``svc:prov:proto`` (TCP/UDP; every port is
checked, the original stopped at the first valid one), tenant and network must exist. The VIP is
allocated from the service network's IPAM (``/contiv.io/state/nets/<net>.<tenant>``, preferred
``ipAddress`` honoured) in the same txn, and ``/contiv.io/state/serviceLB/<svc>:<tenant>`` is
written: ``{"id","servicename","tenantname","subnet"(network name),"ports","selectors"{},
"ipaddress","providers"{}}`` (+ ``"nodeports"`` when the
service has node ports: ``nodePorts`` ``"<nodePort>:<port>:<TCP|UDP>"``, a contivpy addition). Update = re-create keeping the VIP when the network and requested
address are unchanged. Delete releases the VIP and removes the serviceLB and provider states.

Providers (netmaster/providers.py): create and update match the tenant's persisted provider
candidates (endpoints started with labels, ``/contiv.io/state/svcProvider/<tenant>/``) against
the selectors and write ``providers`` and ``/contiv.io/state/provider/<svc>:<tenant>``
(``{"ServiceName","Providers":[sorted IPs]}``) in the same txn, fenced (read = compare) and
bumped on the tenant's generation record so a container start racing the create is never lost.
Later container start/die and endpoint deletes are applied by /plugin/updateEndpoint and
/plugin/deleteEndpoint. Oper lists the providers as EndpointOper entries.
"""

from __future__ import annotations

import json

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.common.kv.base import Delete, Put
from contivpy.model import keys
from contivpy.model.oper import ServiceLBOper
from contivpy.model.state import EndpointState, ProviderCandidate, ProviderGeneration, ServiceLBState
from contivpy.netmaster import providers as prov
from contivpy.netmaster.txn import Plan, TxnContext


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


NODEPORT_ERR = "Invalid NodePort mapping. NodePort format is - NodePort:Port:Protocol"


def _nodeports_ok(nodeports, ports: list[str]) -> bool:
    """``"<nodePort>:<port>:<TCP|UDP>"`` each (contivpy addition): the port/protocol is one of the
    service's ``ports``; a node port is used once per protocol."""
    if not isinstance(nodeports, list):
        return False
    svc = {(p.split(":")[0], p.split(":")[2].lower()) for p in ports}
    seen = set()
    for n in nodeports:
        parts = n.split(":") if isinstance(n, str) else []
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            return False
        node, proto = int(parts[0]), parts[2].lower()
        if not 0 < node < 65536 or (parts[1], proto) not in svc or (node, proto) in seen:
            return False
        seen.add((node, proto))
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
    if not _nodeports_ok(obj.get("nodePorts") or [], obj["ports"]):
        raise ValidationError(NODEPORT_ERR)
    if not obj.get("tenantName"):
        raise ValidationError("Invalid tenant name")
    if await ctx.get_obj("tenant", obj["tenantName"]) is None:
        raise NotFoundError(f"Tenant {obj['tenantName']} not found")
    if await ctx.get_obj("network", f"{obj['tenantName']}:{obj.get('networkName', '')}") is None:
        raise NotFoundError(f"Network {obj.get('networkName', '')} not found")
    for sel in obj["selectors"]:
        if sel.count("=") != 1:
            raise ValidationError(f"Invalid selector {sel}. selector format is key1=value1")


class _Nets:
    """The network state records one txn changes, each parsed once and put once: an update that
    releases a VIP and allocates another in the same network changes ONE record (etcd refuses a
    txn that puts a key twice, and two parsed copies would lose one of the changes)."""

    def __init__(self, ctx: TxnContext) -> None:
        self.ctx = ctx
        self.states: dict = {}
        self.changed: list[str] = []

    async def get(self, obj: dict):
        from contivpy.model.state import NetworkState

        skey = keys.net_state(keys.network_id(obj["networkName"], obj["tenantName"]))
        if skey not in self.states:
            item = await self.ctx.read(skey)
            if item is None:
                raise NotFoundError(f"Network {obj['networkName']} not found")
            self.states[skey] = NetworkState.from_json(item.value)
        return skey, self.states[skey]

    def mark(self, skey: str) -> None:
        if skey not in self.changed:
            self.changed.append(skey)

    def ops(self) -> list[Put]:
        return [Put(k, self.states[k].to_json()) for k in self.changed]


async def _allocate_vip(nets: _Nets, obj: dict) -> str:
    from contivpy.netmaster import ipam

    skey, net = await nets.get(obj)
    vip = ipam.allocate(net, None, obj.get("ipAddress", ""))
    nets.mark(skey)
    return vip


async def _release_vip(nets: _Nets, obj: dict, vip: str) -> None:
    from contivpy.netmaster import ipam

    try:
        skey, net = await nets.get(obj)
    except NotFoundError:
        return
    if vip and ipam.release(net, None, vip):
        nets.mark(skey)


async def _match(ctx: TxnContext, obj: dict, vip: str, plan: Plan) -> None:
    """serviceLB state with its providers + provider state + generation bump, into ``plan``."""
    tenant = obj["tenantName"]
    gitem = await ctx.read(keys.svc_provider_gen(tenant))  # fence: recorded compare
    gen = None if gitem is None else ProviderGeneration.parse(gitem.value)
    items, _ = await ctx.kv.get_prefix(keys.svc_provider_prefix(tenant))
    cands = [c for c in (ProviderCandidate.parse(i.value) for i in items) if c is not None]
    svc = ServiceLBState.from_json(_state(obj, vip).value)
    svc.providers = prov.match_all(svc, cands)
    plan.ops += [
        Put(keys.SERVICE_LB + svc.id, svc.to_json()),
        Put(keys.PROVIDER + svc.id, prov.provider_state(svc).to_json()),
        prov.gen_put(tenant, gen),
    ]


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
    if obj.get("nodePorts"):
        st["nodeports"] = list(obj["nodePorts"])
    return Put(keys.SERVICE_LB + _svc_id(obj), json.dumps(st, separators=(",", ":")))


async def on_create(ctx: TxnContext, obj: dict) -> Plan:
    await _checks(ctx, obj)
    plan = Plan()
    nets = _Nets(ctx)
    vip = await _allocate_vip(nets, obj)
    plan.ops += nets.ops()
    await _match(ctx, obj, vip, plan)
    return plan


async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan:
    await _checks(ctx, new)
    plan = Plan()
    cur = await ctx.read_json(keys.SERVICE_LB + _svc_id(old)) or {}
    vip = cur.get("ipaddress", "")
    same = old.get("networkName") == new.get("networkName") and new.get("ipAddress", vip) in ("", vip)
    if not (same and vip):
        nets = _Nets(ctx)
        await _release_vip(nets, old, vip)
        vip = await _allocate_vip(nets, new)
        plan.ops += nets.ops()
    await _match(ctx, new, vip, plan)  # selectors or network may have changed
    return plan


async def on_delete(ctx: TxnContext, obj: dict) -> Plan:
    if not obj.get("serviceName"):
        raise ValidationError("Invalid service name")
    plan = Plan()
    cur = await ctx.read_json(keys.SERVICE_LB + _svc_id(obj)) or {}
    nets = _Nets(ctx)
    await _release_vip(nets, obj, cur.get("ipaddress", ""))
    plan.ops += nets.ops()
    plan.ops += [Delete(keys.SERVICE_LB + _svc_id(obj)), Delete(keys.PROVIDER + _svc_id(obj))]
    return plan


async def oper(ctx: TxnContext, obj: dict) -> dict:
    cur = await ctx.read_json(keys.SERVICE_LB + _svc_id(obj))
    if cur is None:
        raise NotFoundError("invalid Service name. Oper state does not exist")
    from contivpy.netmaster.endpoints import read_oper_endpoint
    from contivpy.netmaster.hooks.network import endpoint_oper

    providers = []
    entries = sorted((cur.get("providers") or {}).values(), key=lambda p: prov.ip_key(p.get("IPAddress", "")))
    for entry in entries:
        item = await ctx.kv.get(keys.ep_state(entry.get("EpIDKey", ""))) if entry.get("EpIDKey") else None
        ep = None if item is None else EndpointState.parse(item.value)
        if ep is not None:
            oper_ep = await read_oper_endpoint(ctx.kv, ep.id)
            port = oper_ep.portName if oper_ep is not None else ""
            shown = endpoint_oper(ep, "v" + port if port else "")
            shown.serviceName = obj["serviceName"]  # the original shows the service's name here
            providers.append(shown)
    return ServiceLBOper(
        numProviders=len(providers), providers=providers, serviceVip=str(cur.get("ipaddress") or "")
    ).to_dict()
