"""Go ``encoding/json`` behaviour for netctl: decode into typed structs, encode like Go.

netctl decoded every netmaster response into the typed structs of contivModelClient and
re-encoded them, so its output depends on the *struct*, not on the server's bytes:

* keys come out in struct field order (``models.STRUCTS``), unknown keys are dropped,
  keys match case-insensitively when decoding (exact match preferred);
* every model field is ``omitempty`` ("" / 0 / empty list / empty map vanish), but nested
  structs (``link-sets``, ``links``, each ``Link``, inspect ``Config``/``Oper``) are always
  written, as ``{}`` when empty; ``map[string]Link`` members are written in sorted key order;
* strings are escaped like Go: ``<``, ``>``, ``&``, U+2028, U+2029 as ``\\u003c`` ...,
  control characters as ``\\n``/``\\r``/``\\t`` or ``\\u00XX``; non-ASCII stays UTF-8;
* ``MarshalIndent(v, "", "  ")`` layout for ``--json``/``inspect``, compact ``Marshal``
  for request bodies.

Decoding uses the C scanner of ``_json`` directly (valid input never imports ``json``/``re``,
which keeps netctl's start-up short); invalid input falls back to ``json`` for the message.
"""

from contivpy.netctl.models import STRUCTS


class GoJSONError(Exception):
    """A decode error, with a Go-like message."""


# ---------------------------------------------------------------- decoding


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None

    def __init__(self) -> None:
        self.memo: dict = {}


_scanner = None


def loads(text: str):
    """Parse JSON text; raise GoJSONError with a Go-style message when it is not JSON."""
    global _scanner
    if _scanner is None:
        try:
            from _json import make_scanner

            _scanner = make_scanner(_Ctx())
        except ImportError:  # pragma: no cover - CPython always has _json
            _scanner = False
    s = text.strip(" \t\r\n")
    if _scanner:
        try:
            value, end = _scanner(s, 0)
            if end == len(s):
                return value
        except Exception:  # noqa: BLE001 - any scanner failure: let json explain it
            pass
    return _slow_loads(s)


def _slow_loads(s: str):
    import json

    if not s:
        raise GoJSONError("unexpected end of JSON input")
    try:
        return json.loads(s)
    except json.JSONDecodeError as err:
        pos = err.pos
        if pos >= len(s):
            raise GoJSONError("unexpected end of JSON input") from None
        ch = s[pos]
        if err.msg.startswith("Extra data"):
            raise GoJSONError(f"invalid character '{ch}' after top-level value") from None
        if err.msg.startswith("Expecting property name"):
            raise GoJSONError(
                f"invalid character '{ch}' looking for beginning of object key string"
            ) from None
        raise GoJSONError(f"invalid character '{ch}' looking for beginning of value") from None


def _json_kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _mismatch(v, struct: str, field: str, gotype: str) -> GoJSONError:
    kind = _json_kind(v)
    if kind == "number":
        kind = f"number {v}"
    return GoJSONError(
        f"json: cannot unmarshal {kind} into Go struct field {struct}.{field} of type {gotype}"
    )


_INDEX: dict[str, tuple[dict, dict]] = {}


def _index(type_name: str) -> tuple[dict, dict]:
    """(field by exact JSON name, field by lower-cased name) of a struct, built once."""
    idx = _INDEX.get(type_name)
    if idx is None:
        fields = STRUCTS[type_name]
        idx = _INDEX[type_name] = ({f[0]: f for f in fields}, {f[0].lower(): f for f in fields})
    return idx


def decode(type_name: str, value):
    """Decode parsed JSON ``value`` into the struct ``type_name`` (a dict in field order
    holding only the fields Go would keep). ``None`` decodes to an empty struct."""
    out: dict = {}
    if value is None:
        return out
    if value.__class__ is not dict and not isinstance(value, dict):
        raise GoJSONError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type client.{type_name}"
        )
    exact, folded = _INDEX.get(type_name) or _index(type_name)
    for k, v in value.items():
        f = exact.get(k)
        if f is None:
            f = folded.get(k.lower())
            if f is None:
                continue
        if v is None:
            continue
        name, kind, sub = f
        # the common cases inline (netctl start-up: a list of 100 networks is 400 structs)
        if kind == "s" and v.__class__ is str:
            out[name] = v
        elif kind == "S":
            out[name] = _link(v) if sub == "Link" else decode(sub, v)
        elif kind == "M" and v.__class__ is dict:
            out[name] = {mk: _link(mv) for mk, mv in v.items()}
        else:
            out[name] = _decode_field(v, kind, sub, type_name, name)
    return out


