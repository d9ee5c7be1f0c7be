"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 description of netmaster's REST API (docs/rest-api.md).

Design
- Nothing is written twice: the document is generated at run time from what the server itself
  runs on. The paths are the routes registered on the application's router (a route nobody
  describes still appears, marked ``x-undocumented``, and a unit test refuses that); the object
  schemas come from the model field tables (``model.objects.SPECS``: names, types, length, the
  original's regexes, ranges, key fields, link-sets and links); the collections and which of them
  have an inspect ``Oper`` from the type registry (``netmaster.registry``), the ``Oper`` schemas
  (``NetworkOper``, ``EndpointOper``, ...) from the declarations the hooks build them with
  (``model.oper``); the ``/plugin/*``
  request bodies from the Go request structs the handlers decode with (``plugin_routes.REQUESTS``)
  and their answers from ``plugin_routes.RESPONSES`` and the endpoint state record
  (``model.state.EndpointState``).
- Cheap start-up: importing this module builds nothing. The document is built on the first
  request and its JSON text kept for the life of the application (``app[DOC]``).
- Patterns: the model's regexes are Go RE2 expressions applied to the whole value
  (``fullmatch``); JSON Schema patterns are ECMA-262 and unanchored, so each is emitted as
  ``^(?:...)$`` with the escapes ECMA-262 does not know (``\\:``, ``\\-`` outside a class) written
  plainly. Same language, same values.
- Errors are the original's: HTTP 500 ``text/plain`` with the message (every operation lists it);
  unknown routes 404, known route with another method 405.
- Pure apart from the route handler: ``build(routes, version=..., auth=...)`` returns a dict.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from contivpy.common.jsonwire import Struct
from contivpy.model.objects import SPECS, F, Spec
from contivpy.netmaster import registry as reg

PATH = "/api/v1/openapi.json"
DOC: web.AppKey[dict] = web.AppKey("openapi_doc", dict)

_REF = "#/components/schemas/"
_ERROR = {"$ref": "#/components/responses/Error"}
_TEXT_JSON = "text/plain"  # the original's non-model GETs: JSON written without a Content-Type


# --- patterns -------------------------------------------------------------------------------


def ecma(pattern: str) -> str:
    """A Go regex matched with ``fullmatch`` as an anchored ECMA-262 pattern."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == ":" or (nxt == "-" and not in_class):
                out.append(nxt)
            else:
                out.append(c + nxt)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "^(?:" + "".join(out) + ")$"


# --- model objects --------------------------------------------------------------------------


def field_schema(f: F) -> dict[str, Any]:
    if f.kind == "int":
        s: dict[str, Any] = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
        if f.lo is not None:
            s["minimum"] = f.lo
        if f.hi is not None:
            s["maximum"] = f.hi
    elif f.kind == "list":
        s = {"type": "array", "items": {"type": "string"}}
    else:
        s = {"type": "string"}
        if f.maxlen:
            s["maxLength"] = f.maxlen
        if f.pattern is not None:
            s["pattern"] = ecma(f.pattern)
    if f.default is not None:
        s["default"] = f.default
    return s


# A key field without a rule (volumes): anything a URL path segment carries as itself.
_FREE_KEY = "(?:[A-Za-z0-9_][A-Za-z0-9_.-]*)?"


def key_schema(spec: Spec) -> dict[str, Any]:
    """The URL key: the key fields' values joined by ``:`` (each by its own rule)."""
    parts = []
    for name in spec.key_fields:
        p = spec.by_name[name].pattern
        parts.append(f"(?:{ecma(p)[1:-1]})" if p else _FREE_KEY)
    return {"type": "string", "pattern": "^" + ":".join(parts) + "$"}


def _link_sets(spec: Spec) -> dict[str, Any]:
    member = {"type": "object", "additionalProperties": {"$ref": _REF + "Link"}}
    return {
        "type": "object",
        "properties": {n: member for n in spec.link_sets or ()},
        "additionalProperties": False,
    }


def _links(spec: Spec) -> dict[str, Any]:
    names = list(spec.links or ())
    return {
        "type": "object",
        "properties": {n: {"$ref": _REF + "Link"} for n in names},
        "required": names,
        "additionalProperties": False,
    }


def object_schema(spec: Spec) -> dict[str, Any]:
    """A stored object as GET answers it (omitempty: only ``key``, the key fields, ``link-sets``
    and ``links`` are always present)."""
    props: dict[str, Any] = {"key": key_schema(spec)}
    props.update({f.name: field_schema(f) for f in spec.fields})
    required = ["key", *spec.required]
    if spec.link_sets is not None:
        props["link-sets"] = _link_sets(spec)
        required.append("link-sets")
    if spec.links is not None:
        props["links"] = _links(spec)
        required.append("links")
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
        "x-contiv-key-fields": list(spec.key_fields),
    }


def request_schema(spec: Spec) -> dict[str, Any]:
    """A create/update body: unknown fields are refused; ``key`` is replaced by the URL key and
    ``link-sets`` / ``links`` are ignored (netmaster computes them)."""
    props: dict[str, Any] = {"key": {"type": "string", "description": "ignored: the URL key wins"}}
    props.update({f.name: field_schema(f) for f in spec.fields})
    for name, present in (("link-sets", spec.link_sets), ("links", spec.links)):
        if present is not None:
            props[name] = {"type": "object", "description": "ignored: computed by netmaster"}
    return {
        "type": "object",
        "properties": props,
        "required": spec.required,
        "additionalProperties": False,
        "description": "The key fields joined by ':' must equal the URL key (else `Invalid Key`).",
        "x-contiv-key-fields": list(spec.key_fields),
    }


def _inspect_schema(t: reg.ObjType, go: str) -> dict[str, Any]:
    from contivpy.model.oper import OPER

    props: dict[str, Any] = {"Config": {"$ref": _REF + go}}
    if t.has_oper:
        props["Oper"] = {"$ref": _REF + OPER[t.name].GO}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def _json_200(schema: dict[str, Any], description: str = "success") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ops_for_type(t: reg.ObjType, kind: str, method: str) -> dict[str, Any]:
    spec = SPECS[t.name]
    go = spec.go
    key_param = {"name": "key", "in": "path", "required": True, "schema": key_schema(spec)}
    tag = [t.plural]
    if kind == "list":
        return {
            "operationId": f"list{go}",
            "summary": f"all {t.name} objects, sorted by key",
            "tags": tag,
            "responses": {"200": _json_200({"type": "array", "items": {"$ref": _REF + go}}), "500": _ERROR},
        }
    if kind == "inspect":
        return {
            "operationId": f"inspect{go}",
            "summary": f"one {t.name} with its run-time state",
            "tags": tag,
            "parameters": [key_param],
            "responses": {"200": _json_200({"$ref": _REF + "Inspect" + go}), "500": _ERROR},
        }
    if method == "get":
        return {
            "operationId": f"get{go}",
            "summary": f"one {t.name} (500 `{t.name} not found` when absent)",
            "tags": tag,
            "parameters": [key_param],
            "responses": {"200": _json_200({"$ref": _REF + go}), "500": _ERROR},
        }
    ok = {} if t.invalid else {"200": None}
    if method in ("post", "put"):
        if ok:
            ok["200"] = _json_200({"$ref": _REF + go}, "the stored object")
        return {
            "operationId": f"{'create' if method == 'post' else 'update'}{go}",
            "summary": f"create or update a {t.name}"
            + (" (always refused: `Invalid object type`)" if t.invalid else ""),
            "tags": tag,
            "parameters": [key_param],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _REF + go + "Request"}}},
            },
            "responses": {**ok, "500": _ERROR},
        }
    if ok:
        ok["200"] = _json_200({"type": "string", "description": "the deleted key"})
    return {
        "operationId": f"delete{go}",
        "summary": f"delete a {t.name}",
        "tags": tag,
        "parameters": [key_param],
        "responses": {**ok, "500": _ERROR},
    }


# --- /plugin/* ------------------------------------------------------------------------------


def go_field_schema(kind: Any) -> dict[str, Any]:
    if isinstance(kind, Struct):
        return struct_schema(kind)
    if isinstance(kind, tuple) and kind[0] == "[]":
        return {"type": ["array", "null"], "items": go_field_schema(kind[1])}
    return {
        "string": {"type": "string"},
        "bool": {"type": "boolean"},
        "int": {"type": "integer"},
        "map[string]string": {"type": "object", "additionalProperties": {"type": "string"}},
        "map[string]interface {}": {"type": "object"},
    }.get(kind, {})


def struct_schema(s: Struct) -> dict[str, Any]:
    """A Go request struct: field names match case-insensitively, unknown fields are ignored."""
    return {
        "type": "object",
        "title": s.go,
        "properties": {n: go_field_schema(k) for n, k in s.fields.items()},
    }


def record_schema(cls: type) -> dict[str, Any]:
    """A ``model.state`` record (every field always present, like the original's state structs,
    but contivpy's additions in ``OMITEMPTY``, written only when set)."""
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # the record's fields only (not its class-level tables)
        json_name = getattr(cls, "JSON", {}).get(f.name, f.name)
        props[json_name] = _hint_schema(hints[f.name])
    optional = set(getattr(cls, "OMITEMPTY", ()))
    required = [n for n in props if n not in optional]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _hint_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is str:
        return {"type": "string"}
    if hint is int:
        return {"type": "integer"}
    if hint is bool:
        return {"type": "boolean"}
    if origin is dict:
        return {"type": "object", "additionalProperties": _hint_schema(args[1]) if args else {}}
    if origin is list:
        return {"type": "array", "items": _hint_schema(args[0]) if args else {}}
    if args and type(None) in args:  # X | None
        inner = _hint_schema(next(a for a in args if a is not type(None)))
        t = inner.get("type")
        return {**inner, "type": [t, "null"]} if isinstance(t, str) else {}
    return {}


def oper_schema(cls: type) -> dict[str, Any]:
    """An inspect ``Oper`` declaration (``model.oper``): every field omitempty, so a present field
    is never empty (a string has a character, a list an item, an integer is not 0); nested Oper
    lists refer to their component; nothing undeclared is allowed."""
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for name in cls.NAMES:  # type: ignore[attr-defined]
        hint = hints[name]
        args = typing.get_args(hint)
        if typing.get_origin(hint) is list and args and hasattr(args[0], "NAMES"):
            s: dict[str, Any] = {"type": "array", "items": {"$ref": _REF + args[0].GO}}
        else:
            s = _hint_schema(hint)
        if s.get("type") == "string":
            s["minLength"] = 1
        elif s.get("type") == "array":
            s["minItems"] = 1
        elif s.get("type") == "integer":
            s["not"] = {"const": 0}
        props[name] = s
    return {
        "type": "object",
        "title": cls.GO,  # type: ignore[attr-defined]
        "description": "fields in the original's struct order; empty ones are left out (omitempty)",
        "properties": props,
        "additionalProperties": False,
    }


def _plugin_op(path: str) -> dict[str, Any]:
    from contivpy.netmaster.api import plugin_routes

    name = path.rsplit("/", 1)[-1]
    answer = plugin_routes.RESPONSES.get(path, {})
    return {
        "operationId": name,
        "summary": f"the original's {plugin_routes.REQUESTS[path].go}",
        "tags": ["plugin"],
        "description": "Only a body sent as `Content-Type: application/json` matches the route "
        "(any other answers 404).",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + plugin_routes.REQUESTS[path].short}}},
        },
        "responses": {"200": _json_200(answer), "500": _ERROR},
    }


# --- everything else ------------------------------------------------------------------------


def _text_json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_TEXT_JSON: {"schema": schema}}}


def _strs() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}}


def _obj(props: dict[str, Any], required: bool = True) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        s["required"] = list(props)
    return s


_S = {"type": "string"}
_READY = _obj(
    {
        "ready": {"type": "boolean"},
        "checks": {
            "type": "object",
            "additionalProperties": _obj({"ok": {"type": "boolean"}, "detail": _S}),
        },
    }
)
_USER = _obj({"username": _S, "role": _S, "tenants": _strs()})


def _other_ops() -> dict[tuple[str, str], dict[str, Any]]:
    text = {"description": "text", "content": {"text/plain": {"schema": _S}}}
    return {
        ("get", "/version"): {
            "summary": "build information (JSON, served as text/plain like the original)",
            "responses": {
                "200": _text_json(_obj({"GitCommit": _S, "Version": _S, "BuildTime": _S}), "version")
            },
        },
        ("get", "/info"): {
            "summary": "leadership and registered nodes",
            "responses": {
                "200": _text_json(
                    _obj(
                        {
                            "current-state": {"enum": ["leader", "follower"]},
                            "leader-ip": _S,
                            "local-ip": _S,
                            "netmaster-nodes": _strs(),
                            "netplugin-nodes": _strs(),
                        }
                    ),
                    "info",
                ),
                "500": _ERROR,
            },
        },
        ("get", "/services"): {
            "summary": "every service-LB state record",
            "responses": {
                "200": _text_json({"type": "array", "items": {"type": "object"}}, "states"),
                "500": _ERROR,
            },
        },
        ("get", "/service/{id}"): {
            "summary": "one service-LB state record (`<service>:<tenant>`)",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _text_json({"type": "object"}, "state"), "500": _ERROR},
        },
        ("get", "/debug/ofnet"): {
            "summary": "the ofnet master's dump",
            "responses": {
                "200": _text_json(
                    _obj(
                        {
                            "MyAddr": _S,
                            "MyPort": {"type": "integer"},
                            "AgentDb": {"type": "object"},
                            "EndpointDb": {"type": "object"},
                            "PolicyDb": {"type": "object"},
                            "AgentStats": {},
                        }
                    ),
                    "dump",
                )
            },
        },
        ("get", "/debug/docknets"): {
            "summary": "the Docker network reconciler (a contivpy addition)",
            "responses": {
                "200": _text_json(
                    _obj(
                        {
                            "running": {"type": "boolean"},
                            "synced": {"type": "boolean"},
                            "networks": {"type": "object"},
                        },
                        required=False,
                    ),
                    "status",
                )
            },
        },
        ("delete", "/debug/epcleanup/tenant/{tenant}/{category}/{id}"): {
            "summary": "remove stale endpoints of a network (`net`), group (`group`) or one endpoint (`ep`)",
            "parameters": [
                {"name": "tenant", "in": "path", "required": True, "schema": _S},
                {
                    "name": "category",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["net", "group", "ep"]},
                },
                {"name": "id", "in": "path", "required": True, "schema": _S},
            ],
            "responses": {
                "200": _json_200(_obj({"endpoints": _strs(), "reclaimed": _strs()})),
                "500": _ERROR,
            },
        },
        ("get", "/healthz"): {"summary": "liveness", "responses": {"200": text}},
        ("get", "/readyz"): {
            "summary": "readiness (etcd answers; a leader is known)",
            "responses": {"200": _json_200(_READY, "ready"), "503": _json_200(_READY, "not ready")},
        },
        ("get", "/metrics"): {
            "summary": "Prometheus metrics (text format 0.0.4)",
            "responses": {"200": text},
        },
        ("get", PATH): {
            "summary": "this document",
            "responses": {"200": _json_200({"type": "object"}, "OpenAPI 3.1 document")},
        },
        # --auth only (docs/security.md)
        ("post", "/api/v1/auth_proxy/login/"): {
            "summary": "log in: a token for `x-auth-token`",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _obj({"username": _S, "password": _S})}},
            },
            "responses": {"200": _json_200(_obj({"token": _S})), "401": text, "400": text},
        },
        ("get", "/api/v1/auth_proxy/local_users/"): {
            "summary": "users, sorted by name (admin)",
            "responses": {"200": _json_200({"type": "array", "items": _USER}), "500": _ERROR},
        },
        ("post", "/api/v1/auth_proxy/local_users/"): {
            "summary": "create a user (admin)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"username": _S, "password": _S, "role": _S, "tenants": _strs()},
                            "required": ["username", "password"],
                        }
                    }
                },
            },
            "responses": {"200": _json_200(_USER), "400": text, "500": _ERROR},
        },
        ("get", "/api/v1/auth_proxy/local_users/{name}/"): {
            "summary": "one user (admin)",
            "responses": {"200": _json_200(_USER), "500": _ERROR},
        },
        ("patch", "/api/v1/auth_proxy/local_users/{name}/"): {
            "summary": "change a user's password, role or tenants (admin)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"password": _S, "role": _S, "grant": _strs(), "revoke": _strs()},
                        }
                    }
                },
            },
            "responses": {"200": _json_200(_USER), "400": text, "500": _ERROR},
        },
        ("delete", "/api/v1/auth_proxy/local_users/{name}/"): {
            "summary": "delete a user (admin)",
            "responses": {"200": _json_200(_S), "500": _ERROR},
        },
    }


# --- the document ---------------------------------------------------------------------------

_MODEL_ROUTES = {
    "/api/v1/{plural}/": "list",
    "/api/v1/{plural}/{key}/": "object",
    "/api/v1/inspect/{plural}/{key}/": "inspect",
}


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [p[1:-1] for p in path.split("/") if p.startswith("{") and p.endswith("}")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


def build(routes: Iterable[tuple[str, str]], *, version: str = "", auth: bool = False) -> dict[str, Any]:
    """The document for ``routes``: (HTTP method, canonical route path) pairs of a router."""
    from contivpy.model.oper import STRUCTS
    from contivpy.model.state import EndpointState
    from contivpy.netmaster.api import plugin_routes

    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {
        "Link": {
            "type": "object",
            "properties": {"type": _S, "key": _S},
            "additionalProperties": False,
        },
    }
    others = _other_ops()

    def add(path: str, method: str, op: dict[str, Any]) -> None:
        paths.setdefault(path, {})[method] = op

    for method, route in routes:
        m = method.lower()
        if m == "head":  # aiohttp's implicit HEAD of every GET
            continue
        kind = _MODEL_ROUTES.get(route)
        if kind is not None:
            for t in reg.TYPES.values():
                prefix = "/api/v1/inspect/" if kind == "inspect" else "/api/v1/"
                path = prefix + t.plural + ("/" if kind == "list" else "/{key}/")
                add(path, m, _ops_for_type(t, kind, m))
            if kind == "inspect":
                add(
                    "/api/v1/inspect/endpoints/{key}/",
                    m,
                    {
                        "operationId": "inspectEndpoint",
                        "summary": "the first endpoint whose endpoint id, container id or name contains `key`",
                        "tags": ["endpoints"],
                        "parameters": [
                            {
                                "name": "key",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "string", "pattern": "^[^/]+$"},
                            }
                        ],
                        "responses": {
                            "200": _json_200(
                                _obj({"Oper": {"$ref": _REF + "EndpointOper"}})
                                | {"additionalProperties": False}
                            ),
                            "500": _ERROR,
                        },
                    },
                )
            continue
        if route in plugin_routes.REQUESTS and m == "post":
            add(route, m, _plugin_op(route))
            continue
        op = others.get((m, route))
        if op is None:
            op = {
                "summary": "not described",
                "x-undocumented": True,
                "responses": {"default": {"description": "any"}},
            }
        op = dict(op)
        if "{" in route and "parameters" not in op:
            op["parameters"] = _path_params(route)
        add(route, m, op)

    for t in reg.TYPES.values():
        spec = SPECS[t.name]
        schemas[spec.go] = object_schema(spec)
        schemas[spec.go + "Request"] = request_schema(spec)
        schemas["Inspect" + spec.go] = _inspect_schema(t, spec.go)
    for s in plugin_routes.REQUESTS.values():
        schemas[s.short] = struct_schema(s)
        for kind in s.fields.values():
            if isinstance(kind, Struct):
                schemas[kind.short] = struct_schema(kind)
    schemas["EndpointState"] = record_schema(EndpointState)
    for cls in STRUCTS:
        schemas[cls.GO] = oper_schema(cls)

    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "contivpy netmaster REST API",
            "version": version or "0",
            "description": "Generated by netmaster from its model layer and route table (docs/rest-api.md). "
            "Every error is HTTP 500 text/plain carrying the message, like the original.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "the request was refused or failed: the message, then a newline",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {
            "token": {"type": "apiKey", "in": "header", "name": "x-auth-token"}
        }
        doc["security"] = [{"token": []}]
    return doc


# --- the route ------------------------------------------------------------------------------


def routes_of(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path:
            out.append((route.method, path))
    return out


async def get_openapi(request: web.Request) -> web.Response:
    app = request.app
    cached = app[DOC]
    if not cached:  # first request: build once (start-up pays nothing)
        from contivpy.netmaster.config import version_info

        doc = build(
            routes_of(app),
            version=version_info().get("Version", ""),
            auth=bool(getattr(app.get(_config_key()), "auth", False)),
        )
        cached["body"] = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
    return web.Response(body=cached["body"], headers={"Content-Type": "application/json"})


def _config_key():
    from contivpy.netmaster.api.keys import CONFIG

    return CONFIG


def add_routes(app: web.Application) -> None:
    app[DOC] = {}  # filled by the first request (the application's state is frozen once started)
    app.router.add_get(PATH, get_openapi)


__all__ = [
    "PATH",
    "build",
    "add_routes",
    "ecma",
    "object_schema",
    "oper_schema",
    "request_schema",
    "routes_of",
]
