"""REST object models of every collection: field table, decode, validate, canonical JSON.

Design
- An object is a plain ``dict`` with the original's JSON names. ``SPECS[type]`` lists the
  config fields in the original's declaration order (``key`` first, then fields alphabetically as
  the Go structs declare them, then ``link-sets``, ``links``); ``dumps`` renders that order with
  Go ``omitempty`` semantics (0 / "" / [] omitted), ``link-sets`` always present (``{}``) for
  types that have it, and every declared link name always present under ``links`` (``{}`` when
  unset), exactly like the Go structs (transcripts §4.6).
- ``decode(type, raw_bytes)`` parses a request body: malformed JSON, a non-object, unknown
  fields and wrong types are refused with Go-``encoding/json``-like messages (a ValidationError,
  never a traceback). ``null`` is treated as absent (Go leaves the field untouched).
- ``validate(type, obj)`` applies the original's schema checks in its order: first the key
  (``Invalid Key`` unless it equals the concatenation of the key fields), then per field
  length (``<f> string too long``), regex (``<f> string invalid format``) and range
  (``<f> Value Out of bound``), filling defaults (network ``nwType`` = data, rule ``priority`` = 1).
- Pure: no I/O; importable without pydantic/aiohttp (used by netmaster only).
"""

from __future__ import annotations

import json
import re
from typing import Any

from contivpy.common.errors import ValidationError

_NAME = r"(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])"
_OCT = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IP = rf"({_OCT}(\.{_OCT}){{3}})"
_LEN = r"(3[0-1]|2[0-9]|1[0-9]|[1-9])"
_H16 = r"([0-9]|[a-f]|[A-F]){1,4}"
_IP6 = rf"((({_H16})((\:{_H16}){{7}}))|((({_H16}\:){{0,6}}|\:)((\:{_H16}){{0,6}}|\:)))"
_IPRANGE_LEN = rf"({_IP}(\-{_OCT})?(/{_LEN})?)?"
_YESNO = r"(yes|no){1}"
_BW = (
    r"([1-9][0-9]* (([kmgKMG{1}]bps)|[kmgKMG{1}]|(kb|Kb|Gb|gb|Mb|mb)))?"
    r"|([1-9][0-9]*(((k|m|g|K|G|M)bps)|(k|m|g|K|M|G)|(kb|Kb|Gb|gb|Mb|mb)))?"
)
_NAMEOPT = rf"({_NAME})?"
_NAME_EMPTY_OK = r"(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])?"


class F:
    """One config field: JSON name, kind ("str" | "int" | "list"), checks, default."""

    __slots__ = ("name", "kind", "maxlen", "pattern", "_regex", "lo", "hi", "default")

    def __init__(self, name, kind="str", maxlen=0, regex=None, lo=None, hi=None, default=None):
        self.name = name
        self.kind = kind
        self.maxlen = maxlen
        self.pattern = regex
        self._regex = None  # compiled on first use: keeps netmaster start-up fast
        self.lo = lo
        self.hi = hi
        self.default = default

    @property
    def regex(self) -> re.Pattern | None:
        if self._regex is None and self.pattern is not None:
            self._regex = re.compile(self.pattern)
        return self._regex


class Spec:
    __slots__ = ("name", "go", "key_fields", "fields", "link_sets", "links", "by_name")

    def __init__(self, name, go, key_fields, fields, link_sets, links):
        self.name = name
        self.go = go
        self.key_fields = key_fields
        self.fields = fields
        self.link_sets = link_sets  # None = no link-sets member; else allowed set names
        self.links = links  # None = no links member; else link names in declaration order
        self.by_name = {f.name: f for f in fields}


def _s(name, maxlen=0, regex=None, default=None) -> F:
    return F(name, "str", maxlen, regex, default=default)


def _i(name, lo=None, hi=None, default=None) -> F:
    return F(name, "int", lo=lo, hi=hi, default=default)


def _l(name) -> F:
    return F(name, "list")


