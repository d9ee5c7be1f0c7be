"""Network hooks: create (tags + IPAM state + Docker network), update refusal, delete, inspect Oper.

Create (contiv-reference §2.3, messages verbatim): global config ready for the encap, tenant
exists, subnet (and v6 subnet) does not overlap another network of the same tenant, no EPG with
the same key; then the state record ``/contiv.io/state/nets/<net>.<tenant>`` and the tag
resource record go into crud's txn (fenced on every record read). Infra networks, ACI mode and
non-docker cluster modes stop there.

Docker (docker cluster mode): the Docker network is created after the commit. FIX of the
original (which left the contiv network behind when Docker failed): if the Docker create fails,
the etcd write is rolled back by a compensating txn (tags released, state, model object and the
tenant link removed) and the Docker error is returned. Leader start runs
``dockernet.reconcile_docker_networks`` for the crash window between commit and Docker call.
Delete removes the Docker network *before* the commit (Docker refuses while it has endpoints:
nothing is changed then), as the original did.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from contivpy.common import netaddr
from contivpy.common.errors import ConflictError, ContivError, NotFoundError, ValidationError
from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.model import codec, keys
from contivpy.model.state import EndpointState, NetworkState
from contivpy.netmaster import dockernet, ipam
from contivpy.netmaster.crud import Plan, link_set_remove
from contivpy.netmaster.hooks import _alloc as A
from contivpy.netmaster.tags import VlanResource, VxlanResource

log = logging.getLogger("netmaster.hooks.network")


def docker_client(ctx: Any) -> dockernet.DockerClient:
    if ctx.docker is None:
        ctx.docker = dockernet.client_from_config(ctx.config)
    return ctx.docker


def docker_enabled(ctx: Any, glob: dict | None) -> bool:
    return A.cluster_mode(ctx) == "docker" and not A.aci_mode(glob)


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
    # One prefix read (not fenced per network, like list_objs): N point reads would be O(N)
    # round trips and N txn compares (etcd refuses > 128 ops: the 126th network failed).
    linked = (tenant.get("link-sets") or {}).get("Networks") or {}
    by_key = {o["key"]: o for o in await ctx.list_objs("network") if o["key"] in linked}
    for key in sorted(linked):
        if key == obj["key"]:
            continue
        other = by_key.get(key)
        if other is None:
            raise NotFoundError(f"network key {key} not found")
        if v6 and other.get("ipv6Subnet") and netaddr.subnets_overlap_v6(v6, other["ipv6Subnet"]):
            raise ConflictError(f"network {other['networkName']} conflicts with subnetv6  {v6}")
        if other.get("subnet") and netaddr.subnets_overlap(subnet, other["subnet"]):
            raise ConflictError(f"network {other['networkName']} conflicts with subnet {subnet}")
    clash = await ctx.get_obj("endpointGroup", obj["key"])
    if clash is not None:
        raise ConflictError(f"EndpointGroup {clash.get('groupName', '')} conflicts with the network name")

    net_id = keys.network_id(name, tenant_name)
    existing, _ = await A.read_net(ctx, net_id)
    plan = Plan()
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
    if state.nwType != "infra" and docker_enabled(ctx, glob):
        plan.after_commit.append(_docker_create(ctx, obj, state))
    return plan


def _docker_create(ctx: Any, obj: dict, state: NetworkState):
    async def run() -> None:
        try:
            await dockernet.create_docknet(
                docker_client(ctx), ctx.kv, dockernet.plugin_name(ctx.config), state
            )
        except ContivError:
            await rollback_create(ctx.kv, obj)
            raise

    return run


async def rollback_create(kv: KVStore, obj: dict) -> bool:
    """Undo a committed network create (compensating CAS txn). False if the network is in use."""
    tenant_name, name = obj["tenantName"], obj["networkName"]
    net_key = keys.net_state(keys.network_id(name, tenant_name))
    for _ in range(10):
        net_kv = await kv.get(net_key)
        if net_kv is None:
            return True
        state = NetworkState.from_json(net_kv.value)
        if state.epCount or state.epAddrCount:
            log.error("not rolling back network %s: addresses already in use", state.id)
            return False
        compares = [Compare(net_key, "mod", "==", net_kv.mod_revision)]
        ops: list[Put | Delete] = [Delete(net_key), Delete(keys.obj_key("network", obj["key"]))]
        tag_state = keys.STATE_AUTO_VLAN if state.pktTagType == "vlan" else keys.STATE_AUTO_VXLAN
        tag_oper = keys.OPER_AUTO_VLAN if state.pktTagType == "vlan" else keys.OPER_AUTO_VXLAN
        st_kv, op_kv = await kv.get(tag_state), await kv.get(tag_oper)
        if st_kv is not None and op_kv is not None:
            compares.append(Compare(tag_oper, "mod", "==", op_kv.mod_revision))
            if state.pktTagType == "vlan":
                vl = VlanResource.load(st_kv.value, op_kv.value)
                vl.release(state.pktTag)
                ops.append(Put(tag_oper, vl.oper_json()))
            else:
                vx = VxlanResource.load(st_kv.value, op_kv.value)
                vx.release(state.extPktTag, state.pktTag)
                ops.append(Put(tag_oper, vx.oper_json()))
        t_key = keys.obj_key("tenant", tenant_name)
        t_kv = await kv.get(t_key)
        if t_kv is not None:
            tenant = json.loads(t_kv.value)
            link_set_remove(tenant, "Networks", obj["key"])
            compares.append(Compare(t_key, "mod", "==", t_kv.mod_revision))
            ops.append(Put(t_key, codec.dumps("tenant", tenant)))
        if (await kv.txn(compares, ops)).succeeded:
            return True
    log.error("rollback of network %s lost too many races", obj["key"])
    return False


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
    plan = Plan()
    net_id = keys.network_id(name, tenant_name)
    state, _ = await A.read_net(ctx, net_id)
    if state is None:
        return plan
    glob = await ctx.get_obj("global", "global")
    if state.nwType != "infra":
        if state.epCount > 0:
            raise ConflictError("Error: Network has active endpoints")
        if docker_enabled(ctx, glob):
            await dockernet.delete_docknet(docker_client(ctx), ctx.kv, tenant_name, name, "")
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


def endpoint_oper(ep: EndpointState, virtual_port: str = "") -> dict:
    """EndpointOper JSON (omitempty, the original's field order)."""
    fields = [
        ("containerID", ep.containerId),
        ("containerName", ep.epCommonName),
        ("endpointGroupId", ep.endpointGroupId),
        ("endpointGroupKey", ep.endpointGroupKey),
        ("endpointID", ep.endpointID),
        ("homingHost", ep.homingHost),
        ("intfName", ep.intfName),
        ("ipAddress", [ep.ipAddress, ep.ipv6Address]),
        ("labels", go_map_str(ep.labels)),
        ("macAddress", ep.macAddress),
        ("network", ep.netID),
        ("serviceName", ep.serviceName),
        ("virtualPort", virtual_port),
        ("vtepIP", ep.vtepIP),
    ]
    return {k: v for k, v in fields if v not in ("", 0, None)}


async def endpoints_where(kv: KVStore, pred) -> list[EndpointState]:
    items, _ = await kv.get_prefix(keys.EPS)
    return [ep for ep in (EndpointState.from_json(i.value) for i in items) if pred(ep)]


def omit(pairs: list[tuple[str, Any]]) -> dict:
    return {k: v for k, v in pairs if v not in ("", 0, None, [])}


async def oper(ctx: Any, obj: dict) -> dict:
    net_id = keys.network_id(obj["networkName"], obj["tenantName"])
    kv = await ctx.kv.get(keys.net_state(net_id))
    if kv is None:
        return {}
    st = NetworkState.from_json(kv.value)
    eps = await endpoints_where(ctx.kv, lambda ep: ep.netID == net_id)
    return omit(
        [
            ("allocatedAddressesCount", st.epAddrCount),
            ("allocatedIPAddresses", ipam.list_allocated(st)),
            ("availableIPAddresses", ipam.list_available(st)),
            ("endpoints", [endpoint_oper(ep) for ep in eps]),
            ("externalPktTag", st.extPktTag),
            ("networkTag", st.networkTag),
            ("numEndpoints", st.epCount),
            ("pktTag", st.pktTag),
        ]
    )


__all__ = ["on_create", "on_update", "on_delete", "oper", "endpoint_oper", "go_map_str", "rollback_create"]
