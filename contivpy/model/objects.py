"""REST object models of every collection: the field tables (``SPECS``). The codec that decodes,
validates and renders objects by these tables is ``model.codec``.

Design
- An object is a plain ``dict`` with the original's JSON names. ``SPECS[type]`` lists the
  config fields in the original's declaration order (``key`` first, then fields alphabetically as
  the Go structs declare them, then ``link-sets``, ``links``); ``codec.dumps`` renders that order with
  Go ``omitempty`` semantics (0 / "" / [] omitted), ``link-sets`` always present (``{}``) for
  types that have it, and every declared link name always present under ``links`` (``{}`` when
  unset), exactly like the Go structs (docs/original.md R4.6).
- ``codec.decode(type, raw_bytes)`` parses a request body: malformed JSON, a non-object, unknown
  fields and wrong types are refused with Go-``encoding/json``-like messages (a ValidationError,
  never a traceback). ``null`` is treated as absent (Go leaves the field untouched).
- ``codec.validate(type, obj)`` applies the original's schema checks in its order: first the key
  (``Invalid Key`` unless it equals the concatenation of the key fields), then per field
  length (``<f> string too long``), regex (``<f> string invalid format``) and range
  (``<f> Value Out of bound``), filling defaults (network ``nwType`` = data, rule ``priority`` = 1).
- Pure: no I/O; importable without aiohttp (used by netmaster only).
"""

from __future__ import annotations

import re
from typing import Any

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

    def __init__(
        self,
        name: str,
        kind: str = "str",
        maxlen: int = 0,
        regex: str | None = None,
        lo: int | None = None,
        hi: int | None = None,
        default: Any = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.maxlen = maxlen
        self.pattern = regex
        self._regex: re.Pattern[str] | None = None  # compiled on first use: keeps netmaster start-up fast
        self.lo = lo
        self.hi = hi
        self.default = default

    @property
    def regex(self) -> re.Pattern[str] | None:
        if self._regex is None and self.pattern is not None:
            self._regex = re.compile(self.pattern)
        return self._regex

    @property
    def required(self) -> bool:
        """A value must be given: validation checks an absent field as "" (``codec.validate``),
        and this field's rule refuses "" with no default to fill in."""
        return self.default is None and self.regex is not None and self.regex.fullmatch("") is None


class Spec:
    __slots__ = ("name", "go", "key_fields", "fields", "link_sets", "links", "by_name")

    def __init__(
        self,
        name: str,
        go: str,
        key_fields: tuple[str, ...],
        fields: list[F],
        link_sets: tuple[str, ...] | None,
        links: tuple[str, ...] | None,
    ) -> None:
        self.name = name
        self.go = go
        self.key_fields = key_fields
        self.fields = fields
        self.link_sets = link_sets  # None = no link-sets member; else allowed set names
        self.links = links  # None = no links member; else link names in declaration order
        self.by_name = {f.name: f for f in fields}

    @property
    def required(self) -> list[str]:
        """The fields a create/update body must carry: the key fields, then the other fields
        whose rule refuses an empty value (``F.required``), in declaration order."""
        return [
            *self.key_fields,
            *(f.name for f in self.fields if f.required and f.name not in self.key_fields),
        ]


def _s(name: str, maxlen: int = 0, regex: str | None = None, default: Any = None) -> F:
    return F(name, "str", maxlen, regex, default=default)


def _i(name: str, lo: int | None = None, hi: int | None = None, default: Any = None) -> F:
    return F(name, "int", lo=lo, hi=hi, default=default)


def _l(name: str) -> F:
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
                _s("profileName", 64, _NAME),  # contivpy: the name rule of every other object
                _s("tenantName", 64, _NAME),
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
                _l("nodePorts"),  # contivpy addition: "<nodePort>:<port>:<TCP|UDP>" (docs/rest-api.md)
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


__all__ = ["SPECS", "Spec", "F", "MAX_BODY"]
