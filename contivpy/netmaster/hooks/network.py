"""Network hooks: create (tags + IPAM state), update refusal, delete, inspect Oper.

Create (docs/original.md §2.3, messages verbatim): global config ready for the encap, tenant
exists, subnet (and v6 subnet) does not overlap another network of the same tenant (checked in
the per-tenant subnet index, netmaster/subnetidx.py, whose entries go into the same txn), no EPG with
the same key; then the state record ``/contiv.io/state/nets/<net>.<tenant>`` and the tag
resource record go into crud's txn (fenced on every record read).

Docker (docker cluster mode): the hooks never call Docker. The committed state record IS the
desired Docker network; the leader's reconciler (``netmaster/dockerrec.py``) creates it after the
commit, and removes it after a delete commits, retrying while Docker is down. So these hooks are
pure and may be re-run, and a commit is never rolled back because of Docker (decisions.md).
Swarm mode: a network mapped to a Docker network (docknet record) cannot be deleted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contivpy.common import netaddr
from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.common.kv.base import Delete, KVStore, Put
from contivpy.model import keys
from contivpy.model.oper import EndpointOper, NetworkOper
from contivpy.model.state import EndpointState, NetworkState
from contivpy.netmaster import ipam, subnetidx
from contivpy.netmaster.hooks import _alloc as A
from contivpy.netmaster.tags import VlanResource, VxlanResource
from contivpy.netmaster.txn import Plan

log = logging.getLogger("netmaster.hooks.network")


def prefetch(obj: dict) -> list[str]:
    """What a create reads (crud prefetches them in one request): global, tenant, a group of the
    same key, the state record and the tag resources of the encap."""
    tenant, name = obj.get("tenantName", ""), obj.get("networkName", "")
    out = [keys.obj_key("global", "global"), keys.obj_key("endpointGroup", obj["key"])]
    if tenant:
        out.append(keys.obj_key("tenant", tenant))
        if name:
            out.append(keys.net_state(keys.network_id(name, tenant)))
    if obj.get("encap") == "vlan":
        out += [keys.STATE_AUTO_VLAN, keys.OPER_AUTO_VLAN]
    else:
        out += [keys.STATE_AUTO_VXLAN, keys.OPER_AUTO_VXLAN]
    return out


def prefetch_delete(obj: dict) -> list[str]:
    """What a delete reads: the tenant, the global object, the state record, both tag pools."""
    tenant, name = obj.get("tenantName", ""), obj.get("networkName", "")
    out = [
        keys.obj_key("tenant", tenant),
        keys.obj_key("global", "global"),
        keys.net_state(keys.network_id(name, tenant)),
    ]
    return out + [keys.STATE_AUTO_VLAN, keys.OPER_AUTO_VLAN, keys.STATE_AUTO_VXLAN, keys.OPER_AUTO_VXLAN]


async def on_create(ctx: Any, obj: dict) -> Plan:
    encap = obj.get("encap", "")
    glob = await ctx.get_obj("global", "global")
    reason = A.global_not_ready(glob, encap)
    if reason:
        raise ValidationError(f"Global configuration is not ready: {reason}")
    tenant_name = A.require_tenant_name(obj)
    tenant = await ctx.get_obj("tenant", tenant_name)
    if tenant is None:
        raise NotFoundError("Tenant not found")
    name = obj["networkName"]
    subnet, v6 = obj.get("subnet", ""), obj.get("ipv6Subnet", "")
    sn = netaddr.parse_subnet(subnet)
    # Overlap with the tenant's other networks: one bounded read of the per-tenant subnet index
    # per address family (netmaster/subnetidx.py), whatever the number of networks. Not
    # compare-fenced, like list_objs: the CRUD lock and the leader fence serialise model writers.
    own = {fam: span for fam, *span in subnetidx.spans(obj)}
    for fam, msg in (("v6", f"conflicts with subnetv6  {v6}"), ("v4", f"conflicts with subnet {subnet}")):
        if fam in own:
            other = await subnetidx.find_overlap(ctx.kv, tenant_name, fam, *own[fam], obj["key"])
            if other:
                raise ConflictError(f"network {other} {msg}")
    clash = await ctx.get_obj("endpointGroup", obj["key"])
    if clash is not None:
        raise ConflictError(f"EndpointGroup {clash.get('groupName', '')} conflicts with the network name")

    net_id = keys.network_id(name, tenant_name)
    existing, _ = await A.read_net(ctx, net_id)
    plan = Plan(ops=subnetidx.put_ops(obj))
    if existing is not None and (existing.networkName, existing.tenant) != (name, tenant_name):
        # names with dots spell one state id twice ("a.b" in "c", "a" in "b.c"): never share it
        raise ConflictError(
            f"network {name} conflicts with network {existing.networkName} of tenant {existing.tenant}"
        )
    if existing is not None:  # state left from an interrupted create: keep it (as the original)
        return plan
    if obj.get("gateway"):
        netaddr.host_id(sn.subnet_ip, sn.length, obj["gateway"])
    state = ipam.new_network_state(
        network=name,
        tenant=tenant_name,
        nw_type=obj.get("nwType", "data") or "data",
        encap=encap,
        subnet=subnet,
        gateway=obj.get("gateway", ""),
        ipv6_subnet=v6,
        ipv6_gateway=obj.get("ipv6Gateway", ""),
        cfgd_tag=obj.get("cfgdTag", ""),
    )
    requested = int(obj.get("pktTag") or 0)
    res: VlanResource | VxlanResource
    if encap == "vlan":
        res = await A.load_vlans(ctx, glob)
        state.pktTag = res.allocate(requested)
    else:
        res = await A.load_vxlans(ctx, glob)
        state.extPktTag, state.pktTag = res.allocate(requested)
    plan.ops += await A.tag_ops(ctx, res)
    plan.ops.append(Put(keys.net_state(net_id), state.to_json()))
    return plan


async def on_update(ctx: Any, old: dict, new: dict) -> Plan:
    raise ConflictError("Cant change network parameters after its created")


async def on_delete(ctx: Any, obj: dict) -> Plan:
    tenant_name, name = obj.get("tenantName", ""), obj["networkName"]
    if await ctx.get_obj("tenant", tenant_name) is None:
        raise NotFoundError("Tenant not found")
    sets = obj.get("link-sets") or {}
    n_epg = len(sets.get("EndpointGroups") or {})
    if n_epg:
        raise ConflictError(f"cannot delete {name} has {n_epg} endpoint groups")
    n_svc = len(sets.get("Servicelbs") or {})
    if n_svc:
        raise ConflictError(f"cannot delete {name} has {n_svc} services ")
    did = keys.docknet_id(tenant_name, name, "")
    if A.cluster_mode(ctx) == "swarm-mode":
        dn = await ctx.read_json(keys.docknet_oper(did))
        if dn is not None:
            raise ConflictError(
                f"cannot delete network {name} mapped to docker network {dn.get('docknetUUID', '')}"
            )
    plan = Plan(ops=subnetidx.delete_ops(obj))
    net_id = keys.network_id(name, tenant_name)
    state, _ = await A.read_net(ctx, net_id)
    if state is None:
        return plan
    glob = await ctx.get_obj("global", "global")
    if state.nwType != "infra" and state.epCount > 0:
        raise ConflictError("Error: Network has active endpoints")
    if state.pktTagType == "vlan":
        vl = await A.load_vlans(ctx, glob)
        vl.release(state.pktTag)
        plan.ops += await A.tag_ops(ctx, vl)
    elif state.pktTagType == "vxlan":
        vx = await A.load_vxlans(ctx, glob)
        vx.release(state.extPktTag, state.pktTag)
        plan.ops += await A.tag_ops(ctx, vx)
    plan.ops.append(Delete(keys.net_state(net_id)))
    plan.ops.append(Delete(keys.addr_alloc_prefix(net_id), prefix=True))  # unclaimed allocations
    return plan


# --- inspect ---------------------------------------------------------------------------------------


def go_map_str(labels: dict | None) -> str:
    """Go's ``fmt.Sprintf("%s", map[string]string)``: ``map[a:1 b:2]`` (sorted keys)."""
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted((labels or {}).items())) + "]"


