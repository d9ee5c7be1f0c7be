"""Actions of ``global`` and ``aci-gw`` (conventions as in commands_net: parse, one request, print)."""

from __future__ import annotations

from contivpy.netctl.api import Api
from contivpy.netctl.api import dump_structs as dump_list
from contivpy.netctl.commands_net import inspect, need, table


def show_global(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    items = Api(ctx).list("Global", "globals")
    if ctx.bool("json"):
        return dump_list("Global", items)
    text = ""
    for g in items or []:
        text += (
            f"Fabric mode: {g.get('networkInfraType', '')}\nForward mode: {g.get('fwdMode', '')}\n"
            f"ARP mode: {g.get('arpMode', '')}\nVlan Range: {g.get('vlans', '')}\n"
            f"Vxlan range: {g.get('vxlans', '')}\nPrivate subnet: {g.get('pvtSubnet', '')}\n"
        )
    table(text)


def inspect_global(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    inspect(ctx, "Global", "globals", "global")


def set_global(ctx) -> None:
    api = Api(ctx)
    g = api.get("Global", "globals", "global")
    for flag, field in (
        ("fabric-mode", "networkInfraType"),
        ("vlan-range", "vlans"),
        ("vxlan-range", "vxlans"),
        ("fwd-mode", "fwdMode"),
        ("arp-mode", "arpMode"),
        ("private-subnet", "pvtSubnet"),
    ):
        if ctx.string(flag):
            g[field] = ctx.string(flag)
    api.post("Global", "globals", "global", g)


def set_aci_gw(ctx) -> None:
    api = Api(ctx)
    gw = api.try_get("AciGw", "aciGws", "aciGw")
    if gw is None:
        gw = {"name": "aciGw"}
    gw["enforcePolicies"] = ctx.string("enforce-policies")
    gw["includeCommonTenant"] = ctx.string("include-common-tenant")
    gw["nodeBindings"] = ctx.string("node-bindings")
    gw["pathBindings"] = ctx.string("path-bindings")
    gw["physicalDomain"] = ctx.string("phys-dom")
    api.post("AciGw", "aciGws", "aciGw", gw)


def show_aci_gw(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    items = Api(ctx).list("AciGw", "aciGws")
    if ctx.bool("json"):
        return dump_list("AciGw", items)
    text = ""
    for gw in items or []:
        text += (
            f"Path bindings: {gw.get('pathBindings', '')}\nNode bindings: {gw.get('nodeBindings', '')}\n"
            f"Physical domain: {gw.get('physicalDomain', '')}\n"
            f"Enforce policies: {gw.get('enforcePolicies', '')}\n"
            f"Include Common-Tenant: {gw.get('includeCommonTenant', '')}\n"
        )
    table(text)


def inspect_aci_gw(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    inspect(ctx, "AciGw", "aciGws", "aciGw")
