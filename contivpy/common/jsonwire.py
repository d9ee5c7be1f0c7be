"""JSON request bodies decoded at the boundary, with errors in the wording of Go's encoding/json.

Every listener (netmaster REST and /plugin/*, netplugin's debug REST and Docker plugin socket)
decodes request bodies here, so no Python wording ("Expecting value: line 1 column 1",
"'utf-8' codec can't decode ...", "can only concatenate str ...") ever reaches a client.

- ``loads(raw)``: strict UTF-8 (else ``invalid UTF-8 in request body``), Go syntax messages
  (``invalid character 'b' looking for beginning of object key string``, ``unexpected end of JSON
  input``), nesting deeper than ``MAX_DEPTH`` refused with Go's ``exceeded max depth``; an escaped
  lone surrogate (``"\\ud800"``) is refused (Go would silently make it U+FFFD; contivpy refuses, so
  a password or name is never changed behind the user's back), so every decoded string encodes to
  UTF-8.
- ``Struct``: the shape of a Go request struct (fields of kind ``string``, ``map[string]string``,
  ``bool``, ``int`` or a nested ``Struct``). ``Struct.check(value)`` refuses a non-object
  (``json: cannot unmarshal array into Go value of type master.X``) and a field of the wrong type
  (``json: cannot unmarshal number into Go struct field X.F of type string``). Like Go, field names
  match case-insensitively (the exact name wins), unknown fields are ignored and ``null`` leaves a
  field absent. The result is a new dict with canonical field names: handlers may then index it
  without further type checks.
Every failure is a ``ValidationError`` (common/errors.py). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from contivpy.common.errors import ValidationError

MAX_DEPTH = 100  # valid contiv bodies nest at most ~5 levels; Go's own limit is 10000


def go_type(v: Any) -> str:
    """The JSON kind of a decoded value, as Go's decoder names it in its errors."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def syntax_error(exc: json.JSONDecodeError, text: str) -> str:
    """A Python JSON syntax error in the wording of Go's encoding/json."""
    pos = exc.pos
    if pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
        return "unexpected end of JSON input"
    ch = text[pos]
    msg = exc.msg
    if msg.startswith("Expecting property name"):
        return f"invalid character '{ch}' looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character '{ch}' after object key"
    if msg.startswith("Expecting ','"):
        return f"invalid character '{ch}' after object key:value pair"
    if msg.startswith("Extra data"):
        return f"invalid character '{ch}' after top-level value"
    if msg.startswith("Invalid control character"):
        return f"invalid character {ch!r} in string literal"
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\uXXXX"):
        return "invalid character in string escape code"
    return f"invalid character '{ch}' looking for beginning of value"


def _depth(v: Any) -> int:
    """Nesting depth of a decoded value, iteratively (never recursion-limited)."""
    deepest, stack = 0, [(v, 1)]
    while stack:
        cur, d = stack.pop()
        if isinstance(cur, dict):
            cur = list(cur.values())
        elif not isinstance(cur, list):
            continue
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        stack.extend((x, d + 1) for x in cur if isinstance(x, dict | list))
    return deepest


def loads(raw: bytes | str, *, empty: str = "unexpected end of JSON input") -> Any:
    """Decode one JSON document; ``empty`` is the message for an empty body (``None`` = accept it
    as ``null``)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError:
        raise ValidationError("invalid UTF-8 in request body") from None
    if not text.strip():
        if empty is None:
            return None
        raise ValidationError(empty)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(syntax_error(exc, text)) from None
    except RecursionError:
        raise ValidationError("exceeded max depth") from None
    if _depth(data) > MAX_DEPTH:
        raise ValidationError("exceeded max depth")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(data):
        raise ValidationError(SURROGATE_ERROR)
    return data


SURROGATE_ERROR = "invalid surrogate escape in request body (not encodable as UTF-8)"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(v: Any) -> bool:
    """An escaped lone surrogate (``"\\ud800"``) decodes to a string that cannot be encoded to
    UTF-8 (etcd, logs, answers). Only walked when the text has such an escape; depth is bounded."""
    stack = [v]
    while stack:
        cur = stack.pop()
        if isinstance(cur, str):
            if _LONE_SURROGATE.search(cur):
                return True
        elif isinstance(cur, list):
            stack.extend(cur)
        elif isinstance(cur, dict):
            stack.extend(cur)
            stack.extend(cur.values())
    return False


@dataclass(frozen=True)
class Struct:
    """A Go request struct: ``go`` is its Go type name (``master.CreateEndpointRequest``), ``fields``
    maps each JSON field name to ``"string"``, ``"bool"``, ``"int"``, ``"[]string"``, ``"map[string]string"``,
    ``"map[string]interface {}"``, ``"interface {}"``, a nested ``Struct`` or ``("[]", Struct)``. ``null``
    values are skipped (the field keeps its zero value, as Go leaves it untouched)."""

    go: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.go.rsplit(".", 1)[-1]

    def check(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValidationError(f"json: cannot unmarshal {go_type(value)} into Go value of type {self.go}")
        return self._check(value, self.short)

    def _check(self, value: dict[str, Any], path: str) -> dict[str, Any]:
        folded = {name.lower(): name for name in self.fields}
        out: dict[str, Any] = {}
        # Go: the exact name wins over a case-insensitive match; later duplicates overwrite earlier
        for name, v in sorted(value.items(), key=lambda kv: kv[0] in self.fields):
            canon = name if name in self.fields else folded.get(name.lower())
            if canon is None or v is None:
                continue
            out[canon] = _field(self.fields[canon], v, f"{path}.{canon}")
        return out


def _mismatch(v: Any, where: str, kind: str) -> ValidationError:
    return ValidationError(f"json: cannot unmarshal {go_type(v)} into Go struct field {where} of type {kind}")


def _field(kind: Any, v: Any, where: str) -> Any:
    if isinstance(kind, Struct):
        if not isinstance(v, dict):
            raise _mismatch(v, where, kind.go)
        return kind._check(v, where)
    if kind == "string":
        if not isinstance(v, str):
            raise _mismatch(v, where, "string")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise _mismatch(v, where, "bool")
        return v
    if kind == "int":
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise _mismatch(v, where, "int")
        return v
    if kind == "map[string]interface {}":
        if not isinstance(v, dict):
            raise _mismatch(v, where, kind)
        return v
    if kind == "interface {}":
        return v
    if isinstance(kind, tuple) and kind[0] == "[]":  # ("[]", Struct): a slice of structs
        elem = kind[1]
        if not isinstance(v, list):
            raise _mismatch(v, where, f"[]{elem.go}")
        return [{} if x is None else _field(elem, x, where) for x in v]
    if kind == "[]string":
        if not isinstance(v, list):
            raise _mismatch(v, where, kind)
        for x in v:
            if x is not None and not isinstance(x, str):
                raise _mismatch(x, where, "string")
        return [x or "" for x in v]
    if kind == "map[string]string":
        if not isinstance(v, dict):
            raise _mismatch(v, where, kind)
        for val in v.values():
            if val is not None and not isinstance(val, str):
                raise _mismatch(val, where, "string")
        return {k: val or "" for k, val in v.items()}
    raise AssertionError(f"unknown field kind {kind!r}")


__all__ = ["MAX_DEPTH", "Struct", "go_type", "loads", "syntax_error"]
