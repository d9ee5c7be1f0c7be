"""Plain input values of the ofnet facade (no etcd, no model imports).

The netplugin agent converts its state records into these and calls :class:`OfnetAgent`.
Each validates itself on construction and raises ``ValidationError`` with a clear message;
all are frozen (hashable, comparable), so re-applying an identical value is a no-op.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from contivpy.common.errors import ValidationError

from .flows import _norm_mac

__all__ = ["Network", "LocalEndpoint", "RemoteEndpoint", "Vtep", "Rule", "Service", "PROTOCOLS"]

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "igmp": 2}
#: ICMPv4 messages that ask for an answer: echo, timestamp, information, address mask requests
ICMP_REQUEST_TYPES = (8, 13, 15, 17)


def _ip(v: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise ValidationError(f"invalid {what} IP address {v!r}") from None


def _mac(v: str) -> str:
    try:
        return _norm_mac(v)
    except ValueError:
        raise ValidationError(f"invalid MAC address {v!r}") from None


def _range(v: int, lo: int, hi: int, what: str) -> None:
    if not isinstance(v, int) or not lo <= v <= hi:
        raise ValidationError(f"{what} {v!r} out of range {lo}-{hi}")


@dataclass(frozen=True)
class Network:
    vlan: int
    vni: int = 0
    gateway: str = ""
    vrf: str = "default"
    subnet: str = ""  # "a.b.c.d/len"; without a gateway, ARP for anything outside it is answered

    def __post_init__(self) -> None:
        _range(self.vlan, 1, 4094, "vlan")
        _range(self.vni, 0, 0xFFFFFF, "vni")
        if self.gateway:
            object.__setattr__(self, "gateway", _ip(self.gateway, "gateway"))
        if self.subnet:
            object.__setattr__(self, "subnet", _cidr(self.subnet, "subnet"))


@dataclass(frozen=True)
class LocalEndpoint:
    ofport: int
    mac: str
    ip: str
    vlan: int
    epg: int = 0
    vrf: str = "default"
    dscp: int = 0
    endpoint_id: str = ""

    def __post_init__(self) -> None:
        _range(self.ofport, 1, 0xFFFFFF00, "ofport")
        object.__setattr__(self, "mac", _mac(self.mac))
        object.__setattr__(self, "ip", _ip(self.ip, "endpoint"))
        _range(self.vlan, 1, 4094, "vlan")
        _range(self.epg, 0, 0x7FFF, "endpoint group id")
        _range(self.dscp, 0, 63, "dscp")

    @property
    def key(self) -> str:
        return f"{self.ip}:{self.vrf}"


@dataclass(frozen=True)
class RemoteEndpoint:
    mac: str
    ip: str
    vtep_ip: str
    vni: int = 0
    vrf: str = "default"
    epg: int = 0
    vlan: int = 0  # vlan bridge: the network's VLAN (vni == 0)
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", _mac(self.mac))
        object.__setattr__(self, "ip", _ip(self.ip, "endpoint"))
        object.__setattr__(self, "vtep_ip", _ip(self.vtep_ip, "originator"))
        _range(self.vni, 0, 0xFFFFFF, "vni")
        _range(self.vlan, 0, 4094, "vlan")
        _range(self.epg, 0, 0x7FFF, "endpoint group id")

    @property
    def key(self) -> str:
        return f"{self.ip}:{self.vrf}"


@dataclass(frozen=True)
class Vtep:
    ofport: int
    remote_ip: str

    def __post_init__(self) -> None:
        _range(self.ofport, 1, 0xFFFFFF00, "ofport")
        object.__setattr__(self, "remote_ip", _ip(self.remote_ip, "VTEP"))


def _cidr(v: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Network(v, strict=False))
    except ValueError:
        raise ValidationError(f"invalid {what} address {v!r}") from None


@dataclass(frozen=True)
class Rule:
    """An ofnet policy rule (OfnetPolicyRule): table policy, priority 10 + ``priority``."""

    rule_id: str
    priority: int = 1
    src_epg: int = 0
    dst_epg: int = 0
    src_ip: str = ""
    dst_ip: str = ""
    protocol: int = 0
    src_port: int = 0
    dst_port: int = 0
    tcp_flags: str = ""  # "", "syn,!ack"
    action: str = "allow"
    #: "" (any ICMP) or "request": only ICMP request messages (ICMP_REQUEST_TYPES), so a deny without
    #: a port leaves replies and errors alone, as "syn,!ack" does for TCP (docs/decisions.md)
    icmp_type: str = ""

    def __post_init__(self) -> None:
        if not self.rule_id:
            raise ValidationError("rule id is required")
        _range(self.priority, 0, 0xFFFF - 10, "priority")
        _range(self.src_epg, 0, 0x7FFF, "endpoint group id")
        _range(self.dst_epg, 0, 0x7FFF, "endpoint group id")
        if isinstance(self.protocol, str):
            p = PROTOCOLS.get(self.protocol.lower())
            if p is None and not self.protocol.isdigit():
                raise ValidationError(f"invalid protocol {self.protocol!r}")
            object.__setattr__(self, "protocol", p if p is not None else int(self.protocol))
        _range(self.protocol, 0, 255, "protocol")
        _range(self.src_port, 0, 65535, "port")
        _range(self.dst_port, 0, 65535, "port")
        if (self.src_port or self.dst_port) and self.protocol not in (6, 17):
            raise ValidationError("a port match needs protocol tcp or udp")
        if self.src_ip:
            object.__setattr__(self, "src_ip", _cidr(self.src_ip, "source"))
        if self.dst_ip:
            object.__setattr__(self, "dst_ip", _cidr(self.dst_ip, "destination"))
        if self.tcp_flags not in ("", "syn,!ack", "syn", "ack", "!ack"):
            raise ValidationError(f"invalid tcp flags {self.tcp_flags!r}")
        if self.tcp_flags and self.protocol != 6:
            raise ValidationError("tcp flags need protocol tcp")
        if self.action not in ("allow", "deny"):
            raise ValidationError(f"invalid rule action {self.action!r}")
        if self.icmp_type not in ("", "request"):
            raise ValidationError(f"invalid icmp type {self.icmp_type!r}")
        if self.icmp_type and self.protocol != 1:
            raise ValidationError("an icmp type needs protocol icmp")


def _port_spec(p) -> tuple[int, int, str]:
    """``(svc_port, prov_port, proto)`` or the record form ``"<svcPort>:<provPort>:<TCP|UDP>"``."""
    if isinstance(p, str):
        parts = p.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ValidationError(f"invalid service port {p!r} (want svcPort:provPort:TCP|UDP)")
        p = (int(parts[0]), int(parts[1]), parts[2])
    if not isinstance(p, tuple | list) or len(p) != 3:
        raise ValidationError(f"invalid service port {p!r} (want (svc_port, prov_port, proto))")
    svc, prov, proto = p
    proto = str(proto).lower()
    if proto not in ("tcp", "udp"):
        raise ValidationError(f"invalid service protocol {p[2]!r} (TCP or UDP)")
    _range(svc, 1, 65535, "service port")
    _range(prov, 1, 65535, "provider port")
    return (svc, prov, proto)


@dataclass(frozen=True)
class Service:
    """A service load balancer: ``vip`` in tenant ``vrf``; ``ports`` (svc_port, prov_port, "tcp"|"udp");
    ``providers`` = backend IPs (normalised: sorted, unique; may be empty = no backend yet)."""

    vip: str
    vrf: str = "default"
    ports: tuple[tuple[int, int, str], ...] = ()
    providers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "vip", _ip(self.vip, "service"))
        if not self.vrf or not isinstance(self.vrf, str):
            raise ValidationError("service tenant (vrf) is required")
        if isinstance(self.ports, str) or not self.ports:
            raise ValidationError(f"service {self.vip} needs at least one port")
        ports = tuple(sorted({_port_spec(p) for p in self.ports}))
        seen = set()
        for svc, _, proto in ports:
            if (svc, proto) in seen:
                raise ValidationError(f"service port {svc}/{proto} mapped twice")
            seen.add((svc, proto))
        object.__setattr__(self, "ports", ports)
        if isinstance(self.providers, str):
            raise ValidationError("providers must be a list of IP addresses")
        provs = tuple(sorted({_ip(p, "provider") for p in self.providers}, key=ipaddress.IPv4Address))
        if self.vip in provs:
            raise ValidationError(f"provider {self.vip} is the service address itself")
        object.__setattr__(self, "providers", provs)

    @property
    def key(self) -> str:
        return f"{self.vip}:{self.vrf}"
