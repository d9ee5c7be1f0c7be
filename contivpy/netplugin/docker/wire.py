"""Wire types of the Docker libnetwork remote NetworkDriver and IpamDriver protocols.

Field names are Docker's (libnetwork ``drivers/remote/api`` and ``ipams/remote/api``), exactly,
because they are the interface. Design and invariants:

- Requests are parsed leniently, like Go's encoding/json into libnetwork's structs: unknown fields
  are ignored, names match case-insensitively, and ``null`` leaves a field at its zero value
  (Docker sends ``"Options": null`` for container addresses), so a request Docker really sends never
  fails. A body that is not a JSON object, or a field of the wrong type, raises ``ValidationError``
  in Go's wording (``common/jsonwire.Struct`` checks the shapes; the dataclasses below hold them).
- Responses carry the original's success bodies: NetworkDriver replies embed ``"Err": ""`` and
  IpamDriver replies ``"Error": ""`` (libnetwork decodes those names). Failures never use these
  models: the server answers them once with HTTP 500 and ``{"Err": "<message>"}``, which is what
  libnetwork's plugin client reads from a non-200 reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from contivpy.common import jsonwire
from contivpy.common.errors import ValidationError

S = "string"
OPTS = "map[string]interface {}"


class _Req:
    """A request struct: ``WIRE`` is its Go shape; ``from_wire`` builds it from a checked body."""

    WIRE: ClassVar[jsonwire.Struct]
    NESTED: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_checked(cls, data: dict[str, Any]) -> Any:
        kw: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            v = data[f.name]
            sub = cls.NESTED.get(f.name)
            if isinstance(sub, list):  # a slice of structs
                v = [sub[0].from_checked(x) for x in v]
            elif sub is not None:
                v = sub.from_checked(v)
            kw[f.name] = v
        return cls(**kw)


@dataclass
class IPAMData(_Req):
    AddressSpace: str = ""
    Pool: str = ""
    Gateway: str = ""
    AuxAddresses: dict[str, Any] = field(default_factory=dict)

    WIRE = jsonwire.Struct("api.IPAMData", {"AddressSpace": S, "Pool": S, "Gateway": S, "AuxAddresses": OPTS})


_IPAM_LIST = ("[]", IPAMData.WIRE)


# ---- NetworkDriver requests ----------------------------------------------------------------


@dataclass
class CreateNetworkRequest(_Req):
    NetworkID: str = ""
    Options: dict[str, Any] = field(default_factory=dict)
    IPv4Data: list[IPAMData] = field(default_factory=list)
    IPv6Data: list[IPAMData] = field(default_factory=list)

    WIRE = jsonwire.Struct(
        "api.CreateNetworkRequest",
        {"NetworkID": S, "Options": OPTS, "IPv4Data": _IPAM_LIST, "IPv6Data": _IPAM_LIST},
    )
    NESTED = {"IPv4Data": [IPAMData], "IPv6Data": [IPAMData]}


@dataclass
class AllocateNetworkRequest(CreateNetworkRequest):
    WIRE = jsonwire.Struct("api.AllocateNetworkRequest", CreateNetworkRequest.WIRE.fields)


@dataclass
class NetworkRequest(_Req):
    """DeleteNetwork, FreeNetwork."""

    NetworkID: str = ""

    WIRE = jsonwire.Struct("api.DeleteNetworkRequest", {"NetworkID": S})


@dataclass
class EndpointInterface(_Req):
    Address: str = ""
    AddressIPv6: str = ""
    MacAddress: str = ""

    WIRE = jsonwire.Struct("api.EndpointInterface", {"Address": S, "AddressIPv6": S, "MacAddress": S})


@dataclass
class CreateEndpointRequest(_Req):
    NetworkID: str = ""
    EndpointID: str = ""
    Interface: EndpointInterface = field(default_factory=EndpointInterface)
    Options: dict[str, Any] = field(default_factory=dict)

    WIRE = jsonwire.Struct(
        "api.CreateEndpointRequest",
        {"NetworkID": S, "EndpointID": S, "Interface": EndpointInterface.WIRE, "Options": OPTS},
    )
    NESTED = {"Interface": EndpointInterface}


@dataclass
class EndpointRequest(_Req):
    """DeleteEndpoint, Leave, EndpointOperInfo, Program/RevokeExternalConnectivity."""

    NetworkID: str = ""
    EndpointID: str = ""
    Options: dict[str, Any] = field(default_factory=dict)

    WIRE = jsonwire.Struct("api.EndpointRequest", {"NetworkID": S, "EndpointID": S, "Options": OPTS})


@dataclass
class JoinRequest(_Req):
    NetworkID: str = ""
    EndpointID: str = ""
    SandboxKey: str = ""
    Options: dict[str, Any] = field(default_factory=dict)

    WIRE = jsonwire.Struct(
        "api.JoinRequest", {"NetworkID": S, "EndpointID": S, "SandboxKey": S, "Options": OPTS}
    )


@dataclass
class DiscoveryNotification(_Req):
    DiscoveryType: int = 0
    DiscoveryData: Any = None

    WIRE = jsonwire.Struct(
        "api.DiscoveryNotification", {"DiscoveryType": "int", "DiscoveryData": "interface {}"}
    )


# ---- IpamDriver requests ----------------------------------------------------------------------


@dataclass
class RequestPoolRequest(_Req):
    AddressSpace: str = ""
    Pool: str = ""
    SubPool: str = ""
    Options: dict[str, Any] = field(default_factory=dict)
    V6: bool = False

    WIRE = jsonwire.Struct(
        "api.RequestPoolRequest",
        {"AddressSpace": S, "Pool": S, "SubPool": S, "Options": OPTS, "V6": "bool"},
    )


@dataclass
class ReleasePoolRequest(_Req):
    PoolID: str = ""

    WIRE = jsonwire.Struct("api.ReleasePoolRequest", {"PoolID": S})


@dataclass
class RequestAddressRequest(_Req):
    PoolID: str = ""
    Address: str = ""
    Options: dict[str, Any] = field(default_factory=dict)

    WIRE = jsonwire.Struct("api.RequestAddressRequest", {"PoolID": S, "Address": S, "Options": OPTS})


@dataclass
class ReleaseAddressRequest(_Req):
    PoolID: str = ""
    Address: str = ""

    WIRE = jsonwire.Struct("api.ReleaseAddressRequest", {"PoolID": S, "Address": S})


# ---- responses (plain dicts: exact key order of the original's JSON) ---------------------------

GATEWAY_REQUEST = "com.docker.network.gateway"
#: CreateNetwork ``Options`` key holding the driver options (``docker network create -o k=v``)
GENERIC_OPTIONS = "com.docker.network.generic"
REQUEST_ADDRESS_TYPE = "RequestAddressType"


def ok() -> dict[str, Any]:
    return {"Err": ""}


def ipam_ok() -> dict[str, Any]:
    return {"Error": ""}


def capabilities(scope: str, connectivity_scope: str) -> dict[str, Any]:
    return {"Err": "", "Scope": scope, "ConnectivityScope": connectivity_scope}


def create_endpoint_response(mac: str) -> dict[str, Any]:
    return {"Err": "", "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": mac}}


#: libnetwork's route type for a route bound to the interface, without a next hop
ROUTE_CONNECTED = 1


def join_response(
    src_name: str, gateway: str, gateway_v6: str = "", default_on_link: bool = False
) -> dict[str, Any]:
    """``default_on_link`` (a vxlan network without a gateway): ``default dev eth0`` instead of
    Docker's second interface on docker_gwbridge, so the container's DNS queries to its upstream
    servers go through OVS to the agent's name server (see docs/docker.md)."""
    routes = None
    if default_on_link and not gateway:
        routes = [{"Destination": "0.0.0.0/0", "RouteType": ROUTE_CONNECTED, "NextHop": ""}]
    return {
        "Err": "",
        "InterfaceName": {"SrcName": src_name, "DstName": "", "DstPrefix": "eth"},
        "Gateway": gateway,
        "GatewayIPv6": gateway_v6,
        "StaticRoutes": routes,
        "DisableGatewayService": routes is not None,
    }


