"""Global object hooks and leader-start defaults.

Derived records (docs/original.md R5.1, exact JSON):

    /contiv.io/master/config/global  {"id":"","nw-infra-type":..,"fwd-mode":..,"arp-mode":..,"pvt-subnet":..}
    /contiv.io/state/global/global   {"id":"","auto":{"VLANs":"1-4094","VXLANs":"1-10000"}}
    /contiv.io/oper/global/global    {"id":"","defaultNetwork":"","freeVXLANsStart":0}
    auto-vlan / auto-vxlan state and oper records (see tags.py)

Update refusals (messages verbatim, docs/original.md §2.3, docs/original.md R4.7, objapi tests):
forwarding mode or private subnet change while VLAN/VXLAN networks exist ("Unable to update
forwarding mode due to existing 1 vlans and 1 vxlans"), leaving routing while BGP configs exist,
VLAN/VXLAN range changes that would exclude tags in use ("cannot update the vlan range due to
existing vlans ..."), checked in that order, the VLAN range before the VXLAN range, like the
original (decisions.md "Global range checks" for the two differences inside one range check). Delete is refused while networks hold tags ("Unable to delete global
configuration due to existing 1 vlans"): it removes the tag records (decisions.md).

``ensure_global_defaults(ctx, fwd_mode)`` (leader start): creates the global object from the flags
when missing and any missing derived record. FIX (decisions.md): an existing global object is
kept; the original rewrote arpMode/vlans/vxlans/pvtSubnet to defaults on every leader start.
"""

from __future__ import annotations

import logging
from typing import Any

from contivpy.common import netaddr
from contivpy.common.errors import ConflictError
from contivpy.common.kv.base import Delete, Put
from contivpy.model import codec, keys
from contivpy.model.record import GlobalConfig  # not model.state: leader start (record.py)
from contivpy.netmaster.hooks import _alloc as A
from contivpy.netmaster.tags import VlanResource, VxlanResource
from contivpy.netmaster.txn import Plan

log = logging.getLogger("netmaster.hooks.global")

DEFAULT_PVT_SUBNET = "172.19.0.0/16"


def master_config_json(g: dict) -> str:
    return GlobalConfig(
        nwInfraType=g.get("networkInfraType", ""),
        fwdMode=g.get("fwdMode", ""),
        arpMode=g.get("arpMode", ""),
        pvtSubnet=g.get("pvtSubnet", ""),
    ).to_json()


def state_global_json(g: dict) -> str:
    return A.dumps({"id": "", "auto": {"VLANs": g.get("vlans", ""), "VXLANs": g.get("vxlans", "")}})


def oper_global_json(default_network: str, free_start: int) -> str:
    return A.dumps({"id": "", "defaultNetwork": default_network, "freeVXLANsStart": free_start})


async def _put_if_changed(ctx: Any, key: str, value: str, plan: Plan) -> None:
    cur = await ctx.read(key)
    if cur is None or cur.value != value:
        plan.ops.append(Put(key, value))


async def _derived_plan(
    ctx: Any, g: dict, plan: Plan, vlans: VlanResource | None, vxlans: VxlanResource | None
) -> None:
    """Write every derived record for global object ``g`` (resources given = rewrite them)."""
    await _put_if_changed(ctx, keys.MASTER_CONFIG_GLOBAL, master_config_json(g), plan)
    await _put_if_changed(ctx, keys.STATE_GLOBAL, state_global_json(g), plan)
    if vlans is None and g.get("vlans") and await ctx.read(keys.STATE_AUTO_VLAN) is None:
        vlans = VlanResource.new(g["vlans"])
    if vlans is not None:
        plan.ops += A.vlan_ops(vlans, with_state=True)
    if vxlans is None and g.get("vxlans") and await ctx.read(keys.STATE_AUTO_VXLAN) is None:
        vxlans = VxlanResource.new(g["vxlans"])
    oper = await ctx.read_json(keys.OPER_GLOBAL)
    default_net = (oper or {}).get("defaultNetwork", "")
    if vxlans is not None:
        plan.ops += A.vxlan_ops(vxlans, with_state=True)
        await _put_if_changed(ctx, keys.OPER_GLOBAL, oper_global_json(default_net, vxlans.start), plan)
    elif oper is None:
        plan.ops.append(Put(keys.OPER_GLOBAL, oper_global_json("", 0)))


async def ensure_global_defaults(ctx: Any, fwd_mode: str) -> Plan:
    plan = Plan()
    await ctx.prefetch(  # everything the leader start reads here, in one request
        [
            keys.obj_key("global", "global"),
            keys.MASTER_CONFIG_GLOBAL,
            keys.STATE_GLOBAL,
            keys.STATE_AUTO_VLAN,
            keys.STATE_AUTO_VXLAN,
            keys.OPER_GLOBAL,
        ]
    )
    g = await ctx.get_obj("global", "global")
    if g is None:
        g = codec.default_global(fwd_mode)
        infra = getattr(ctx.config, "infra", "") if ctx.config is not None else ""
        if infra:
            g["networkInfraType"] = infra
        ctx.put_obj("global", g)
    elif not g.get("fwdMode") and fwd_mode:
        g = dict(g, fwdMode=fwd_mode)
        ctx.put_obj("global", g)
    elif fwd_mode and g.get("fwdMode") != fwd_mode:
        log.warning(
            "global fwdMode is %s, flag says %s: keeping the stored value", g.get("fwdMode"), fwd_mode
        )
    await _derived_plan(ctx, g, plan, None, None)
    return plan


