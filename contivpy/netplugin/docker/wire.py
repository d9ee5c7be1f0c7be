"""Wire types of the Docker libnetwork remote NetworkDriver and IpamDriver protocols.

Field names are Docker's (libnetwork ``drivers/remote/api`` and ``ipams/remote/api``), exactly,
because they are the interface. Design and invariants:

- Requests are parsed leniently: unknown fields are ignored and ``null`` maps/lists (Docker sends
  ``"Options": null`` for container addresses) become empty ones, so a request Docker really sends
  never fails validation. A body that is not a JSON object, or a field of the wrong type, raises
  ``ValidationError`` (one clear message, no pydantic dump).
- Responses carry the original's success bodies: NetworkDriver replies embed ``"Err": ""`` and
  IpamDriver replies ``"Error": ""`` (libnetwork decodes those names). Failures never use these
  models: the server answers them once with HTTP 500 and ``{"Err": "<message>"}``, which is what
  libnetwork's plugin client reads from a non-200 reply.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict

from contivpy.common import jsonwire
from contivpy.common.errors import ValidationError


def _none_to_dict(v: Any) -> Any:
    return {} if v is None else v


def _none_to_list(v: Any) -> Any:
    return [] if v is None else v


def _none_to_str(v: Any) -> Any:
    return "" if v is None else v


Opts = Annotated[dict[str, Any], BeforeValidator(_none_to_dict)]
Str = Annotated[str, BeforeValidator(_none_to_str)]


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")


class IPAMData(_Req):
    AddressSpace: Str = ""
    Pool: Str = ""
    Gateway: Str = ""
    AuxAddresses: Opts = {}


IPAMList = Annotated[list[IPAMData], BeforeValidator(_none_to_list)]


# ---- NetworkDriver requests ----------------------------------------------------------------


class CreateNetworkRequest(_Req):
    NetworkID: Str = ""
    Options: Opts = {}
    IPv4Data: IPAMList = []
    IPv6Data: IPAMList = []


class AllocateNetworkRequest(CreateNetworkRequest):
    pass


class NetworkRequest(_Req):
    """DeleteNetwork, FreeNetwork."""

    NetworkID: Str = ""


class EndpointInterface(_Req):
    Address: Str = ""
    AddressIPv6: Str = ""
    MacAddress: Str = ""


class CreateEndpointRequest(_Req):
    NetworkID: Str = ""
    EndpointID: Str = ""
    Interface: Annotated[EndpointInterface, BeforeValidator(_none_to_dict)] = EndpointInterface()
    Options: Opts = {}


class EndpointRequest(_Req):
    """DeleteEndpoint, Leave, EndpointOperInfo, Program/RevokeExternalConnectivity."""

    NetworkID: Str = ""
    EndpointID: Str = ""
    Options: Opts = {}


class JoinRequest(_Req):
    NetworkID: Str = ""
    EndpointID: Str = ""
    SandboxKey: Str = ""
    Options: Opts = {}


class DiscoveryNotification(_Req):
    DiscoveryType: int = 0
    DiscoveryData: Any = None


# ---- IpamDriver requests ----------------------------------------------------------------------


class RequestPoolRequest(_Req):
    AddressSpace: Str = ""
    Pool: Str = ""
    SubPool: Str = ""
    Options: Opts = {}
    V6: bool = False


class ReleasePoolRequest(_Req):
    PoolID: Str = ""


class RequestAddressRequest(_Req):
    PoolID: Str = ""
    Address: Str = ""
    Options: Opts = {}


class ReleaseAddressRequest(_Req):
    PoolID: Str = ""
    Address: Str = ""


# ---- responses (plain dicts: exact key order of the original's JSON) ---------------------------

GATEWAY_REQUEST = "com.docker.network.gateway"
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

M = TypeVar("M", bound=BaseModel)


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


_GO_KIND = {
    "string_type": "string",
    "int_type": "int",
    "int_parsing": "int",
    "int_from_float": "int",
    "bool_type": "bool",
    "bool_parsing": "bool",
    "dict_type": "map[string]interface {}",
    "list_type": "[]",
}


def parse(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if not isinstance(p, int)]
        where = ".".join([model.__name__, *loc])
        kind = _GO_KIND.get(first.get("type", ""))
        if kind is None and first.get("type") in ("model_type", "model_attributes_type"):
            kind = "struct"
        if kind is not None:
            got = jsonwire.go_type(first.get("input"))
            raise ValidationError(
                f"json: cannot unmarshal {got} into Go struct field {where} of type {kind}"
            ) from None
        raise ValidationError(f"invalid request: {where}: invalid value") from None