SPECS: dict[str, Spec] = {
    s.name: s
    for s in [
        Spec(
            "aciGw",
            "AciGw",
            ("name",),
            [
                _s("enforcePolicies", 64, _YESNO),
                _s("includeCommonTenant", 64, _YESNO),
                _s("name", 64, r"(aciGw)"),
                _s(
                    "nodeBindings",
                    2048,
                    r"|(topology/pod-[0-9]{1,4}/node-[0-9]{1,4}){1}(,topology/pod-[0-9]{1,4}/node-[0-9]{1,4})*",
                ),
                _s(
                    "pathBindings",
                    2048,
                    r"|(topology/pod-[0-9]{1,4}/paths-[0-9]{1,4}/pathep-\[eth[0-9]{1,2}/[0-9]{1,2}\]){1}"
                    r"(,topology/pod-[0-9]{1,4}/paths-[0-9]{1,4}/pathep-\[eth[0-9]{1,2}/[0-9]{1,2}\])*",
                ),
                _s("physicalDomain", 128, _NAME),
            ],
            None,
            None,
        ),
        Spec(
            "appProfile",
            "AppProfile",
            ("tenantName", "appProfileName"),
            [_s("appProfileName", 64, _NAME), _l("endpointGroups"), _s("tenantName", 64, _NAME)],
            ("EndpointGroups",),
            ("Tenant",),
        ),
        Spec(
            "Bgp",
            "Bgp",
            ("hostname",),
            [
                _s("as", 64),
                _s("hostname", 256, _NAME),
                _s("neighbor", 15, rf"{_IP}?"),
                _s("neighbor-as", 64),
                _s("routerip", 0, rf"{_IP}(\-{_OCT})?/{_LEN}"),
            ],
            None,
            None,
        ),
        Spec(
            "endpointGroup",
            "EndpointGroup",
            ("tenantName", "groupName"),
            [
                _s("cfgdTag", 128, rf"({_NAME})?"),
                _l("extContractsGrps"),
                _s("groupName", 64, _NAME),
                _s("ipPool", 0, rf"|{_IP}(\-{_IP})?"),
                _s("netProfile", 64),
                _s("networkName", 64, _NAME),
                _l("policies"),
                _s("tenantName", 64, _NAME),
            ],
            ("ExtContractsGrps", "MatchRules", "Policies", "Services"),
            ("AppProfile", "NetProfile", "Network", "Tenant"),
        ),
        Spec(
            "extContractsGroup",
            "ExtContractsGroup",
            ("tenantName", "contractsGroupName"),
            [
                _l("contracts"),
                _s("contractsGroupName", 64, _NAME),
                _s("contractsType"),
                _s("tenantName", 64, _NAME),
            ],
            ("EndpointGroups",),
            None,
        ),
        Spec(
            "global",
            "Global",
            ("name",),
            [
                _s("arpMode", 64, r"(proxy|flood)?"),
                _s("fwdMode", 64, r"(bridge|routing)?"),
                _s("name", 64, r"(global)"),
                _s("networkInfraType", 64, r"(aci|aci-opflex|default)?"),
                _s("pvtSubnet", 0, rf"{_IP}/16"),
                _s("vlans", 0, r"([0-9]{1,4}?-[0-9]{1,4}?)"),
                _s("vxlans", 0, r"([0-9]{1,8}?-[0-9]{1,8}?)"),
            ],
            None,
            None,
        ),
        Spec(
            "netprofile",
            "Netprofile",
            ("tenantName", "profileName"),
            [
                _i("DSCP", hi=63),
                _s("bandwidth", 64, _BW),
                _i("burst", hi=10486),
                _s("profileName", 64),
                _s("tenantName"),
            ],
            ("EndpointGroups",),
            ("Tenant",),
        ),
        Spec(
            "network",
            "Network",
            ("tenantName", "networkName"),
            [
                _s("cfgdTag", 128, rf"({_NAME})?"),
                _s("encap", 0, r"(vlan|vxlan)"),
                _s("gateway", 0, rf"{_IP}?"),
                _s("ipv6Gateway", 0, rf"{_IP6}?"),
                _s("ipv6Subnet", 0, rf"({_IP6}/(1[0-2][0-7]|[1-9][0-9]|[1-9]))?"),
                _s("networkName", 64, _NAME),
                _s("nwType", 0, r"(infra|data)", default="data"),
                _i("pktTag", hi=16777216),
                _s("subnet", 0, rf"{_IP}(\-{_IP})?/{_LEN}"),
                _s("tenantName", 64, _NAME),
            ],
            ("EndpointGroups", "Servicelbs", "Services"),
            ("Tenant",),
        ),
        Spec(
            "policy",
            "Policy",
            ("tenantName", "policyName"),
            [_s("policyName", 64, _NAME), _s("tenantName", 64, _NAME)],
            ("EndpointGroups", "Rules"),
            ("Tenant",),
        ),
        Spec(
            "rule",
            "Rule",
            ("tenantName", "policyName", "ruleId"),
            [
                _s("action", 0, r"(allow|deny)"),
                _s("direction", 0, r"(in|out)"),
                _s("fromEndpointGroup", 64, _NAME_EMPTY_OK),
                _s("fromIpAddress", 0, _IPRANGE_LEN),
                _s("fromNetwork", 64, _NAME_EMPTY_OK),
                _s("policyName", 64, _NAME),
                _i("port", hi=65535),
                _i("priority", lo=1, hi=100, default=1),
                _s("protocol", 0, r"(tcp|udp|icmp||[0-9]{1,3}?)"),
                _s("ruleId", 64, _NAME),
                _s("tenantName", 64, _NAME),
                _s("toEndpointGroup", 64, _NAME_EMPTY_OK),
                _s("toIpAddress", 0, _IPRANGE_LEN),
                _s("toNetwork", 64, _NAME_EMPTY_OK),
            ],
            ("Policies",),
            ("MatchEndpointGroup",),
        ),
        Spec(
            "serviceLB",
            "ServiceLB",
            ("tenantName", "serviceName"),
            [
                _s("ipAddress", 15, rf"{_IP}?"),
                _s("networkName", 64, _NAME),
                _l("ports"),
                _l("selectors"),
                _s("serviceName", 256, _NAME),
                _s("tenantName", 64, _NAME),
            ],
            None,
            ("Network", "Tenant"),
        ),
        Spec(
            "tenant",
            "Tenant",
            ("tenantName",),
            [_s("defaultNetwork", 64, _NAMEOPT), _s("tenantName", 64, _NAME)],
            (
                "AppProfiles",
                "EndpointGroups",
                "NetProfiles",
                "Networks",
                "Policies",
                "Servicelbs",
                "VolumeProfiles",
                "Volumes",
            ),
            None,
        ),
        Spec(
            "volume",
            "Volume",
            ("tenantName", "volumeName"),
            [_s(n) for n in ("datastoreType", "mountPoint", "poolName", "size", "tenantName", "volumeName")],
            ("ServiceInstances",),
            ("Tenant",),
        ),
        Spec(
            "volumeProfile",
            "VolumeProfile",
            ("tenantName", "volumeProfileName"),
            [
                _s(n)
                for n in (
                    "datastoreType",
                    "mountPoint",
                    "poolName",
                    "size",
                    "tenantName",
                    "volumeProfileName",
                )
            ],
            ("Services",),
            ("Tenant",),
        ),
    ]
}

