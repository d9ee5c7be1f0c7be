"""Per-type CRUD hooks (contract in contivpy.netmaster.crud; types in contivpy.netmaster.txn).

One module per object type; ``registry.ObjType.hooks`` names it (``"network"``, ...). ``load``
maps that name to the module with plain import statements, so a reader or a call-graph tool can
follow a request from the route through ``Crud`` into its hook. The imports run on first use, not
when netmaster starts (its time to the first answer is a user-visible figure). Hook modules import
``contivpy.netmaster.txn`` and never ``crud``.
"""

from __future__ import annotations

from types import ModuleType


def load(name: str) -> ModuleType | None:
    """The hooks module of an object type, or None for a type without hooks."""
    if name == "aci_gw":
        from contivpy.netmaster.hooks import aci_gw as mod
    elif name == "app_profile":
        from contivpy.netmaster.hooks import app_profile as mod
    elif name == "bgp":
        from contivpy.netmaster.hooks import bgp as mod
    elif name == "ext_contracts":
        from contivpy.netmaster.hooks import ext_contracts as mod
    elif name == "global_":
        from contivpy.netmaster.hooks import global_ as mod
    elif name == "group":
        from contivpy.netmaster.hooks import group as mod
    elif name == "netprofile":
        from contivpy.netmaster.hooks import netprofile as mod
    elif name == "network":
        from contivpy.netmaster.hooks import network as mod
    elif name == "policy":
        from contivpy.netmaster.hooks import policy as mod
    elif name == "rule":
        from contivpy.netmaster.hooks import rule as mod
    elif name == "service_lb":
        from contivpy.netmaster.hooks import service_lb as mod
    elif name == "tenant":
        from contivpy.netmaster.hooks import tenant as mod
    else:
        return None
    return mod
