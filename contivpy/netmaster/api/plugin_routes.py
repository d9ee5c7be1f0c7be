"""aiohttp handlers for netmaster's /plugin/* API (docs/original.md §2.4, docs/original.md R4.4).

    POST /plugin/allocAddress     {NetworkID, AddressPool, PreferredIPv4Address} -> {NetworkID, IPv4Address}
    POST /plugin/releaseAddress   {NetworkID, IPv4Address}                       -> "success"
    POST /plugin/createEndpoint   {TenantName, NetworkName, ServiceName, EndpointID, EPCommonName,
                                   ConfigEP{Container, Host, IPAddress, IPv6Address, ServiceName}}
                                                                                  -> {EndpointConfig: <ep state>}
    POST /plugin/deleteEndpoint   {TenantName, NetworkName, ServiceName, EndpointID, IPv4Address}
                                  (+ Host, and contivpy's KeepAddress: see endpoints.py)
                                                                                  -> {EndpointConfig: <ep state>}
    POST /plugin/updateEndpoint   {IPAddress, ContainerID, Labels, Tenant, Network, Event,
                                   EndpointID, EPCommonName, + contivpy's Aliases} -> {IPAddress}

As the original's route matcher, a POST without ``Content-Type: application/json`` does not match
(404 ``404 page not found``). Success: 200, ``application/json``, body + "\\n". Errors: HTTP 500
``text/plain`` with the message + "\\n" (no stack trace): every error goes to the app's one error
mapping (errors.py ``error_middleware``; an app mounting these routes must install it).

The boundary (docs/rest-api.md): the whole body is read (``httpserve.read_body``: split over any
number of TCP segments, at most 1 MiB), decoded by ``common/jsonwire`` (Go's encoding/json
wording: ``invalid character ...``, ``unexpected end of JSON input``, ``exceeded max depth``) and
checked against the request's Go struct (``REQUESTS``: ``json: cannot unmarshal number into Go
struct field CreateEndpointRequest.TenantName of type string``). Handlers get a dict whose present
fields have the declared types, so no Python error text can come out of them.

``add_plugin_routes(app, allocator)`` registers them; the ``Allocator`` (endpoints.py) is kept in
``app[ALLOCATOR]``. netmaster passes none: its Allocator is ``allocator_of(crud)``, made on first use
(a request, or the leader start's provider prune), so that endpoints.py, the IPAM and the state
records stay off the way to netmaster's first answer (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from contivpy.common import jsonwire
from contivpy.common.httpserve import read_body
from contivpy.common.jsonwire import Struct
from contivpy.netmaster.api.keys import CRUD

if TYPE_CHECKING:
    from contivpy.netmaster.endpoints import Allocator

ALLOCATOR: web.AppKey[Allocator] = web.AppKey("contiv_allocator")
MAX_BODY = 1 << 20


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")) + "\n", content_type="application/json")


def _not_found() -> web.Response:
    return web.Response(status=404, text="404 page not found\n", content_type="text/plain", charset="utf-8")


_S = "string"
CONFIG_EP = Struct(
    "intent.ConfigEP", {"Container": _S, "Host": _S, "IPAddress": _S, "IPv6Address": _S, "ServiceName": _S}
)
REQUESTS: dict[str, Struct] = {
    "/plugin/allocAddress": Struct(
        "master.AddressAllocRequest", {"AddressPool": _S, "NetworkID": _S, "PreferredIPv4Address": _S}
    ),
    "/plugin/releaseAddress": Struct("master.AddressReleaseRequest", {"NetworkID": _S, "IPv4Address": _S}),
    "/plugin/createEndpoint": Struct(
        "master.CreateEndpointRequest",
        {
            "TenantName": _S,
            "NetworkName": _S,
            "ServiceName": _S,
            "EndpointID": _S,
            "EPCommonName": _S,
            "ConfigEP": CONFIG_EP,
        },
    ),
    "/plugin/deleteEndpoint": Struct(
        "master.DeleteEndpointRequest",
        {
            "TenantName": _S,
            "NetworkName": _S,
            "ServiceName": _S,
            "EndpointID": _S,
            "IPv4Address": _S,
            "Host": _S,
            "KeepAddress": "bool",  # contivpy: the caller's IPAM releases the address (endpoints.py)
        },
    ),
    "/plugin/updateEndpoint": Struct(
        "master.UpdateEndpointRequest",
        {
            "IPAddress": _S,
            "ContainerID": _S,
            "Labels": "map[string]string",
            "Tenant": _S,
            "Network": _S,
            "Event": _S,
            "EndpointID": _S,
            "EPCommonName": _S,
            "Aliases": "[]string",  # contivpy: the container's --network-alias names (DNS)
        },
    ),
}

# What each route answers on success (JSON Schema; the API description, api/openapi.py, serves it).
_EP_CONFIG = {
    "type": "object",
    "properties": {"EndpointConfig": {"$ref": "#/components/schemas/EndpointState"}},
    "required": ["EndpointConfig"],
    "additionalProperties": False,
}
RESPONSES: dict[str, dict[str, Any]] = {
    "/plugin/allocAddress": {
        "type": "object",
        "properties": {"NetworkID": {"type": "string"}, "IPv4Address": {"type": "string"}},
        "required": ["NetworkID", "IPv4Address"],
        "additionalProperties": False,
    },
    "/plugin/releaseAddress": {"const": "success"},
    "/plugin/createEndpoint": _EP_CONFIG,
    "/plugin/deleteEndpoint": _EP_CONFIG,
    "/plugin/updateEndpoint": {
        "type": "object",
        "properties": {"IPAddress": {"type": "string"}},
        "required": ["IPAddress"],
        "additionalProperties": False,
    },
}

Handler = Callable[["Allocator", dict], Awaitable[Any]]


def _wrap(path: str, fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    shape = REQUESTS[path]

    async def handler(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _not_found()
        body = shape.check(jsonwire.loads(await read_body(request, MAX_BODY), empty="EOF"))
        return _json(await fn(app_allocator(request.app), body))

    return handler


async def _alloc(a: Allocator, b: dict) -> Any:
    return await a.alloc_address(
        b.get("NetworkID", ""), b.get("AddressPool", ""), b.get("PreferredIPv4Address", "")
    )


async def _release(a: Allocator, b: dict) -> Any:
    await a.release_address(b.get("NetworkID", ""), b.get("IPv4Address", ""))
    return "success"


async def _create(a: Allocator, b: dict) -> Any:
    return {"EndpointConfig": (await a.create_endpoint(b)).to_dict()}


async def _delete(a: Allocator, b: dict) -> Any:
    return {"EndpointConfig": (await a.delete_endpoint(b)).to_dict()}


async def _update(a: Allocator, b: dict) -> Any:
    return await a.update_endpoint(b)


ROUTES: dict[str, Handler] = {
    "/plugin/allocAddress": _alloc,
    "/plugin/releaseAddress": _release,
    "/plugin/createEndpoint": _create,
    "/plugin/deleteEndpoint": _delete,
    "/plugin/updateEndpoint": _update,
}


def allocator_of(crud: Any) -> Allocator:
    """netmaster's one Allocator, ``crud.extras["allocator"]``: made on first use over ``crud.kv``
    (netmaster's fenced store) with its service-provider hook (``/plugin/updateEndpoint``
    start/die -> providers). The event loop is the only thread: it is made once."""
    allocator = crud.extras.get("allocator")
    if allocator is None:
        from contivpy.netmaster.endpoints import Allocator

        allocator = Allocator(crud.kv, getattr(crud.config, "cluster_mode", "docker") or "docker")
        allocator.provider_update = allocator.providers.update
        crud.extras["allocator"] = allocator
    return allocator


def app_allocator(app: web.Application) -> Allocator:
    """``app[ALLOCATOR]`` when the routes were mounted with one, else netmaster's ``allocator_of``."""
    allocator = app.get(ALLOCATOR)
    return allocator if allocator is not None else allocator_of(app[CRUD])


def add_plugin_routes(app: web.Application, allocator: Allocator | None = None) -> None:
    """Register the /plugin/* POST routes; ``allocator`` (if given) is kept in ``app[ALLOCATOR]``,
    else the handlers use ``allocator_of(app[CRUD])``."""
    if allocator is not None:
        app[ALLOCATOR] = allocator
    for path, fn in ROUTES.items():
        app.router.add_post(path, _wrap(path, fn))


__all__ = [
    "add_plugin_routes",
    "allocator_of",
    "app_allocator",
    "ALLOCATOR",
    "REQUESTS",
    "RESPONSES",
    "ROUTES",
]