def oper_info_response() -> dict[str, Any]:
    return {"Err": "", "Value": None}


def allocate_network_response() -> dict[str, Any]:
    return {"Err": "", "Options": {}}


def ipam_capabilities() -> dict[str, Any]:
    return {"Error": "", "RequiresMACAddress": False, "RequiresRequestReplay": False}


def address_spaces() -> dict[str, Any]:
    return {"Error": "", "LocalDefaultAddressSpace": "", "GlobalDefaultAddressSpace": ""}


def request_pool_response(pool_id: str, pool: str) -> dict[str, Any]:
    return {"Error": "", "PoolID": pool_id, "Pool": pool, "Data": None}


def request_address_response(address: str) -> dict[str, Any]:
    return {"Error": "", "Address": address, "Data": None}


def activate_response() -> dict[str, Any]:
    return {"Implements": ["NetworkDriver", "IpamDriver"]}


# ---- parsing ---------------------------------------------------------------------------------

M = TypeVar("M", bound=_Req)


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a plugin request body whatever its content type; empty body or ``null`` = ``{}``.
    Errors are ValidationErrors in Go's encoding/json wording (common/jsonwire.py)."""
    body = jsonwire.loads(raw, empty=None)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationError(
            f"json: cannot unmarshal {jsonwire.go_type(body)} into Go value of type map[string]interface {{}}"
        )
    return body


def parse(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``: shapes checked in Go's wording (ValidationError), zero values filled."""
    return model.from_checked(model.WIRE.check(body))  # type: ignore[no-any-return]
