"""Endpoint-group hooks: create (EPG id, ip-pool, policies), update, delete, Oper.

State ``/contiv.io/state/endpointGroups/<group>:<tenant>`` (EndpointGroupState) inherits the
network's tags. EPG ids are persisted: the lowest id 1..65535 without a reservation key
``/contiv.io/master/epgid/<id>`` (value = EPG state id) is taken with a create-if-absent compare in
the same txn (FIX: the original used an in-memory counter reset on restart; decisions.md).

ip-pool: validated against the network map and marked used there (ipam.attach_pool), in the
same txn as the EPG state (the network state read is compare-fenced).

Policies: the EPG's ``Policies`` link-set and each policy's ``EndpointGroups`` link-set are kept
here (at most ``MAX_POLICIES`` per group and per update: each costs a compare and two puts in the
request's txn, and etcd caps each at 128); the EPG-policy rule state is rebuilt by the
``hooks.policy_state`` follow-up job scheduled in the same txn (its size grows with the policy's
rules: never in the request's txn).

Delete: refused while endpoints or an app profile use the group. Rules (of any policy of the tenant)
that name the group keep their ``fromEndpointGroup``/``toEndpointGroup`` as the original did, but
their ``links.MatchEndpointGroup`` is cleared by the ``unlinkrules`` follow-up job (one rule object
each: unbounded), so no link is left pointing at a deleted object.

Docker (docker mode): the hooks never call Docker (pure, may be re-run). The committed group state
is the desired Docker network; the leader's reconciler (``netmaster/dockerrec.py``) creates it
after the commit and removes it after a delete commits (the original created it before writing
state, and left it behind when a later step failed).
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from contivpy.common.errors import ConflictError, NotFoundError, ResourceExhaustedError, ValidationError
from contivpy.common.kv.base import Delete, Put
from contivpy.model import codec, keys
from contivpy.model.oper import EndpointGroupOper
from contivpy.model.state import EndpointGroupState
from contivpy.netmaster import followup, ipam
from contivpy.netmaster.bitset import Bitset
from contivpy.netmaster.hooks import _alloc as A
from contivpy.netmaster.hooks.network import endpoint_oper, endpoints_where
from contivpy.netmaster.txn import Plan, link_set_add, link_set_remove, set_link

log = logging.getLogger("netmaster.hooks.group")

MAX_EPG_ID = 65535
UNLINK_RULES = "unlinkrules"
EPG_ID_PREFIX = keys.ROOT + "master/epgid/"


def epg_id_key(epg_id: int) -> str:
    return f"{EPG_ID_PREFIX}{epg_id}"


# Index of the ids in use: one bitmap record (ours, docs/decisions.md "EPG ids"), so a create finds
# the lowest free id without reading every /contiv.io/master/epgid/<id> key (that read grew with
# the number of groups). The per-id keys stay the authority: a candidate is taken only if its key
# is absent (create-if-absent compare), so a stale bitmap (written before the index existed, or by
# an older version) costs extra probes, never a duplicate id. An absent record is rebuilt from the
# keys, once.
EPG_ID_USED = keys.ROOT + "master/epgid-used"
_STALE_PROBES = 8


async def _used_ids(ctx: Any) -> tuple[Bitset, bool]:
    """(bitmap of ids in use, whether it came from the record)."""
    kv = await ctx.read(EPG_ID_USED)
    if kv is not None:
        try:
            used = Bitset.decode(json.loads(kv.value))
            return Bitset(MAX_EPG_ID + 1, used.bits | 1), True
        except (ValueError, TypeError):
            pass  # unreadable: rebuild it
    return await _rebuild_used(ctx), False


async def _rebuild_used(ctx: Any) -> Bitset:
    items, _ = await ctx.kv.get_prefix(EPG_ID_PREFIX)
    used = Bitset(MAX_EPG_ID + 1)
    used.set(0)  # id 0 means "none"
    for i in items:
        tail = i.key[len(EPG_ID_PREFIX) :]
        if tail.isdigit() and int(tail) <= MAX_EPG_ID:
            used.set(int(tail))
    return used


async def _alloc_epg_id(ctx: Any, epg_state_id: str) -> tuple[int, list[Put]]:
    used, _ = await _used_ids(ctx)
    stale = 0
    cand = used.next_clear(1)
    while cand is not None:
        if await ctx.read(epg_id_key(cand)) is None:  # records the create-if-absent compare
            used.set(cand)
            return cand, [Put(epg_id_key(cand), epg_state_id), _used_put(used)]
        stale += 1
        if stale == _STALE_PROBES:  # the bitmap missed several ids in use: rebuild it from the keys
            used = await _rebuild_used(ctx)
            cand = used.next_clear(1)
        else:
            used.set(cand)
            cand = used.next_clear(cand + 1)
    raise ResourceExhaustedError("no endpoint group ids available")


async def _release_epg_id(ctx: Any, epg_id: int) -> list[Put]:
    """The bitmap without ``epg_id`` (nothing when the record does not exist yet)."""
    kv = await ctx.read(EPG_ID_USED)
    if kv is None:
        return []
    try:
        used = Bitset.decode(json.loads(kv.value))
    except (ValueError, TypeError):
        return []
    used.clear(epg_id)
    return [_used_put(used)]


def _used_put(used: Bitset) -> Put:
    """The bitmap up to its highest id in use (ids are taken lowest first: 1 bit per group)."""
    top = used.bits.bit_length()
    return Put(EPG_ID_USED, json.dumps(Bitset(top, used.bits).encode()))


# Each policy attached or detached adds to the request's txn a compare (the policy object read) and
# two puts (its EndpointGroups link key, the follow-up intent key); etcd refuses more than 128
# compares or puts in one txn. So a group holds at most MAX_POLICIES and one update attaches plus
# detaches at most MAX_POLICIES (replacing all 32 at once would be 128 puts + the group's own).
MAX_POLICIES = 32


def _check_policies(names: list[str], old: list[str] | None = None) -> None:
    n = len(set(names))
    if n > MAX_POLICIES:
        raise ValidationError(f"too many policies for a group ({n}, at most {MAX_POLICIES})")
    changed = len(set(names) ^ set(old or []))
    if changed > MAX_POLICIES:
        raise ValidationError(
            f"too many policy changes for a group in one update ({changed}, at most {MAX_POLICIES}): "
            "attach or detach them in several updates"
        )


def _policy_mod():
    try:
        from contivpy.netmaster.hooks import policy_state
    except ImportError:  # pragma: no cover - policy owner absent
        return None
    return policy_state


async def _attach(ctx: Any, epg: dict, epg_id: int, policy_name: str, plan: Plan) -> None:
    tenant = epg["tenantName"]
    pkey = f"{tenant}:{policy_name}"
    policy = await ctx.get_obj("policy", pkey)
    if policy is None:
        raise NotFoundError("Policy not found")
    # the policy's EndpointGroups is an indexed set (one link key per group): the policy record is
    # read (compare-fenced) but not rewritten
    ctx.link_add("policy", pkey, "EndpointGroups", "endpointGroup", epg["key"])
    link_set_add(epg, "Policies", "policy", pkey)
    mod = _policy_mod()
    if mod is not None:  # the pair record will list every rule of the policy: bounded
        rules = await ctx.members("policy", pkey, "Rules")
        mod.check_pair_size(tenant, policy_name, rules, [epg["key"]])
        mod.schedule_pair(ctx, plan, tenant, epg["groupName"], policy_name)


async def _detach(ctx: Any, epg: dict, policy_name: str, plan: Plan) -> None:
    tenant = epg["tenantName"]
    pkey = f"{tenant}:{policy_name}"
    policy = await ctx.get_obj("policy", pkey)
    ctx.link_remove("policy", pkey, "EndpointGroups", epg["key"])
    if epg["key"] in ((policy or {}).get("link-sets") or {}).get("EndpointGroups", {}):  # stored (legacy)
        policy = copy.deepcopy(policy)
        link_set_remove(policy, "EndpointGroups", epg["key"])
        ctx.put_obj("policy", policy)
    link_set_remove(epg, "Policies", pkey)
    mod = _policy_mod()
    if mod is not None:
        mod.schedule_pair(ctx, plan, tenant, epg["groupName"], policy_name)


async def _apply_netprofile(ctx: Any, obj: dict, state: EndpointGroupState) -> None:
    name = obj.get("netProfile", "")
    if not name:
        state.dscp, state.bandwidth, state.burst = 0, "", 0
        return
    prof = await ctx.get_obj("netprofile", f"{obj['tenantName']}:{name}")
    if prof is None:
        raise NotFoundError("netprofile not found")
    state.dscp, state.bandwidth, state.burst = (
        prof.get("DSCP", 0),
        prof.get("bandwidth", ""),
        prof.get("burst", 0),
    )


def prefetch(obj: dict) -> list[str]:
    """What a create reads (crud prefetches them in one request)."""
    tenant, net = obj.get("tenantName", ""), obj.get("networkName", "")
    out = [keys.obj_key("tenant", tenant), keys.obj_key("network", f"{tenant}:{net}")]
    out += [keys.obj_key("network", obj["key"]), keys.obj_key("global", "global"), EPG_ID_USED]
    if net and tenant:
        out.append(keys.net_state(keys.network_id(net, tenant)))
    if obj.get("netProfile"):
        out.append(keys.obj_key("netprofile", f"{tenant}:{obj['netProfile']}"))
    return out


async def on_create(ctx: Any, obj: dict) -> Plan:
    tenant = obj.get("tenantName", "")
    group = obj["groupName"]
    if await ctx.get_obj("tenant", tenant) is None:
        raise NotFoundError("Tenant not found")
    net_name = obj.get("networkName", "")
    if await ctx.get_obj("network", f"{tenant}:{net_name}") is None:
        raise NotFoundError(f"Network {net_name} not found")
    clash = await ctx.get_obj("network", obj["key"])
    if clash is not None:
        raise ConflictError(f"Network {clash.get('networkName', '')} conflicts with the endpointGroup name")
    net_id = keys.network_id(net_name, tenant)
    net, _ = await A.read_net(ctx, net_id)
    if net is None:
        raise NotFoundError(f"Network {net_name} not found")
    glob = await ctx.get_obj("global", "global")
    epg_sid = keys.epg_id(group, tenant)
    plan = Plan()
    epg_id, id_puts = await _alloc_epg_id(ctx, epg_sid)
    plan.ops += id_puts
    state = EndpointGroupState(
        id=epg_sid,
        groupName=group,
        tenantName=tenant,
        networkName=net_name,
        endpointGroupId=epg_id,
        pktTagType=net.pktTagType,
        pktTag=net.pktTag,
        extPktTag=net.extPktTag,
        epgIpAllocMap=ipam.EMPTY_BITSET,
        groupTag=obj.get("cfgdTag") or f"{group}.{tenant}",
    )
    if A.aci_mode(glob):
        if state.pktTagType != "vlan":
            raise ValidationError("network type must be VLAN for ACI mode")
        vl = await A.load_vlans(ctx, glob)
        state.pktTag = vl.allocate(0)
        plan.ops += await A.tag_ops(ctx, vl)
    if obj.get("ipPool"):
        ipam.attach_pool(net, state, obj["ipPool"])
        plan.ops.append(Put(keys.net_state(net_id), net.to_json()))
    await _apply_netprofile(ctx, obj, state)
    _check_policies(obj.get("policies") or [])
    for pname in obj.get("policies") or []:
        await _attach(ctx, obj, epg_id, pname, plan)
    plan.ops.append(Put(keys.epg_state(epg_sid), state.to_json()))
    return plan


async def on_update(ctx: Any, old: dict, new: dict) -> Plan:
    if old.get("networkName", "") != new.get("networkName", ""):
        raise ConflictError("Cannot change network association after epg is created.")
    if old.get("ipPool", "") != new.get("ipPool", ""):
        raise ConflictError("Cannot change IP pool after epg is created.")
    plan = Plan()
    epg_sid = keys.epg_id(old["groupName"], old["tenantName"])
    kv = await ctx.read(keys.epg_state(epg_sid))
    state = EndpointGroupState.from_json(kv.value) if kv is not None else None
    old_p, new_p = list(old.get("policies") or []), list(new.get("policies") or [])
    _check_policies(new_p, old_p)
    for pname in new_p:
        if pname not in old_p:
            await _attach(ctx, new, state.endpointGroupId if state else 0, pname, plan)
    for pname in old_p:
        if pname not in new_p:
            await _detach(ctx, new, pname, plan)
    if state is not None and old.get("netProfile", "") != new.get("netProfile", ""):
        await _apply_netprofile(ctx, new, state)
        plan.ops.append(Put(keys.epg_state(epg_sid), state.to_json()))
    return plan


def prefetch_delete(obj: dict) -> list[str]:
    """What a delete reads: its state record, its network's, the global object, the id records."""
    tenant, group, net = obj.get("tenantName", ""), obj.get("groupName", ""), obj.get("networkName", "")
    out = [keys.epg_state(keys.epg_id(group, tenant)), keys.net_state(keys.network_id(net, tenant))]
    return out + [keys.obj_key("global", "global"), EPG_ID_USED]


