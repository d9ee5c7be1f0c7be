"""aiohttp handlers for netmaster's /plugin/* API (contiv-reference §2.4, transcripts §4.4).

    POST /plugin/allocAddress     {NetworkID, AddressPool, PreferredIPv4Address} -> {NetworkID, IPv4Address}
    POST /plugin/releaseAddress   {NetworkID, IPv4Address}                       -> "success"
    POST /plugin/createEndpoint   {TenantName, NetworkName, ServiceName, EndpointID, EPCommonName,
                                   ConfigEP{Container, Host, IPAddress, IPv6Address, ServiceName}}
                                                                                  -> {EndpointConfig: <ep state>}
    POST /plugin/deleteEndpoint   {TenantName, NetworkName, ServiceName, EndpointID, IPv4Address}
                                                                                  -> {EndpointConfig: <ep state>}
    POST /plugin/updateEndpoint   {IPAddress, ContainerID, Labels, Tenant, Network, Event,
                                   EndpointID, EPCommonName}                      -> {IPAddress}

As the original's route matcher, a POST without ``Content-Type: application/json`` does not match
(404 ``404 page not found``). Success: 200, ``application/json``, body + "\\n". Errors: HTTP 500
``text/plain`` with the message + "\\n" (no stack trace); a non-ContivError is logged and answered
with a generic message, never a traceback.

``add_plugin_routes(app, allocator)`` registers them; the ``Allocator`` (endpoints.py) is kept in
``app[ALLOCATOR]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from contivpy.common.errors import ContivError
from contivpy.netmaster.endpoints import Allocator

log = logging.getLogger("netmaster.plugin")

ALLOCATOR: web.AppKey[Allocator] = web.AppKey("contiv_allocator", Allocator)
MAX_BODY = 1 << 20


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")) + "\n", content_type="application/json")


def _error(msg: str) -> web.Response:
    return web.Response(status=500, text=msg.rstrip("\n") + "\n", content_type="text/plain", charset="utf-8")


def _not_found() -> web.Response:
    return web.Response(status=404, text="404 page not found\n", content_type="text/plain", charset="utf-8")


Handler = Callable[[Allocator, dict], Awaitable[Any]]


def _wrap(fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _not_found()
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _error("request body too large")
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(f"invalid JSON: {exc}")
        if not isinstance(body, dict):
            return _error("invalid request: a JSON object is required")
        try:
            return _json(await fn(request.app[ALLOCATOR], body))
        except ContivError as exc:
            return _error(str(exc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("bad /plugin request %s: %r", request.path, exc)
            return _error(f"invalid request: {exc}")
        except Exception:
            log.exception("internal error in %s", request.path)
            return _error("internal error")

    return handler


def _s(body: dict, name: str) -> str:
    v = body.get(name) or ""
    if not isinstance(v, str):
        raise ValueError(f"{name} must be a string")
    return v


async def _alloc(a: Allocator, b: dict) -> Any:
    return await a.alloc_address(_s(b, "NetworkID"), _s(b, "AddressPool"), _s(b, "PreferredIPv4Address"))


async def _release(a: Allocator, b: dict) -> Any:
    await a.release_address(_s(b, "NetworkID"), _s(b, "IPv4Address"))
    return "success"


async def _create(a: Allocator, b: dict) -> Any:
    if b.get("ConfigEP") is not None and not isinstance(b["ConfigEP"], dict):
        raise ValueError("ConfigEP must be an object")
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


def add_plugin_routes(app: web.Application, allocator: Allocator) -> None:
    """Register the /plugin/* POST routes and store ``allocator`` in ``app[ALLOCATOR]``."""
    app[ALLOCATOR] = allocator
    for path, fn in ROUTES.items():
        app.router.add_post(path, _wrap(fn))


__all__ = ["add_plugin_routes", "ALLOCATOR", "ROUTES"]