def _link(value) -> dict:
    """``decode("Link", value)``; a dict of exactly the two string fields is taken as it is."""
    if value.__class__ is dict and len(value) == 2:
        t, k = value.get("type"), value.get("key")
        if t.__class__ is str and k.__class__ is str:
            return dict(value)
    return decode("Link", value)


def _decode_field(v, kind: str, sub: str | None, struct: str, name: str):
    if kind == "s":
        if not isinstance(v, str):
            raise _mismatch(v, struct, name, "string")
        return v
    if kind == "i":
        if isinstance(v, bool) or not isinstance(v, int):
            raise _mismatch(v, struct, name, "int")
        return v
    if kind == "ls":
        if not isinstance(v, list) or any(not isinstance(x, str) for x in v if x is not None):
            raise _mismatch(v, struct, name, "[]string")
        return ["" if x is None else x for x in v]
    if kind == "S":
        return decode(sub, v)
    if kind == "LS":
        if not isinstance(v, list):
            raise _mismatch(v, struct, name, f"[]client.{sub}")
        return [decode(sub, x) for x in v]
    if kind == "M":
        if not isinstance(v, dict):
            raise _mismatch(v, struct, name, "map[string]client.Link")
        return {mk: decode("Link", mv) for mk, mv in v.items()}
    raise AssertionError(kind)  # pragma: no cover


def decode_list(type_name: str, value):
    """Decode a JSON array of ``type_name`` (``None`` stays ``None``: Go's nil slice)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise GoJSONError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type []*client.{type_name}"
        )
    return [decode(type_name, x) for x in value]


# ---------------------------------------------------------------- encoding


def to_go(type_name: str, obj: dict) -> dict:
    """Return ``obj`` as Go would marshal struct ``type_name``: field order, omitempty."""
    out: dict = {}
    for name, kind, sub in STRUCTS[type_name]:
        v = obj.get(name)
        if kind == "S":
            out[name] = to_go(sub, v or {})
        elif kind == "M":
            if v:
                out[name] = {k: to_go("Link", v[k]) for k in sorted(v)}
        elif kind == "LS":
            if v:
                out[name] = [to_go(sub, x) for x in v]
        elif v:
            out[name] = v
    return out


def _build_escapes() -> dict:
    table = {c: f"\\u{c:04x}" for c in range(0x20)}
    table.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x22: '\\"', 0x5C: "\\\\"})
    for c in (0x3C, 0x3E, 0x26, 0x2028, 0x2029):
        table[c] = f"\\u{c:04x}"
    for c in range(0xD800, 0xE000):  # lone surrogates: Go writes U+FFFD
        table[c] = "\ufffd"
    return table


_ESC: dict | None = None


def quote(s: str) -> str:
    global _ESC
    if _ESC is None:
        _ESC = _build_escapes()
    return '"' + s.translate(_ESC) + '"'


def _scalar(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, int):
        return str(v)
    return repr(v)


def marshal(v) -> str:
    """Go ``json.Marshal`` (compact)."""
    if isinstance(v, dict):
        return "{" + ",".join(quote(k) + ":" + marshal(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(marshal(x) for x in v) + "]"
    return _scalar(v)


def marshal_indent(v, indent: str = "") -> str:
    """Go ``json.MarshalIndent(v, "", "  ")``."""
    if isinstance(v, dict):
        if not v:
            return "{}"
        inner = indent + "  "
        items = [inner + quote(k) + ": " + marshal_indent(x, inner) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + marshal_indent(x, inner) for x in v) + "\n" + indent + "]"
    return _scalar(v)