async def on_delete(ctx: Any, obj: dict) -> Plan:
    tenant, group = obj.get("tenantName", ""), obj["groupName"]
    app = ((obj.get("links") or {}).get("AppProfile") or {}).get("key", "")
    if app:
        raise ConflictError(f"Cannot delete {group}, associated to appProfile {app}")
    plan = Plan()
    if (obj.get("link-sets") or {}).get("MatchRules"):
        # rules of other policies may name this group: their links.MatchEndpointGroup is cleared by
        # a follow-up job (unbounded: one rule object per rule), never left dangling
        followup.schedule(ctx, plan, UNLINK_RULES, obj["key"])
    if A.cluster_mode(ctx) == "swarm-mode":
        dn = await ctx.read_json(
            keys.docknet_oper(keys.docknet_id(tenant, obj.get("networkName", ""), group))
        )
        if dn is not None:
            raise ConflictError(
                f"cannot delete group {group} mapped to docker network {dn.get('docknetUUID', '')}"
            )
    epg_sid = keys.epg_id(group, tenant)
    state = await A.read_epg(ctx, epg_sid)
    for pname in obj.get("policies") or []:
        await _detach(ctx, obj, pname, plan)
    if state is None:
        return plan
    if state.epCount != 0:
        raise ConflictError(f"Error: EPG {group} has active endpoints")
    glob = await ctx.get_obj("global", "global")
    net_id = keys.network_id(state.networkName, tenant)
    net, _ = await A.read_net(ctx, net_id)
    if net is not None and state.ipPool:
        ipam.detach_pool(net, state)
        plan.ops.append(Put(keys.net_state(net_id), net.to_json()))
    if A.aci_mode(glob) and state.pktTagType == "vlan":
        vl = await A.load_vlans(ctx, glob)
        vl.release(state.pktTag)
        plan.ops += await A.tag_ops(ctx, vl)
    plan.ops.append(Delete(keys.epg_state(epg_sid)))
    if state.endpointGroupId:
        owner = await ctx.read(epg_id_key(state.endpointGroupId))
        if owner is not None and owner.value == epg_sid:
            plan.ops.append(Delete(epg_id_key(state.endpointGroupId)))
            plan.ops += await _release_epg_id(ctx, state.endpointGroupId)
    return plan