MAX_BODY = 1 << 20  # bytes; larger request bodies are refused before parsing


# --- decode ---------------------------------------------------------------------------------


def _go_json_error(exc: json.JSONDecodeError, text: str) -> str:
    """Translate a Python JSON syntax error to the wording of Go's encoding/json."""
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
    return f"invalid character '{ch}' looking for beginning of value"


def _jtype(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _go_kind(f: F) -> str:
    return {"str": "string", "int": "int", "list": "[]string"}[f.kind]


def decode(obj_type: str, raw: bytes | str) -> dict:
    """Parse a request body into a canonical object (no validation of values)."""
    spec = SPECS[obj_type]
    if len(raw) > MAX_BODY:
        raise ValidationError(f"request body too large (limit {MAX_BODY} bytes)")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ValidationError("invalid UTF-8 in request body") from None
    if not text.strip():
        raise ValidationError("EOF")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(_go_json_error(exc, text)) from None
    except RecursionError:
        raise ValidationError("exceeded max depth") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = _jtype(data).split(" ")[0]
        raise ValidationError(f"json: cannot unmarshal {kind} into Go value of type contivModel.{spec.go}")
    out: dict[str, Any] = {}
    for name, v in data.items():
        if name in ("link-sets", "links") and (
            (name == "link-sets" and spec.link_sets is not None)
            or (name == "links" and spec.links is not None)
        ):
            if v is not None and not isinstance(v, dict):
                raise ValidationError(
                    f"json: cannot unmarshal {_jtype(v)} into Go struct field {spec.go}.{name}"
                )
            continue  # links are computed by netmaster; request values are ignored
        if name == "key":
            if v is not None and not isinstance(v, str):
                raise ValidationError(
                    f"json: cannot unmarshal {_jtype(v)} into Go struct field {spec.go}.key of type string"
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
                f"json: cannot unmarshal {_jtype(v)} into Go struct field {spec.go}.{name} of type {_go_kind(f)}"
            )
        if v == "" or v == 0 or v == []:
            continue
        out[name] = v
    return out


# --- validate -------------------------------------------------------------------------------


def validate(obj_type: str, obj: dict) -> None:
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


def reset_links(obj_type: str, obj: dict) -> None:
    """Give a new object empty link-sets/links members as its type declares."""
    spec = SPECS[obj_type]
    obj.pop("link-sets", None)
    obj.pop("links", None)
    if spec.link_sets is not None:
        obj["link-sets"] = {}
    if spec.links is not None:
        obj["links"] = {n: {} for n in spec.links}


def canonical(obj_type: str, obj: dict) -> dict:
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


def _link(link: dict) -> dict:
    out = {}
    if link.get("type"):
        out["type"] = link["type"]
    if link.get("key"):
        out["key"] = link["key"]
    return out


def dumps(obj_type: str, obj: dict) -> str:
    return json.dumps(canonical(obj_type, obj), separators=(",", ":"), ensure_ascii=False)


def default_global(fwd_mode: str) -> dict:
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


__all__ = [
    "SPECS",
    "Spec",
    "F",
    "decode",
    "validate",
    "canonical",
    "dumps",
    "reset_links",
    "default_global",
    "MAX_BODY",
]