def endpoint_oper(ep: EndpointState, virtual_port: str = "", key: str = "") -> EndpointOper:
    """The EndpointOper of an endpoint state record (``model.oper``)."""
    return EndpointOper(
        key=key,
        containerID=ep.containerId,
        containerName=ep.epCommonName,
        endpointGroupId=ep.endpointGroupId,
        endpointGroupKey=ep.endpointGroupKey,
        endpointID=ep.endpointID,
        homingHost=ep.homingHost,
        intfName=ep.intfName,
        ipAddress=[ep.ipAddress, ep.ipv6Address],
        labels=go_map_str(ep.labels),
        macAddress=ep.macAddress,
        network=ep.netID,
        serviceName=ep.serviceName,
        virtualPort=virtual_port,
        vtepIP=ep.vtepIP,
    )


async def endpoints_where(kv: KVStore, pred) -> list[EndpointState]:
    items, _ = await kv.get_prefix(keys.EPS)
    return [ep for ep in (EndpointState.from_json(i.value) for i in items) if pred(ep)]


class OperView:
    """The state records behind many inspect "Oper" parts, read once (a tenant inspect lists the
    Oper of every network and group: per object reads made it O(objects x endpoints)).
    ``await OperView(kv).load()``; then ``get(key)`` for network/group state records and the
    endpoints of a network or group, parsed and grouped once."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self.records: dict[str, Any] = {}
        self.by_net: dict[str, list[EndpointState]] = {}
        self.by_group: dict[str, list[EndpointState]] = {}

    async def load(self) -> OperView:
        (nets, _), (epgs, _), (eps, _) = await asyncio.gather(
            self.kv.get_prefix(keys.NETS), self.kv.get_prefix(keys.EPGS), self.kv.get_prefix(keys.EPS)
        )
        self.records = {i.key: i for i in (*nets, *epgs)}
        for item in eps:
            ep = EndpointState.from_json(item.value)
            self.by_net.setdefault(ep.netID, []).append(ep)
            self.by_group.setdefault(ep.endpointGroupKey, []).append(ep)
        return self

    async def get(self, key: str) -> Any:
        return self.records.get(key)


async def oper_struct(ctx: Any, obj: dict, view: OperView | None = None) -> NetworkOper:
    net_id = keys.network_id(obj["networkName"], obj["tenantName"])
    if view is not None:
        kv, eps = await view.get(keys.net_state(net_id)), view.by_net.get(net_id, [])
    else:  # both reads at once: one etcd round trip of latency per inspect instead of two
        kv, eps = await asyncio.gather(
            ctx.kv.get(keys.net_state(net_id)), endpoints_where(ctx.kv, lambda ep: ep.netID == net_id)
        )
    if kv is None:
        return NetworkOper()
    st = NetworkState.from_json(kv.value)
    return NetworkOper(
        allocatedAddressesCount=st.epAddrCount,
        allocatedIPAddresses=ipam.list_allocated(st),
        availableIPAddresses=ipam.list_available(st),
        endpoints=[endpoint_oper(ep) for ep in eps],
        externalPktTag=st.extPktTag,
        networkTag=st.networkTag,
        numEndpoints=st.epCount,
        pktTag=st.pktTag,
    )


async def oper(ctx: Any, obj: dict, view: OperView | None = None) -> dict:
    return (await oper_struct(ctx, obj, view)).to_dict()


__all__ = [
    "OperView",
    "prefetch",
    "on_create",
    "on_update",
    "on_delete",
    "oper",
    "oper_struct",
    "endpoint_oper",
    "go_map_str",
]