async def _counts(ctx: Any, g: dict) -> tuple[VlanResource, VxlanResource, int, int]:
    vl, vx = await A.load_vlans(ctx, g), await A.load_vxlans(ctx, g)
    return vl, vx, len(vl.in_use()), len(vx.in_use())


def _existing(label: str, n_vlans: int, n_vxlans: int, verb: str = "update") -> ConflictError:
    parts = []
    if n_vlans:
        parts.append(f"{n_vlans} vlans")
    if n_vxlans:
        parts.append(f"{n_vxlans} vxlans")
    return ConflictError(f"Unable to {verb} {label} due to existing {' and '.join(parts)}")


def _check_ranges(g: dict) -> None:
    if g.get("vlans"):
        netaddr.parse_tag_ranges(g["vlans"], "vlan")
    if g.get("vxlans"):
        netaddr.parse_tag_ranges(g["vxlans"], "vxlan")


async def on_create(ctx: Any, obj: dict) -> Plan:
    _check_ranges(obj)
    plan = Plan()
    vl = VlanResource.new(obj["vlans"]) if obj.get("vlans") else None
    vx = VxlanResource.new(obj["vxlans"]) if obj.get("vxlans") else None
    if await ctx.read(keys.OPER_AUTO_VLAN) is not None or await ctx.read(keys.OPER_AUTO_VXLAN) is not None:
        # resources already exist (networks may hold tags): redefine rather than reset
        return await on_update(ctx, {"key": "global", "name": "global"}, obj)
    await _derived_plan(ctx, obj, plan, vl, vx)
    return plan


async def on_update(ctx: Any, old: dict, new: dict) -> Plan:
    """Refusals in the original's order (docs/original.md "Global update"): forwarding mode, BGP,
    private subnet, then the VLAN range, then the VXLAN range; the first that applies is the
    answer. Within one range: format, then the tags in use (decisions.md "Global range checks")."""
    vl, vx, n_vlans, n_vxlans = await _counts(ctx, old)
    if old.get("fwdMode", "") != new.get("fwdMode", ""):
        if n_vlans + n_vxlans > 0:
            raise _existing("forwarding mode", n_vlans, n_vxlans)
        if old.get("fwdMode") == "routing" and await ctx.list_objs("Bgp"):
            raise ConflictError("please delete existing Bgp configs")
    if old.get("pvtSubnet", "") != new.get("pvtSubnet", ""):
        if (old.get("pvtSubnet") or new.get("pvtSubnet") != DEFAULT_PVT_SUBNET) and n_vlans + n_vxlans > 0:
            raise _existing("private subnet", n_vlans, n_vxlans)
    rew_vl = rew_vx = None
    if new.get("vlans") and new.get("vlans") != old.get("vlans"):
        vl.redefine(new["vlans"])  # parses, then refuses a range that leaves out a VLAN in use
        rew_vl = vl
    if new.get("vxlans") and new.get("vxlans") != old.get("vxlans"):
        vx.redefine(new["vxlans"])
        rew_vx = vx
    plan = Plan()
    await _derived_plan(ctx, new, plan, rew_vl, rew_vx)
    return plan


async def on_delete(ctx: Any, obj: dict) -> Plan:
    # the tag records go with the global object: with networks holding tags, a later global
    # create would start from empty bitmaps and hand the same VLAN/VNI out twice
    _, _, n_vlans, n_vxlans = await _counts(ctx, obj)
    if n_vlans + n_vxlans > 0:
        raise _existing("global configuration", n_vlans, n_vxlans, "delete")
    plan = Plan()
    for key in (
        keys.MASTER_CONFIG_GLOBAL,
        keys.STATE_GLOBAL,
        keys.OPER_GLOBAL,
        keys.STATE_AUTO_VLAN,
        keys.OPER_AUTO_VLAN,
        keys.STATE_AUTO_VXLAN,
        keys.OPER_AUTO_VXLAN,
    ):
        plan.ops.append(Delete(key))
    return plan


async def oper(ctx: Any, obj: dict) -> dict:
    from contivpy.model.oper import GlobalOper  # lazy: this module is imported at leader start

    vl, vx, n_vlans, n_vxlans = await _counts(ctx, obj)
    g_oper = await ctx.read_json(keys.OPER_GLOBAL) or {}
    return GlobalOper(
        clusterMode=getattr(ctx.config, "cluster_mode", "") if ctx.config is not None else "",
        defaultNetwork=g_oper.get("defaultNetwork", ""),
        freeVXLANsStart=int(g_oper.get("freeVXLANsStart", 0) or 0),
        numNetworks=n_vlans + n_vxlans,
        vlansInUse=vl.in_use_str()[1],
        vxlansInUse=vx.in_use_str()[1],
    ).to_dict()


__all__ = ["ensure_global_defaults", "on_create", "on_update", "on_delete", "oper", "master_config_json"]