@followup.job(UNLINK_RULES)
async def _unlink_rules(crud: Any, group_key: str) -> None:
    """Clear ``links.MatchEndpointGroup`` of the tenant's rules that point at the deleted group
    ``group_key`` (``<tenant>:<group>``); nothing to do if the group exists again (idempotent)."""
    if await crud.kv.get(keys.obj_key("endpointGroup", group_key)) is not None:
        return
    tenant = group_key.split(":", 1)[0]

    def points_here(rule: dict) -> bool:
        return ((rule.get("links") or {}).get("MatchEndpointGroup") or {}).get("key") == group_key

    items, _ = await crud.kv.get_prefix(keys.obj_key("rule", f"{tenant}:"))
    todo = [i.key for i in items if points_here(json.loads(i.value))]

    def change(_k: str, value: str) -> str | None:
        rule = json.loads(value)
        if not points_here(rule):
            return None
        set_link(rule, "MatchEndpointGroup", "", "")
        return codec.dumps("rule", rule)

    await followup.cas_update(crud, todo, change)


async def oper_struct(ctx: Any, obj: dict, view: Any = None) -> EndpointGroupOper:
    """``view``: a loaded ``hooks.network.OperView`` (tenant inspect), else reads of our own."""
    tenant, group = obj["tenantName"], obj["groupName"]
    epg_sid = keys.epg_id(group, tenant)
    reader = view if view is not None else ctx.kv
    kv = await reader.get(keys.epg_state(epg_sid))
    if kv is None:
        return EndpointGroupOper()
    st = EndpointGroupState.from_json(kv.value)
    from contivpy.model.state import NetworkState

    nkv = await reader.get(keys.net_state(keys.network_id(st.networkName, tenant)))
    allocated = available = ""
    if nkv is not None:
        net = NetworkState.from_json(nkv.value)
        allocated, available = ipam.epg_list_allocated(net, st), ipam.epg_list_available(net, st)
    if view is not None:
        eps = view.by_group.get(epg_sid, [])
    else:
        eps = await endpoints_where(ctx.kv, lambda ep: ep.endpointGroupKey == epg_sid)
    return EndpointGroupOper(
        allocatedIPAddresses=allocated,
        availableIPAddresses=available,
        endpoints=[endpoint_oper(ep) for ep in eps],
        externalPktTag=st.extPktTag,
        groupTag=st.groupTag,
        numEndpoints=st.epCount,
        pktTag=st.pktTag,
    )


async def oper(ctx: Any, obj: dict, view: Any = None) -> dict:
    return (await oper_struct(ctx, obj, view)).to_dict()


__all__ = [
    "prefetch",
    "prefetch_delete",
    "on_create",
    "on_update",
    "on_delete",
    "oper",
    "oper_struct",
    "epg_id_key",
    "EPG_ID_PREFIX",
    "EPG_ID_USED",
    "UNLINK_RULES",
]
