"""The inspect ``Oper`` structures (``GET /api/v1/inspect/<plural>/<key>/``): one typed declaration
per object type that has run-time state, and ``EndpointOper`` (the endpoint entries of every
list and ``/api/v1/inspect/endpoints/<s>/``). docs/rest-api.md "Inspect Oper" lists the fields.

Design
- Declared once, used twice: the netmaster hooks build their ``Oper`` by constructing these
  classes (``hooks/*.py oper()``: a misspelt or undeclared field is a ``TypeError`` at
  construction), and the OpenAPI document derives each ``Oper`` schema from the same
  declarations (``netmaster/api/openapi.py``, the type hints), so the two cannot drift.
- Attribute names are the original's JSON names, declared in the original's struct order:
  ``key`` first (only ``EndpointOper`` has one), then the other fields sorted by name (Go byte
  order, as the original's generated structs declare them). ``to_dict`` renders that order.
- Every field is Go ``omitempty`` (the original tags every Oper field so): ``""``, ``0`` and
  empty lists are left out, so an object without state inspects as ``"Oper": {}``. Nested lists
  hold Oper objects (``list[EndpointOper]``) and render recursively.
- ``OPER[type]``: the declaration of each model type whose inspect has an ``Oper``; it covers
  exactly the types ``netmaster.registry`` marks ``has_oper`` (a unit test checks that).
- Pure: standard library only (dataclasses), no I/O; importable by netmaster and netplugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class OperStruct:
    """Base of the declarations: ``to_dict`` is the original's JSON encoding of the struct."""

    __slots__ = ()
    GO: ClassVar[str] = ""  # the original's struct name (also the OpenAPI component name)
    NAMES: ClassVar[tuple[str, ...]] = ()  # field names in declaration order (set below)

    def empty(self) -> bool:
        """Renders as ``{}``."""
        return not any(getattr(self, name) for name in self.NAMES)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.NAMES:
            v = getattr(self, name)
            if not v:  # omitempty: "", 0, [] (and None)
                continue
            if isinstance(v, list) and isinstance(v[0], OperStruct):
                v = [x.to_dict() for x in v]
            out[name] = v
        return out


@dataclass(slots=True)
class EndpointOper(OperStruct):
    """One endpoint as inspect shows it; ``key`` only in ``/inspect/endpoints/<s>/`` (the search
    string), ``ipAddress`` is ``[IPv4, IPv6]`` ("" when unset), ``labels`` Go's ``map[k:v ...]``,
    ``network`` ``<net>.<tenant>``, ``virtualPort`` ``v`` + the host's OVS port name."""

    key: str = ""
    containerID: str = ""
    containerName: str = ""
    endpointGroupId: int = 0
    endpointGroupKey: str = ""
    endpointID: str = ""
    homingHost: str = ""
    intfName: str = ""
    ipAddress: list[str] = field(default_factory=list)
    labels: str = ""
    macAddress: str = ""
    network: str = ""
    serviceName: str = ""
    virtualPort: str = ""
    vtepIP: str = ""


@dataclass(slots=True)
class NetworkOper(OperStruct):
    allocatedAddressesCount: int = 0
    allocatedIPAddresses: str = ""  # ranges: "10.1.1.1-10.1.1.3, 10.1.1.254"
    availableIPAddresses: str = ""
    endpoints: list[EndpointOper] = field(default_factory=list)
    externalPktTag: int = 0  # the VNI of a vxlan network
    networkTag: str = ""  # cfgdTag, else <net>.<tenant>
    numEndpoints: int = 0
    pktTag: int = 0  # the VLAN (for vxlan: the host-local VLAN)


@dataclass(slots=True)
class EndpointGroupOper(OperStruct):
    allocatedIPAddresses: str = ""
    availableIPAddresses: str = ""
    endpoints: list[EndpointOper] = field(default_factory=list)
    externalPktTag: int = 0
    groupTag: str = ""  # cfgdTag, else <group>.<tenant>
    numEndpoints: int = 0
    pktTag: int = 0


@dataclass(slots=True)
class PolicyOper(OperStruct):
    endpoints: list[EndpointOper] = field(default_factory=list)
    numEndpoints: int = 0
    policyViolations: int = 0  # declared by the original, never filled


@dataclass(slots=True)
class ServiceLBOper(OperStruct):
    numProviders: int = 0
    providers: list[EndpointOper] = field(default_factory=list)
    serviceVip: str = ""


@dataclass(slots=True)
class TenantOper(OperStruct):
    endpointGroups: list[EndpointGroupOper] = field(default_factory=list)
    endpoints: list[EndpointOper] = field(default_factory=list)  # declared, never filled
    networks: list[NetworkOper] = field(default_factory=list)
    policies: list[PolicyOper] = field(default_factory=list)  # declared, never filled
    servicelbs: list[ServiceLBOper] = field(default_factory=list)  # declared, never filled
    totalAppProfiles: int = 0
    totalEPGs: int = 0
    totalEndpoints: int = 0
    totalNetprofiles: int = 0
    totalNetworks: int = 0
    totalPolicies: int = 0
    totalServicelbs: int = 0


@dataclass(slots=True)
class GlobalOper(OperStruct):
    clusterMode: str = ""  # docker | kubernetes | ...
    defaultNetwork: str = ""
    freeVXLANsStart: int = 0
    numNetworks: int = 0  # VLANs + VXLANs in use
    vlansInUse: str = ""  # ranges: "100-102, 200"
    vxlansInUse: str = ""


@dataclass(slots=True)
class BgpOper(OperStruct):
    adminStatus: str = ""
    neighborStatus: str = ""
    numRoutes: int = 0
    routes: list[str] = field(default_factory=list)  # the learned prefixes


@dataclass(slots=True)
class AciGwOper(OperStruct):
    numAppProfiles: int = 0


STRUCTS: tuple[type[OperStruct], ...] = (
    EndpointOper,
    NetworkOper,
    EndpointGroupOper,
    PolicyOper,
    ServiceLBOper,
    TenantOper,
    GlobalOper,
    BgpOper,
    AciGwOper,
)
for _cls in STRUCTS:
    _cls.GO = _cls.__name__
    _cls.NAMES = tuple(_cls.__dataclass_fields__)  # type: ignore[attr-defined]

# model type name (model.objects.SPECS, netmaster.registry) -> its Oper declaration
OPER: dict[str, type[OperStruct]] = {
    "aciGw": AciGwOper,
    "Bgp": BgpOper,
    "endpointGroup": EndpointGroupOper,
    "global": GlobalOper,
    "network": NetworkOper,
    "policy": PolicyOper,
    "serviceLB": ServiceLBOper,
    "tenant": TenantOper,
}


__all__ = [
    "OPER",
    "STRUCTS",
    "OperStruct",
    "EndpointOper",
    "NetworkOper",
    "EndpointGroupOper",
    "PolicyOper",
    "ServiceLBOper",
    "TenantOper",
    "GlobalOper",
    "BgpOper",
    "AciGwOper",
]
