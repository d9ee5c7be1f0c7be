"""Generic model routes driven by the registry (docs/original.md §2.1).

    GET    /api/v1/<plural>/                 list, sorted by key (the original: random order)
    GET    /api/v1/<plural>/<key>/           one object
    POST   /api/v1/<plural>/<key>/           create or update (PUT is the same handler)
    DELETE /api/v1/<plural>/<key>/           delete; body = the key as a JSON string
    GET    /api/v1/inspect/<plural>/<key>/   {"Config": ..., "Oper": ...}
    GET    /api/v1/inspect/endpoints/<id>/   {"Oper": EndpointOper} (``endpoints.endpoint_inspect``)

An ``Oper`` is the hook's ``oper()`` answer, rendered by its declaration (``model.oper``): the
original's field order and omitempty come from there, nothing is re-sorted here.

Unknown plurals and missing trailing slashes fall through to the router's 404. Success bodies are
JSON + "\\n" with ``Content-Type: application/json``; stored objects are already canonical JSON,
so lists are served by joining the stored texts (no re-encoding).
"""

from __future__ import annotations

import json

from aiohttp import web

from contivpy.common.errors import ValidationError
from contivpy.common.httpserve import read_body
from contivpy.model import codec, objects
from contivpy.netmaster import registry as reg
from contivpy.netmaster.api.keys import CRUD


def _json(text: str) -> web.Response:
    # Exactly "application/json" like the original (aiohttp would append a charset).
    return web.Response(body=(text + "\n").encode(), headers={"Content-Type": "application/json"})


def _type(request: web.Request) -> reg.ObjType:
    t = reg.BY_PLURAL.get(request.match_info["plural"])
    if t is None:
        raise web.HTTPNotFound()
    return t


async def list_objs(request: web.Request) -> web.Response:
    t = _type(request)
    raw = await request.app[CRUD].list_raw(t.name)
    return _json("[" + ",".join(raw) + "]")


async def get_obj(request: web.Request) -> web.Response:
    t = _type(request)
    obj = await request.app[CRUD].get(t.name, request.match_info["key"])
    return _json(codec.dumps(t.name, obj))


async def _body(request: web.Request) -> bytes:
    return await read_body(request, objects.MAX_BODY)


async def put_obj(request: web.Request) -> web.Response:
    t = _type(request)
    key = request.match_info["key"]
    body = codec.decode(t.name, await _body(request))
    if t.invalid:
        body["key"] = key
        codec.validate(t.name, body)
        raise ValidationError("Invalid object type")
    obj = await request.app[CRUD].create_or_update(t.name, key, body)
    return _json(codec.dumps(t.name, obj))


async def delete_obj(request: web.Request) -> web.Response:
    t = _type(request)
    key = request.match_info["key"]
    await request.app[CRUD].delete(t.name, key)
    return _json(json.dumps(key))


async def inspect_obj(request: web.Request) -> web.Response:
    plural = request.match_info["plural"]
    key = request.match_info["key"]
    crud = request.app[CRUD]
    if plural == "endpoints":
        from contivpy.netmaster.endpoints import endpoint_inspect  # on first use (netmaster's start-up)

        return _json(json.dumps(await endpoint_inspect(crud.kv, key), separators=(",", ":")))
    t = _type(request)
    out = await crud.inspect(t.name, key)
    text = '{"Config":' + codec.dumps(t.name, out["Config"])
    if "Oper" in out:
        text += ',"Oper":' + json.dumps(out["Oper"], separators=(",", ":"))
    return _json(text + "}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/inspect/{plural}/{key}/", inspect_obj)
    app.router.add_get("/api/v1/{plural}/", list_objs)
    app.router.add_get("/api/v1/{plural}/{key}/", get_obj)
    app.router.add_post("/api/v1/{plural}/{key}/", put_obj)
    app.router.add_put("/api/v1/{plural}/{key}/", put_obj)
    app.router.add_delete("/api/v1/{plural}/{key}/", delete_obj)


__all__ = ["add_routes"]
