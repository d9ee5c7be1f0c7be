"""Helpers shared by the network / group / global hooks (allocation state read through a TxnContext).

Every read goes through ``ctx.read`` so crud fences the commit on it (mod revision compare):
a tag or address handed out by a concurrent writer makes the txn fail and crud re-runs the hook
on fresh state. Tag resources that are missing (a store written before the global object
existed) are built from the global ranges inside the same txn (create-if-absent compare).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from contivpy.common.errors import ValidationError
from contivpy.common.kv.base import Put
from contivpy.model import keys
from contivpy.netmaster.tags import VlanResource, VxlanResource

if TYPE_CHECKING:  # imported where used: the leader start loads this module, not the state records
    from contivpy.model.state import EndpointGroupState, NetworkState

DEFAULT_VLANS = "1-4094"
DEFAULT_VXLANS = "1-10000"


def cluster_mode(ctx: Any) -> str:
    return getattr(ctx.config, "cluster_mode", "") or "test"


def aci_mode(glob: dict | None) -> bool:
    return bool(glob) and glob.get("networkInfraType") == "aci"


async def load_vlans(ctx: Any, glob: dict | None) -> VlanResource:
    st, op = await ctx.read(keys.STATE_AUTO_VLAN), await ctx.read(keys.OPER_AUTO_VLAN)
    if st is not None and op is not None:
        return VlanResource.load(st.value, op.value)
    return VlanResource.new((glob or {}).get("vlans") or DEFAULT_VLANS)


async def load_vxlans(ctx: Any, glob: dict | None) -> VxlanResource:
    st, op = await ctx.read(keys.STATE_AUTO_VXLAN), await ctx.read(keys.OPER_AUTO_VXLAN)
    if st is not None and op is not None:
        return VxlanResource.load(st.value, op.value)
    return VxlanResource.new((glob or {}).get("vxlans") or DEFAULT_VXLANS)


def vlan_ops(res: VlanResource, with_state: bool = False) -> list[Put]:
    ops = [Put(keys.OPER_AUTO_VLAN, res.oper_json())]
    if with_state:
        ops.append(Put(keys.STATE_AUTO_VLAN, res.state_json()))
    return ops


def vxlan_ops(res: VxlanResource, with_state: bool = False) -> list[Put]:
    ops = [Put(keys.OPER_AUTO_VXLAN, res.oper_json())]
    if with_state:
        ops.append(Put(keys.STATE_AUTO_VXLAN, res.state_json()))
    return ops


async def tag_ops(ctx: Any, res: VlanResource | VxlanResource) -> list[Put]:
    """Oper record put (plus the state record when it did not exist yet)."""
    if isinstance(res, VlanResource):
        return vlan_ops(res, await ctx.read(keys.STATE_AUTO_VLAN) is None)
    return vxlan_ops(res, await ctx.read(keys.STATE_AUTO_VXLAN) is None)


async def read_net(ctx: Any, net_id: str) -> tuple[NetworkState | None, Any]:
    from contivpy.model.state import NetworkState

    kv = await ctx.read(keys.net_state(net_id))
    return (None, None) if kv is None else (NetworkState.from_json(kv.value), kv)


async def read_epg(ctx: Any, epg_id: str) -> EndpointGroupState | None:
    from contivpy.model.state import EndpointGroupState

    kv = await ctx.read(keys.epg_state(epg_id))
    return None if kv is None else EndpointGroupState.from_json(kv.value)


def global_not_ready(glob: dict | None, encap: str) -> str:
    """The original's validateGlobalConfig reasons ("" = ready)."""
    if glob is None:
        return "global configuration is not ready"
    if not glob.get("fwdMode"):
        return "global forwarding mode is not set"
    if encap.lower() == "vlan" and not glob.get("vlans"):
        return "global vlan range is not set"
    if encap.lower() == "vxlan" and not glob.get("vxlans"):
        return "global vxlan range is not set"
    return ""


def require_tenant_name(obj: dict) -> str:
    tenant = obj.get("tenantName", "")
    if not tenant:
        raise ValidationError("Invalid tenant name")
    return tenant


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


__all__ = [
    "cluster_mode",
    "aci_mode",
    "load_vlans",
    "load_vxlans",
    "vlan_ops",
    "vxlan_ops",
    "tag_ops",
    "read_net",
    "read_epg",
    "global_not_ready",
    "require_tenant_name",
    "dumps",
]
