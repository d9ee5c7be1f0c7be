"""Immutable flow and group values with a canonical text form.

A :class:`Flow` is what the pipeline wants in the switch: table, priority, match, apply
actions, optional ``write_metadata`` and ``goto``, and the owner's cookie.  Values are
frozen and hashable, so they can be diffed as sets and cached (the codec memoises their
encoding).  The OpenFlow identity of a flow is :attr:`Flow.key` = (table id, priority,
match): two flows with the same key cannot coexist in a switch, so the flow cache diffs
by key and compares the rest to decide on a modify.

Match fields use the OXM names of ovs-fields(7) in lower case (``in_port``, ``eth_dst``, ``vlan_vid``, ``metadata``,
``ipv4_dst``, ``tunnel_id`` ...); values are normalised (lower-case MACs, dotted IPv4,
ints) and an all-ones mask is dropped, so a flow read back from OVS compares equal to
the one we built.  ``str(flow)`` prints ovs-ofctl-like text with *table names*, used by
golden unit tests and logs; nothing here talks to a switch (pure module).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .pipeline import Table, check_goto

__all__ = [
    "Match",
    "Output",
    "Controller",
    "Normal",
    "GroupAction",
    "PushVlan",
    "PopVlan",
    "SetField",
    "Move",
    "Nat",
    "Ct",
    "Action",
    "Flow",
    "Group",
    "OFPP_CONTROLLER",
    "OFPP_NORMAL",
    "OFPP_TABLE",
    "OFPP_IN_PORT",
    "OFPVID_PRESENT",
]

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_TABLE = 0xFFFFFFF9
OFPP_NORMAL = 0xFFFFFFFA
OFPP_CONTROLLER = 0xFFFFFFFD
OFPVID_PRESENT = 0x1000

# canonical field order (also the order in which text is printed)
_ORDER = (
    "in_port",
    "metadata",
    "eth_type",
    "vlan_vid",
    "eth_src",
    "eth_dst",
    "ip_proto",
    "ip_dscp",
    "ipv4_src",
    "ipv4_dst",
    "arp_op",
    "arp_spa",
    "arp_tpa",
    "arp_sha",
    "arp_tha",
    "tunnel_id",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
    "icmpv4_type",
    "tcp_flags",
)
_RANK = {n: i for i, n in enumerate(_ORDER)}
_WIDTH = {"metadata": 64, "tunnel_id": 64, "vlan_vid": 13, "tcp_flags": 12, "in_port": 32, "icmpv4_type": 8}
_MAC_FIELDS = ("eth_src", "eth_dst", "arp_sha", "arp_tha")
_IP_FIELDS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa")


def _norm_mac(v: str) -> str:
    parts = v.lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(
        len(p) <= 2 and p and all(c in "0123456789abcdef" for c in p) for p in parts
    ):
        raise ValueError(f"invalid MAC address {v!r}")
    return ":".join(p.zfill(2) for p in parts)


def _norm_value(name: str, value, mask):
    if name not in _RANK:
        raise ValueError(f"unsupported match field {name!r}")
    if name in _MAC_FIELDS:
        value = _norm_mac(value)
        mask = None if mask is None or _norm_mac(mask) == "ff:ff:ff:ff:ff:ff" else _norm_mac(mask)
    elif name in _IP_FIELDS:
        value = str(ipaddress.IPv4Address(value))
        if mask is not None:
            mask = str(ipaddress.IPv4Address(mask))
            if mask == "255.255.255.255":
                mask = None
    else:
        value = int(value)
        if mask is not None:
            mask = int(mask)
            if mask == (1 << _WIDTH.get(name, 16)) - 1:
                mask = None
    return value, mask


@dataclass(frozen=True)
class Match:
    """Sorted tuple of (field, value, mask|None)."""

    fields: tuple[tuple[str, object, object], ...] = ()

    @classmethod
    def of(cls, **kw) -> Match:
        items = []
        for name, v in kw.items():
            if v is None:
                continue
            value, mask = v if isinstance(v, tuple) else (v, None)
            value, mask = _norm_value(name, value, mask)
            items.append((name, value, mask))
        items.sort(key=lambda t: _RANK[t[0]])
        return cls(tuple(items))

    def get(self, name: str, default=None):
        for n, v, m in self.fields:
            if n == name:
                return v if m is None else (v, m)
        return default

    def as_kwargs(self) -> dict:
        return {n: (v if m is None else (v, m)) for n, v, m in self.fields}

    def __str__(self) -> str:
        return _match_text(self)


# ---- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    port: int

    def __str__(self) -> str:
        return "IN_PORT" if self.port == OFPP_IN_PORT else f"output:{self.port}"


@dataclass(frozen=True)
class Controller:
    max_len: int = 0xFFFF

    def __str__(self) -> str:
        return f"CONTROLLER:{self.max_len}"


@dataclass(frozen=True)
class Normal:
    def __str__(self) -> str:
        return "NORMAL"


@dataclass(frozen=True)
class GroupAction:
    group_id: int

    def __str__(self) -> str:
        return f"group:{self.group_id}"


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = 0x8100

    def __str__(self) -> str:
        return f"push_vlan:{self.ethertype:#x}"


@dataclass(frozen=True)
class PopVlan:
    def __str__(self) -> str:
        return "pop_vlan"


@dataclass(frozen=True)
class SetField:
    name: str
    value: object

    def __str__(self) -> str:
        if self.name == "tunnel_id":
            return f"set_field:{int(self.value):#x}->tun_id"
        return f"set_field:{self.value}->{_OVS_NAME.get(self.name, self.name)}"


#: fields a :class:`Move` can copy: our field name -> (Nicira NXM name as ovs-ofctl prints it, width in bits)
MOVE_FIELDS = {
    "eth_src": ("NXM_OF_ETH_SRC", 48),
    "eth_dst": ("NXM_OF_ETH_DST", 48),
    "arp_sha": ("NXM_NX_ARP_SHA", 48),
    "arp_tha": ("NXM_NX_ARP_THA", 48),
    "arp_spa": ("NXM_OF_ARP_SPA", 32),
    "arp_tpa": ("NXM_OF_ARP_TPA", 32),
    **{f"reg{i}": (f"NXM_NX_REG{i}", 32) for i in range(8)},
}


@dataclass(frozen=True)
class Move:
    """Nicira ``move`` (NXAST_REG_MOVE): copy the whole of field ``src`` into ``dst`` (same width).
    Text as ``ovs-ofctl dump-flows`` prints it: ``move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]``."""

    src: str
    dst: str

    def __post_init__(self) -> None:
        for f in (self.src, self.dst):
            if f not in MOVE_FIELDS:
                raise ValueError(f"move: unsupported field {f!r}")
        if self.width != MOVE_FIELDS[self.dst][1]:
            raise ValueError(f"move: {self.src} and {self.dst} differ in width")

    @property
    def width(self) -> int:
        return MOVE_FIELDS[self.src][1]

    def __str__(self) -> str:
        return f"move:{MOVE_FIELDS[self.src][0]}[]->{MOVE_FIELDS[self.dst][0]}[]"


@dataclass(frozen=True)
class Nat:
    """Nicira ``nat`` inside ``ct``: ``kind`` "dst"/"src" with one address (and port), or None =
    bare ``nat`` (apply the connection's existing NAT, e.g. un-NAT a reply)."""

    kind: str | None = None
    ip: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in (None, "dst", "src"):
            raise ValueError(f"invalid nat kind {self.kind!r}")
        if self.ip is not None:
            object.__setattr__(self, "ip", str(ipaddress.IPv4Address(self.ip)))
        if (self.kind is None) != (self.ip is None) or (self.port is not None and self.ip is None):
            raise ValueError("nat: an address needs a kind and a port needs an address")

    def __str__(self) -> str:
        if self.kind is None:
            return "nat"
        return f"nat({self.kind}={self.ip}" + (f":{self.port})" if self.port is not None else ")")


@dataclass(frozen=True)
class Ct:
    """Nicira ``ct`` (conntrack) action: optional commit, an immediate zone, recirculation into
    ``table`` (which must lie after the flow's own table) and an optional :class:`Nat`.  Text as
    ``ovs-ofctl dump-flows`` prints it: ``ct(commit,table=4,zone=Z,nat(dst=ip:port))``."""

    zone: int
    table: Table | None = None
    commit: bool = False
    nat: Nat | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.zone <= 0xFFFF:
            raise ValueError(f"ct zone {self.zone} out of range")

    def text(self, names: bool = True) -> str:
        parts = ["commit"] if self.commit else []
        if self.table is not None:
            parts.append(f"table={self.table.name if names else self.table.id}")
        parts.append(f"zone={self.zone}")
        if self.nat is not None:
            parts.append(str(self.nat))
        return f"ct({','.join(parts)})"

    def __str__(self) -> str:
        return self.text()


Action = Output | Controller | Normal | GroupAction | PushVlan | PopVlan | SetField | Move | Ct


@dataclass(frozen=True)
class Flow:
    table: Table
    priority: int
    match: Match = field(default_factory=Match)
    actions: tuple[Action, ...] = ()
    write_metadata: tuple[int, int] | None = None
    goto: Table | None = None
    cookie: int = 0

    def __post_init__(self) -> None:
        if self.goto is not None:
            check_goto(self.table, self.goto)
        for a in self.actions:
            if isinstance(a, Ct) and a.table is not None:
                check_goto(self.table, a.table)
        if not 0 <= self.priority <= 0xFFFF:
            raise ValueError(f"priority {self.priority} out of range")

    @property
    def key(self) -> tuple[int, int, Match]:
        return (self.table.id, self.priority, self.match)

    def with_cookie(self, cookie: int) -> Flow:
        return Flow(
            self.table, self.priority, self.match, self.actions, self.write_metadata, self.goto, cookie
        )

    def same_effect(self, other: Flow) -> bool:
        """Equal actions/instructions/cookie (the key is assumed equal)."""
        return (
            self.actions == other.actions
            and self.write_metadata == other.write_metadata
            and (self.goto.id if self.goto else None) == (other.goto.id if other.goto else None)
            and self.cookie == other.cookie
        )

    def text(self, names: bool = True) -> str:
        tbl = self.table.name if names else str(self.table.id)
        m = _match_text(self.match)
        head = f"table={tbl}, priority={self.priority}" + (f",{m}" if m else "")
        acts = [a.text(names) if isinstance(a, Ct) else str(a) for a in self.actions]
        if self.write_metadata is not None:
            v, mk = self.write_metadata
            acts.append(f"write_metadata:{v:#x}/{mk:#x}" if v else f"write_metadata:0/{mk:#x}")
        if self.goto is not None:
            acts.append(f"goto_table:{self.goto.name if names else self.goto.id}")
        return f"{head} actions={','.join(acts) or 'drop'}"

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True)
class Group:
    """An OpenFlow group (type ALL is the only one the pipeline uses); buckets are action tuples."""

    group_id: int
    buckets: tuple[tuple[Action, ...], ...] = ()
    type: str = "all"

    def __str__(self) -> str:
        b = "".join(f",bucket=actions={','.join(str(a) for a in bk)}" for bk in self.buckets)
        return f"group_id={self.group_id},type={self.type}{b}"


