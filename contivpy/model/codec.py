"""Codec of the REST objects (field tables in ``model.objects``): decode a request body, validate
it with the original's schema checks and messages, render canonical JSON.

- ``decode(type, raw)``: Go-``encoding/json``-like errors for malformed JSON, non-objects,
  unknown fields and wrong types (ValidationError, never a traceback); ``null`` = absent.
- ``validate(type, obj)``: key first (``Invalid Key``), then per field length / regex / range,
  filling defaults.
- ``canonical`` / ``dumps``: declaration order, Go ``omitempty``, ``link-sets``/``links`` shapes.
- ``default_global(fwd_mode)``: the global object netmaster creates at first start.
Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from contivpy.common import jsonwire
from contivpy.common.errors import ValidationError
from contivpy.model.objects import MAX_BODY, SPECS, F

# --- decode ---------------------------------------------------------------------------------


def _go_kind(f: F) -> str:
    return {"str": "string", "int": "int", "list": "[]string"}[f.kind]


def decode(obj_type: str, raw: bytes | str) -> dict[str, Any]:
    """Parse a request body into a canonical object (no validation of values)."""
    spec = SPECS[obj_type]
    if len(raw) > MAX_BODY:
        raise ValidationError(f"request body too large (limit {MAX_BODY} bytes)")
    data = jsonwire.loads(raw, empty="EOF")  # Go wording for syntax, UTF-8 and depth errors
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = jsonwire.go_type(data).split(" ")[0]
        raise ValidationError(f"json: cannot unmarshal {kind} into Go value of type contivModel.{spec.go}")
    out: dict[str, Any] = {}
    for name, v in data.items():
        if name in ("link-sets", "links") and (
            (name == "link-sets" and spec.link_sets is not None)
            or (name == "links" and spec.links is not None)
        ):
            if v is not None and not isinstance(v, dict):
                raise ValidationError(
                    f"json: cannot unmarshal {jsonwire.go_type(v)} into Go struct field {spec.go}.{name}"
                )
            continue  # links are computed by netmaster; request values are ignored
        if name == "key":
            if v is not None and not isinstance(v, str):
                raise ValidationError(
                    f"json: cannot unmarshal {jsonwire.go_type(v)} into Go struct field {spec.go}.key of type string"
                )
            continue  # the URL key wins
        f = spec.by_name.get(name)
        if f is None:
            raise ValidationError(f'json: unknown field "{name}"')
        if v is None:
            continue
        ok = (
            (f.kind == "str" and isinstance(v, str))
            or (f.kind == "int" and isinstance(v, int) and not isinstance(v, bool))
            or (f.kind == "list" and isinstance(v, list) and all(isinstance(x, str) for x in v))
        )
        if f.kind == "int" and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        if f.kind == "int" and ok and not -(2**63) <= v < 2**63:
            ok = False
        if not ok and f.kind == "int" and isinstance(v, int | float) and not isinstance(v, bool):
            raise ValidationError(
                f"json: cannot unmarshal number {json.dumps(v)} into Go struct field {spec.go}.{name} of type int"
            )
        if not ok:
            raise ValidationError(
                f"json: cannot unmarshal {jsonwire.go_type(v)} into Go struct field {spec.go}.{name} of type {_go_kind(f)}"
            )
        if v == "" or v == 0 or v == []:
            continue
        out[name] = v
    return out


# --- validate -------------------------------------------------------------------------------


def validate(obj_type: str, obj: dict[str, Any]) -> None:
    """Original schema validation; fills defaults in place. Raises ValidationError."""
    spec = SPECS[obj_type]
    want = ":".join(obj.get(k, "") for k in spec.key_fields)
    if obj.get("key", "") != want:
        raise ValidationError("Invalid Key")
    for f in spec.fields:
        v = obj.get(f.name)
        if f.kind == "int":
            n = v or 0
            if n == 0 and f.default is not None:
                n = f.default
                obj[f.name] = n
            if f.lo is not None and n < f.lo or f.hi is not None and n > f.hi:
                raise ValidationError(f"{f.name} Value Out of bound")
            continue
        if f.kind != "str":
            continue
        s = v or ""
        if not s and f.default is not None:
            s = f.default
            obj[f.name] = s
        if f.maxlen and len(s) > f.maxlen:
            raise ValidationError(f"{f.name} string too long")
        if f.regex is not None and f.regex.fullmatch(s) is None:
            raise ValidationError(f"{f.name} string invalid format")


# --- encode ---------------------------------------------------------------------------------


def reset_links(obj_type: str, obj: dict[str, Any]) -> None:
    """Give a new object empty link-sets/links members as its type declares."""
    spec = SPECS[obj_type]
    obj.pop("link-sets", None)
    obj.pop("links", None)
    if spec.link_sets is not None:
        obj["link-sets"] = {}
    if spec.links is not None:
        obj["links"] = {n: {} for n in spec.links}


def canonical(obj_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Ordered dict in the original's field order with omitempty applied."""
    spec = SPECS[obj_type]
    out: dict[str, Any] = {}
    if obj.get("key"):
        out["key"] = obj["key"]
    for f in spec.fields:
        v = obj.get(f.name)
        if v not in (None, "", 0, []):
            out[f.name] = v
    if spec.link_sets is not None:
        sets = obj.get("link-sets") or {}
        rendered = {}
        for name in spec.link_sets:
            members = sets.get(name)
            if members:
                rendered[name] = {k: _link(members[k]) for k in sorted(members)}
        out["link-sets"] = rendered
    if spec.links is not None:
        links = obj.get("links") or {}
        out["links"] = {n: _link(links.get(n) or {}) for n in spec.links}
    return out


def _link(link: dict[str, Any]) -> dict[str, Any]:
    out = {}
    if link.get("type"):
        out["type"] = link["type"]
    if link.get("key"):
        out["key"] = link["key"]
    return out


def dumps(obj_type: str, obj: dict[str, Any]) -> str:
    return json.dumps(canonical(obj_type, obj), separators=(",", ":"), ensure_ascii=False)


def default_global(fwd_mode: str) -> dict[str, Any]:
    return {
        "key": "global",
        "arpMode": "proxy",
        "fwdMode": fwd_mode,
        "name": "global",
        "networkInfraType": "default",
        "pvtSubnet": "172.19.0.0/16",
        "vlans": "1-4094",
        "vxlans": "1-10000",
    }


__all__ = ["decode", "validate", "canonical", "dumps", "reset_links", "default_global"]