# ---- text ------------------------------------------------------------------------------------

_OVS_NAME = {
    "in_port": "in_port",
    "metadata": "metadata",
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst",
    "ip_dscp": "ip_dscp",
    "arp_op": "arp_op",
    "arp_spa": "arp_spa",
    "arp_tpa": "arp_tpa",
    "arp_sha": "arp_sha",
    "arp_tha": "arp_tha",
    "tunnel_id": "tun_id",
    "tcp_src": "tp_src",
    "tcp_dst": "tp_dst",
    "udp_src": "tp_src",
    "udp_dst": "tp_dst",
    "icmpv4_type": "icmp_type",
    "vlan_vid": "vlan_vid",
}
_PROTO_NAMES = {
    (0x0800, None): "ip",
    (0x0806, None): "arp",
    (0x0800, 6): "tcp",
    (0x0800, 17): "udp",
    (0x0800, 1): "icmp",
}


def _fmt_hex(v: int, m) -> str:
    if m is None:
        return f"{v:#x}" if v else "0"
    return f"{v:#x}/{m:#x}" if v else f"0/{m:#x}"


def _match_text(match: Match) -> str:
    d = {n: (v, m) for n, v, m in match.fields}
    out: list[str] = []
    et = d.get("eth_type", (None, None))[0]
    proto = d.get("ip_proto", (None, None))[0]
    short = _PROTO_NAMES.get((et, proto)) or _PROTO_NAMES.get((et, None))
    if short:
        out.append(short)
    for n, v, m in match.fields:
        if n == "eth_type":
            if not short:
                out.append(f"dl_type={v:#06x}")
            continue
        if n == "ip_proto":
            if _PROTO_NAMES.get((et, proto)) is None:
                out.append(f"nw_proto={v}")
            continue
        if n == "vlan_vid":
            out.append(f"dl_vlan={v & 0xFFF}" if m is None else f"vlan_vid={_fmt_hex(v, m)}")
        elif n in ("metadata", "tunnel_id", "tcp_flags"):
            out.append(f"{_OVS_NAME.get(n, n)}={_fmt_hex(v, m)}")
        else:
            out.append(f"{_OVS_NAME[n]}={v}" + (f"/{m}" if m is not None else ""))
    return ",".join(out)
