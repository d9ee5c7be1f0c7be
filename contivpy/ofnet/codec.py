"""Our own OpenFlow 1.3 + Nicira-extension codec, limited to the messages contivpy exchanges.

Written from the OpenFlow 1.3.5 specification and the Nicira extension layouts documented with
Open vSwitch (ovs-fields(7), ovs-actions(7)); docs/ovs-pipeline.md lists the wire layouts used.
No third-party code: everything is ``struct`` packing.

Encoded (controller -> switch): HELLO, ECHO_REQUEST/REPLY, FEATURES_REQUEST, BARRIER_REQUEST,
FLOW_MOD (ADD / MODIFY_STRICT / DELETE_STRICT), GROUP_MOD, PACKET_OUT, MULTIPART_REQUEST
(flow stats, group desc).  Decoded (switch -> controller): HELLO, ERROR, ECHO_REQUEST/REPLY,
FEATURES_REPLY, PACKET_IN, BARRIER_REPLY, MULTIPART_REPLY (flow stats, group desc); every
other type becomes an :class:`OfMessage` with its raw body (correlated by xid only).  FLOW_MOD,
GROUP_MOD and PACKET_OUT are decoded too, so every encoding round-trips in the unit tests.

Match fields: the OXM basic class (fields the pipeline uses), tcp_flags as the ONF experimenter
OXM (OpenFlow 1.3 has no standard one), and on decode the NXM classes 0/1 as well (OVS names
``move`` operands with NXM headers).  Actions: output (ports, CONTROLLER, NORMAL, IN_PORT,
TABLE), group, push_vlan, pop_vlan, set_field, Nicira reg_move, ct (immediate zone, commit,
recirculation table) with a nested nat (one address, optional port).  Instructions: apply
actions, write_metadata, goto_table.

Invariants: ``flow_from_stats(parse(encode(flow)))`` == flow for every flow the pipeline builds,
and ``ovs-ofctl ofp-parse`` of our bytes equals ``ovs-ofctl parse-flows`` of the flow's text
(tests/unit/test_ofnet_codec.py).  The bytes of a (flow, command) pair are memoised (flows are
immutable) and only the xid is patched per send.  Decoding never raises on a well-framed message
with content we do not model: unknown actions / instructions become :class:`Unsupported`
values, and :func:`flow_from_stats` / :func:`group_from_desc` refuse them with ``ValueError``.
Truncated or inconsistent lengths raise :class:`CodecError` (a ``ValueError``).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from .flows import (
    MOVE_FIELDS,
    OFPP_CONTROLLER,
    OFPP_NORMAL,
    Action,
    Controller,
    Ct,
    Flow,
    Group,
    GroupAction,
    Move,
    Nat,
    Normal,
    Output,
    PopVlan,
    PushVlan,
    SetField,
)
from .flows import Match as FlowMatch
from .pipeline import table_by_id

__all__ = [
    "OFP_VERSION",
    "ADD",
    "MODIFY_STRICT",
    "DELETE_STRICT",
    "GROUP_ADD",
    "GROUP_MODIFY",
    "GROUP_DELETE",
    "CodecError",
    "Request",
    "encode_msg",
    "hello",
    "echo_request",
    "echo_reply",
    "features_request",
    "barrier_request",
    "flow_stats_request",
    "group_desc_request",
    "encode_flow_mod",
    "encode_group_mod",
    "packet_out",
    "parse_message",
    "encode_actions",
    "decode_actions",
    "flow_from_stats",
    "group_from_desc",
    "error_text",
    "Unsupported",
    "OfMessage",
    "ErrorMsg",
    "EchoRequest",
    "EchoReply",
    "Hello",
    "FeaturesReply",
    "PacketIn",
    "BarrierReply",
    "MultipartReply",
    "FlowStats",
    "GroupDesc",
    "FlowModMsg",
    "GroupModMsg",
    "PacketOutMsg",
    "OFPMPF_REPLY_MORE",
]

# ---- constants (OpenFlow 1.3.5 spec, section 7) ----------------------------------------------
OFP_VERSION = 0x04
T_HELLO, T_ERROR, T_ECHO_REQUEST, T_ECHO_REPLY = 0, 1, 2, 3
T_FEATURES_REQUEST, T_FEATURES_REPLY = 5, 6
T_PACKET_IN, T_PACKET_OUT, T_FLOW_MOD, T_GROUP_MOD = 10, 13, 14, 15
T_MULTIPART_REQUEST, T_MULTIPART_REPLY, T_BARRIER_REQUEST, T_BARRIER_REPLY = 18, 19, 20, 21

ADD, MODIFY_STRICT, DELETE_STRICT = 0, 2, 4  # OFPFC_*
GROUP_ADD, GROUP_MODIFY, GROUP_DELETE = 0, 1, 2  # OFPGC_*
GT_ALL, GT_SELECT = 0, 1
MP_FLOW, MP_GROUP_DESC = 1, 7
OFPMPF_REPLY_MORE = 1
OFP_NO_BUFFER = 0xFFFFFFFF
OFPP_ANY = 0xFFFFFFFF
OFPG_ANY = 0xFFFFFFFF
OFPTT_ALL = 0xFF
IT_GOTO_TABLE, IT_WRITE_METADATA, IT_WRITE_ACTIONS, IT_APPLY_ACTIONS = 1, 2, 3, 4
AT_OUTPUT, AT_PUSH_VLAN, AT_POP_VLAN, AT_GROUP, AT_SET_FIELD, AT_EXPERIMENTER = 0, 17, 18, 22, 25, 0xFFFF

#: OFPET_* names by error type (used in error texts and logs)
ERROR_TYPES = {
    0: "OFPET_HELLO_FAILED", 1: "OFPET_BAD_REQUEST", 2: "OFPET_BAD_ACTION", 3: "OFPET_BAD_INSTRUCTION",
    4: "OFPET_BAD_MATCH", 5: "OFPET_FLOW_MOD_FAILED", 6: "OFPET_GROUP_MOD_FAILED", 7: "OFPET_PORT_MOD_FAILED",
    8: "OFPET_TABLE_MOD_FAILED", 9: "OFPET_QUEUE_OP_FAILED", 10: "OFPET_SWITCH_CONFIG_FAILED",
    11: "OFPET_ROLE_REQUEST_FAILED", 12: "OFPET_METER_MOD_FAILED", 13: "OFPET_TABLE_FEATURES_FAILED",
    0xFFFF: "OFPET_EXPERIMENTER",
}  # fmt: skip

# Nicira vendor extensions (nicira-ext.h): experimenter id and action subtypes
NX_VENDOR = 0x00002320
NXAST_REG_MOVE, NXAST_CT, NXAST_NAT = 6, 35, 36
NX_CT_F_COMMIT = 1
NX_CT_RECIRC_NONE = 0xFF
NX_NAT_F_SRC, NX_NAT_F_DST = 1, 2
NX_NAT_RANGE_IPV4_MIN, NX_NAT_RANGE_IPV4_MAX = 1, 2
NX_NAT_RANGE_IPV6_MIN, NX_NAT_RANGE_IPV6_MAX = 4, 8
NX_NAT_RANGE_PROTO_MIN, NX_NAT_RANGE_PROTO_MAX = 16, 32
ONF_EXPERIMENTER = 0x4F4E4600  # "ONF\0": class of ONFOXM_ET_TCP_FLAGS in OpenFlow 1.3

_HDR = struct.Struct("!BBHI")
_ALL64 = (1 << 64) - 1


class CodecError(ValueError):
    """A message whose lengths do not add up (truncated or corrupt)."""


# ---- match fields ----------------------------------------------------------------------------
# name -> (class, field, value length).  Class 0x8000 = OXM basic; 0xffff = experimenter (ONF);
# 0x0000 / 0x0001 = NXM (decode only, except registers which have no OXM basic field).
_OXM = {
    "in_port": (0x8000, 0, 4), "metadata": (0x8000, 2, 8), "eth_dst": (0x8000, 3, 6),
    "eth_src": (0x8000, 4, 6), "eth_type": (0x8000, 5, 2), "vlan_vid": (0x8000, 6, 2),
    "ip_dscp": (0x8000, 8, 1), "ip_proto": (0x8000, 10, 1), "ipv4_src": (0x8000, 11, 4),
    "ipv4_dst": (0x8000, 12, 4), "tcp_src": (0x8000, 13, 2), "tcp_dst": (0x8000, 14, 2),
    "udp_src": (0x8000, 15, 2), "udp_dst": (0x8000, 16, 2), "icmpv4_type": (0x8000, 19, 1),
    "arp_op": (0x8000, 21, 2),
    "arp_spa": (0x8000, 22, 4), "arp_tpa": (0x8000, 23, 4), "arp_sha": (0x8000, 24, 6),
    "arp_tha": (0x8000, 25, 6), "tunnel_id": (0x8000, 38, 8), "tcp_flags": (0xFFFF, 42, 2),
    **{f"reg{i}": (0x0001, i, 4) for i in range(8)},
}  # fmt: skip
_NXM_DECODE = {
    (0x0000, 1): "eth_dst", (0x0000, 2): "eth_src", (0x0000, 3): "eth_type", (0x0000, 6): "ip_proto",
    (0x0000, 7): "ipv4_src", (0x0000, 8): "ipv4_dst", (0x0000, 9): "tcp_src", (0x0000, 10): "tcp_dst",
    (0x0000, 11): "udp_src", (0x0000, 12): "udp_dst", (0x0000, 13): "icmpv4_type", (0x0000, 15): "arp_op", (0x0000, 16): "arp_spa",
    (0x0000, 17): "arp_tpa", (0x0001, 16): "tunnel_id", (0x0001, 17): "arp_sha", (0x0001, 18): "arp_tha",
    (0x0001, 34): "tcp_flags",
}  # fmt: skip
_BY_HEADER = {(c, f): n for n, (c, f, _) in _OXM.items()} | _NXM_DECODE
_MACS = frozenset(("eth_src", "eth_dst", "arp_sha", "arp_tha"))
_IPS = frozenset(("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"))


def _val_bytes(name: str, v, n: int) -> bytes:
    if name in _MACS:
        return bytes.fromhex(v.replace(":", ""))
    if name in _IPS:
        return ipaddress.IPv4Address(v).packed
    return int(v).to_bytes(n, "big")


def _val_from(name: str, b: bytes):
    if name in _MACS:
        return b.hex(":")
    if name in _IPS:
        if len(b) != 4:
            raise ValueError(f"{name}: {len(b)} bytes, not an IPv4 address")
        return socket.inet_ntoa(b)  # str(IPv4Address(b)), 10x cheaper (a reconnect decodes every flow)
    return int.from_bytes(b, "big")


def _header(name: str, masked: bool = False) -> int:
    cls, fld, n = _OXM[name]
    length = 2 * n if masked else n
    if cls == 0xFFFF:
        length += 4  # the experimenter id counts in the length
    return cls << 16 | fld << 9 | (0x100 if masked else 0) | length


def _oxm(name: str, value, mask) -> bytes:
    cls, _, n = _OXM[name]
    hdr = struct.pack("!I", _header(name, mask is not None))
    if cls == 0xFFFF:
        hdr += struct.pack("!I", ONF_EXPERIMENTER)
    body = _val_bytes(name, value, n)
    return hdr + body if mask is None else hdr + body + _val_bytes(name, mask, n)


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def encode_match(match: FlowMatch) -> bytes:
    """An ``ofp_match`` of type OXM, padded to 8 bytes."""
    oxm = b"".join(_oxm(n, v, m) for n, v, m in match.fields)
    return _pad8(struct.pack("!HH", 1, 4 + len(oxm)) + oxm)


class OxmMatch(dict):
    """A decoded match: field name -> value, or (value, mask) when masked.  Fields we do not model
    appear as ``"oxm:<class>:<field>"`` -> raw bytes (so a read-back using them fails loudly)."""


def _decode_oxms(buf: bytes, off: int, end: int) -> OxmMatch:
    out = OxmMatch()
    while off + 4 <= end:
        (hdr,) = struct.unpack_from("!I", buf, off)
        cls, fld, has_mask, n = hdr >> 16, (hdr >> 9) & 0x7F, hdr & 0x100, hdr & 0xFF
        p, stop = off + 4, off + 4 + n
        if stop > end:
            raise CodecError("OXM field overruns the match")
        if cls == 0xFFFF:  # experimenter OXM: 4-byte experimenter id, then value(/mask)
            (exp,) = struct.unpack_from("!I", buf, p)
            name = _BY_HEADER.get((cls, fld)) if exp == ONF_EXPERIMENTER else None
            p += 4
        else:
            name = _BY_HEADER.get((cls, fld))
        vlen = (stop - p) // 2 if has_mask else stop - p
        if name is None:
            out[f"oxm:{cls:#x}:{fld}"] = bytes(buf[p:stop])
        else:
            v = _val_from(name, buf[p : p + vlen])
            out[name] = (v, _val_from(name, buf[p + vlen : stop])) if has_mask else v
        off = stop
    return out


def _decode_match(buf: bytes, off: int) -> tuple[OxmMatch, int]:
    """(match, offset after the padded match)."""
    mtype, mlen = struct.unpack_from("!HH", buf, off)
    if mtype != 1 or mlen < 4 or off + mlen > len(buf):
        raise CodecError(f"bad ofp_match (type {mtype}, length {mlen})")
    return _decode_oxms(buf, off + 4, off + mlen), off + mlen + (-mlen % 8)


def _field_by_header(hdr: int) -> str | None:
    cls, fld = hdr >> 16, (hdr >> 9) & 0x7F
    return _BY_HEADER.get((cls, fld))


# ---- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unsupported:
    """An action or instruction we decode but do not model; ``flow_from_stats`` refuses it."""

    text: str

    def __str__(self) -> str:
        return self.text


def _output(port: int, max_len: int = 0) -> bytes:
    return struct.pack("!HHIH6x", AT_OUTPUT, 16, port, max_len)


def _nx(subtype: int, body: bytes) -> bytes:
    """A Nicira vendor action: type, length, vendor, subtype, then ``body`` (padded to 8)."""
    raw = _pad8(struct.pack("!HHIH", AT_EXPERIMENTER, 0, NX_VENDOR, subtype) + body)
    return raw[:2] + struct.pack("!H", len(raw)) + raw[4:]


def _nat_action(nat: Nat) -> bytes:
    flags = {None: 0, "src": NX_NAT_F_SRC, "dst": NX_NAT_F_DST}[nat.kind]
    present, ranges = 0, b""
    if nat.ip is not None:  # one address: min only (max = min), as ovs-ofctl encodes it
        present |= NX_NAT_RANGE_IPV4_MIN
        ranges += ipaddress.IPv4Address(nat.ip).packed
    if nat.port is not None:
        present |= NX_NAT_RANGE_PROTO_MIN
        ranges += struct.pack("!H", nat.port)
    return _nx(NXAST_NAT, struct.pack("!2xHH", flags, present) + ranges)


def _ct_action(a: Ct) -> bytes:
    nested = _nat_action(a.nat) if a.nat is not None else b""
    table = a.table.id if a.table is not None else NX_CT_RECIRC_NONE
    flags = NX_CT_F_COMMIT if a.commit else 0
    # flags, zone_src (0 = immediate zone), zone value, recirc table, pad[3], alg
    return _nx(NXAST_CT, struct.pack("!HIHB3xH", flags, 0, a.zone, table, 0) + nested)


def _action(a: Action) -> bytes:
    if isinstance(a, Output):
        return _output(a.port)
    if isinstance(a, Controller):
        return _output(OFPP_CONTROLLER, a.max_len)
    if isinstance(a, Normal):
        return _output(OFPP_NORMAL)
    if isinstance(a, GroupAction):
        return struct.pack("!HHI", AT_GROUP, 8, a.group_id)
    if isinstance(a, PushVlan):
        return struct.pack("!HHH2x", AT_PUSH_VLAN, 8, a.ethertype)
    if isinstance(a, PopVlan):
        return struct.pack("!HH4x", AT_POP_VLAN, 8)
    if isinstance(a, SetField):
        if a.name not in _OXM or _OXM[a.name][0] != 0x8000:
            raise ValueError(f"set_field: unsupported field {a.name!r}")
        body = _pad8(struct.pack("!HH", AT_SET_FIELD, 0) + _oxm(a.name, a.value, None))
        return struct.pack("!HH", AT_SET_FIELD, len(body)) + body[4:]
    if isinstance(a, Move):  # n_bits, src_ofs, dst_ofs, src header, dst header
        return _nx(NXAST_REG_MOVE, struct.pack("!HHHII", a.width, 0, 0, _header(a.src), _header(a.dst)))
    if isinstance(a, Ct):
        return _ct_action(a)
    raise TypeError(f"unknown action {a!r}")


def encode_actions(actions) -> bytes:
    return b"".join(_action(a) for a in actions)


def _decode_nat(buf: bytes, off: int, end: int):
    flags, present = struct.unpack_from("!2xHH", buf, off + 10)
    kind = {0: None, NX_NAT_F_SRC: "src", NX_NAT_F_DST: "dst"}.get(flags, "?")
    p, vals = off + 16, {}
    for bit, size in ((1, 4), (2, 4), (4, 16), (8, 16), (16, 2), (32, 2)):
        if present & bit:
            if p + size > end:
                raise CodecError("nat range overruns the action")
            vals[bit] = bytes(buf[p : p + size])
            p += size
    ip_min, ip_max = vals.get(NX_NAT_RANGE_IPV4_MIN), vals.get(NX_NAT_RANGE_IPV4_MAX)
    pmin, pmax = vals.get(NX_NAT_RANGE_PROTO_MIN), vals.get(NX_NAT_RANGE_PROTO_MAX)
    if (
        kind == "?"
        or present & (NX_NAT_RANGE_IPV6_MIN | NX_NAT_RANGE_IPV6_MAX)
        or ip_max not in (None, ip_min)
        or pmax not in (None, pmin)
        or (ip_min is None and pmin is not None)
    ):
        return Unsupported(f"unsupported nat range in read-back: flags={flags} present={present}")
    try:
        ip = str(ipaddress.IPv4Address(ip_min)) if ip_min is not None else None
        return Nat(kind, ip, int.from_bytes(pmin, "big") if pmin is not None else None)
    except ValueError as e:
        return Unsupported(f"unsupported nat in read-back: {e}")


def _decode_nx(buf: bytes, off: int, end: int):
    (subtype,) = struct.unpack_from("!H", buf, off + 8)
    if subtype == NXAST_REG_MOVE:
        n_bits, src_ofs, dst_ofs, src_h, dst_h = struct.unpack_from("!HHHII", buf, off + 10)
        src, dst = _field_by_header(src_h), _field_by_header(dst_h)
        if src not in MOVE_FIELDS or dst not in MOVE_FIELDS:
            return Unsupported(f"unsupported move field in read-back: {src_h:#x}->{dst_h:#x}")
        if src_ofs or dst_ofs or n_bits != MOVE_FIELDS[src][1] or n_bits != MOVE_FIELDS[dst][1]:
            return Unsupported(f"unsupported partial move in read-back: {src}[{src_ofs}+{n_bits}]->{dst}")
        return Move(src, dst)
    if subtype == NXAST_CT:
        flags, zone_src, zone, table, alg = struct.unpack_from("!HIHB3xH", buf, off + 10)
        if zone_src or alg or flags & ~NX_CT_F_COMMIT:
            return Unsupported(f"unsupported ct action in read-back: flags={flags} zone_src={zone_src:#x}")
        nat = None
        for n in decode_actions(buf, off + 24, end):
            if not isinstance(n, Nat):
                return Unsupported(f"unsupported ct nested action in read-back: {n}")
            nat = n
        try:
            return Ct(zone, None if table == NX_CT_RECIRC_NONE else table_by_id(table), bool(flags), nat)
        except (KeyError, ValueError) as e:
            return Unsupported(f"unsupported ct action in read-back: {e}")
    if subtype == NXAST_NAT:
        return _decode_nat(buf, off, end)
    return Unsupported(f"unsupported Nicira action subtype {subtype} in read-back")


def decode_actions(buf: bytes, off: int = 0, end: int | None = None) -> list:
    """Actions in ``buf[off:end]`` as flow values (:class:`Unsupported` for what we do not model)."""
    end = len(buf) if end is None else end
    out: list = []
    while off < end:
        if off + 8 > end:
            raise CodecError("truncated action")
        atype, alen = struct.unpack_from("!HH", buf, off)
        if alen < 8 or alen % 8 or off + alen > end:
            raise CodecError(f"bad action length {alen}")
        if atype == AT_OUTPUT:
            port, max_len = struct.unpack_from("!IH", buf, off + 4)
            out.append(
                Controller(max_len)
                if port == OFPP_CONTROLLER
                else Normal()
                if port == OFPP_NORMAL
                else Output(port)
            )
        elif atype == AT_GROUP:
            out.append(GroupAction(struct.unpack_from("!I", buf, off + 4)[0]))
        elif atype == AT_PUSH_VLAN:
            out.append(PushVlan(struct.unpack_from("!H", buf, off + 4)[0]))
        elif atype == AT_POP_VLAN:
            out.append(PopVlan())
        elif atype == AT_SET_FIELD:
            (hdr,) = struct.unpack_from("!I", buf, off + 4)
            fields = _decode_oxms(buf, off + 4, min(off + alen, off + 8 + (hdr & 0xFF)))
            (name, value), *_ = fields.items() if fields else ((None, None),)
            if name is None or name.startswith("oxm:") or isinstance(value, tuple):
                out.append(Unsupported(f"unsupported set_field in read-back: header {hdr:#x}"))
            else:
                out.append(SetField(name, value))
        elif atype == AT_EXPERIMENTER and struct.unpack_from("!I", buf, off + 4)[0] == NX_VENDOR:
            out.append(_decode_nx(buf, off, off + alen))
        else:
            out.append(Unsupported(f"unsupported action type {atype} in read-back"))
        off += alen
    return out


# ---- instructions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyActions:
    actions: tuple


@dataclass(frozen=True)
class WriteMetadata:
    metadata: int
    metadata_mask: int


@dataclass(frozen=True)
class GotoTable:
    table_id: int


def _decode_instructions(buf: bytes, off: int, end: int) -> list:
    out: list = []
    while off < end:
        if off + 8 > end:
            raise CodecError("truncated instruction")
        itype, ilen = struct.unpack_from("!HH", buf, off)
        if ilen < 8 or off + ilen > end:
            raise CodecError(f"bad instruction length {ilen}")
        if itype == IT_APPLY_ACTIONS:
            out.append(ApplyActions(tuple(decode_actions(buf, off + 8, off + ilen))))
        elif itype == IT_WRITE_METADATA:
            out.append(WriteMetadata(*struct.unpack_from("!QQ", buf, off + 8)))
        elif itype == IT_GOTO_TABLE:
            out.append(GotoTable(buf[off + 4]))
        else:
            out.append(Unsupported(f"unsupported instruction type {itype} in read-back"))
        off += ilen
    return out


# ---- requests (controller -> switch) ---------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """A message to send: type and body; :meth:`encode` adds the header with an xid."""

    type: int
    body: bytes = b""

    def encode(self, xid: int) -> bytes:
        return _HDR.pack(OFP_VERSION, self.type, 8 + len(self.body), xid) + self.body


def encode_msg(msg: Request, xid: int) -> bytes:
    return msg.encode(xid)


def hello() -> Request:
    # one version-bitmap element announcing OpenFlow 1.3 only
    return Request(T_HELLO, struct.pack("!HHI", 1, 8, 1 << OFP_VERSION))


def echo_request(data: bytes = b"") -> Request:
    return Request(T_ECHO_REQUEST, bytes(data))


def echo_reply(data: bytes = b"") -> Request:
    return Request(T_ECHO_REPLY, bytes(data))


def features_request() -> Request:
    return Request(T_FEATURES_REQUEST)


def barrier_request() -> Request:
    return Request(T_BARRIER_REQUEST)


def flow_stats_request(cookie: int = 0, cookie_mask: int = 0, table_id: int = OFPTT_ALL) -> Request:
    body = struct.pack("!HH4xB3xII4xQQ", MP_FLOW, 0, table_id, OFPP_ANY, OFPG_ANY, cookie, cookie_mask)
    return Request(T_MULTIPART_REQUEST, body + encode_match(FlowMatch()))


def group_desc_request() -> Request:
    return Request(T_MULTIPART_REQUEST, struct.pack("!HH4x", MP_GROUP_DESC, 0))


def packet_out(in_port: int, actions, data: bytes) -> Request:
    acts = encode_actions(actions)
    return Request(
        T_PACKET_OUT, struct.pack("!IIH6x", OFP_NO_BUFFER, in_port, len(acts)) + acts + bytes(data)
    )


def _patch_xid(b: bytes, xid: int) -> bytes:
    return b[:4] + struct.pack("!I", xid) + b[8:]


def _flow_mod(flow: Flow, command: int) -> bytes:
    inst = b""
    if command != DELETE_STRICT:
        if flow.actions:
            acts = encode_actions(flow.actions)
            inst += struct.pack("!HH4x", IT_APPLY_ACTIONS, 8 + len(acts)) + acts
        if flow.write_metadata is not None:
            inst += struct.pack("!HH4xQQ", IT_WRITE_METADATA, 24, *flow.write_metadata)
        if flow.goto is not None:
            inst += struct.pack("!HHB3x", IT_GOTO_TABLE, 8, flow.goto.id)
    cookie_mask = _ALL64 if command == DELETE_STRICT else 0
    body = struct.pack(
        "!QQBBHHHIIIH2x", flow.cookie, cookie_mask, flow.table.id, command, 0, 0, flow.priority,
        OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0,
    ) + encode_match(flow.match) + inst  # fmt: skip
    return _HDR.pack(OFP_VERSION, T_FLOW_MOD, 8 + len(body), 0) + body


_flow_bytes = lru_cache(maxsize=1 << 16)(_flow_mod)


def encode_flow_mod(flow: Flow, command: int, xid: int) -> bytes:
    """FLOW_MOD bytes (memoised per (flow, command); DELETE_STRICT matches the cookie exactly)."""
    return _patch_xid(_flow_bytes(flow, command), xid)


@lru_cache(maxsize=1 << 16)
def _bucket(actions: tuple, gtype: int) -> bytes:
    """One bucket's bytes (memoised: a flood group is re-sent whole with one bucket more or less,
    so nearly all of its buckets were encoded before)."""
    acts = encode_actions(actions)
    # len, weight (select groups: equal weights of 1, as ovs-ofctl defaults), watch_port,
    # watch_group, pad[4]
    weight = 1 if gtype == GT_SELECT else 0
    return struct.pack("!HHII4x", 16 + len(acts), weight, OFPP_ANY, OFPG_ANY) + acts


def encode_group_mod(group: Group, command: int, xid: int) -> bytes:
    gtype = {"all": GT_ALL, "select": GT_SELECT}[group.type]
    buckets = b""
    if command != GROUP_DELETE:
        buckets = b"".join(_bucket(tuple(b), gtype) for b in group.buckets)
    body = struct.pack("!HBxI", command, gtype, group.group_id) + buckets
    return _HDR.pack(OFP_VERSION, T_GROUP_MOD, 8 + len(body), xid) + body


# ---- decoded messages (switch -> controller) -------------------------------------------------
@dataclass
class OfMessage:
    """A message of a type we do not model (port status, flow removed, ...)."""

    type: int
    xid: int
    body: bytes = b""


@dataclass
class Hello:
    xid: int
    version: int


@dataclass
class ErrorMsg:
    xid: int
    type: int
    code: int
    data: bytes = b""


@dataclass
class EchoRequest:
    xid: int
    data: bytes = b""


@dataclass
class EchoReply:
    xid: int
    data: bytes = b""


@dataclass
class BarrierReply:
    xid: int


@dataclass
class FeaturesReply:
    xid: int
    datapath_id: int
    n_buffers: int
    n_tables: int
    auxiliary_id: int
    capabilities: int


@dataclass
class PacketIn:
    xid: int
    buffer_id: int
    total_len: int
    reason: int
    table_id: int
    cookie: int
    match: OxmMatch
    data: bytes


@dataclass
class FlowStats:
    table_id: int
    priority: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    cookie: int
    packet_count: int
    byte_count: int
    match: OxmMatch
    instructions: list


@dataclass
class GroupDesc:
    type: int
    group_id: int
    buckets: list  # [Bucket]


@dataclass
class Bucket:
    weight: int
    watch_port: int
    watch_group: int
    actions: list


@dataclass
class MultipartReply:
    xid: int
    mp_type: int
    flags: int
    body: list = field(default_factory=list)  # FlowStats / GroupDesc entries; raw bytes otherwise


@dataclass
class FlowModMsg:
    xid: int
    cookie: int
    cookie_mask: int
    table_id: int
    command: int
    idle_timeout: int
    hard_timeout: int
    priority: int
    buffer_id: int
    out_port: int
    out_group: int
    flags: int
    match: OxmMatch
    instructions: list


@dataclass
class GroupModMsg:
    xid: int
    command: int
    type: int
    group_id: int
    buckets: list


@dataclass
class PacketOutMsg:
    xid: int
    buffer_id: int
    in_port: int
    actions: list
    data: bytes


def _buckets(buf: bytes, off: int, end: int) -> list[Bucket]:
    out = []
    while off < end:
        blen, weight, wport, wgroup = struct.unpack_from("!HHII", buf, off)
        if blen < 16 or off + blen > end:
            raise CodecError(f"bad bucket length {blen}")
        out.append(Bucket(weight, wport, wgroup, decode_actions(buf, off + 16, off + blen)))
        off += blen
    return out


def _flow_stats(buf: bytes, off: int, end: int) -> list[FlowStats]:
    out = []
    while off < end:
        (ln, table_id, _s, _ns, prio, idle, hard, flags, cookie, pkts, nbytes) = struct.unpack_from(
            "!HBxIIHHHH4xQQQ", buf, off
        )
        if ln < 56 or off + ln > end:
            raise CodecError(f"bad flow stats length {ln}")
        match, p = _decode_match(buf, off + 48)
        inst = _decode_instructions(buf, p, off + ln)
        out.append(FlowStats(table_id, prio, idle, hard, flags, cookie, pkts, nbytes, match, inst))
        off += ln
    return out


def _group_desc(buf: bytes, off: int, end: int) -> list[GroupDesc]:
    out = []
    while off < end:
        ln, gtype, gid = struct.unpack_from("!HBxI", buf, off)
        if ln < 8 or off + ln > end:
            raise CodecError(f"bad group desc length {ln}")
        out.append(GroupDesc(gtype, gid, _buckets(buf, off + 8, off + ln)))
        off += ln
    return out


def parse_message(buf: bytes):
    """One whole message (header included) -> a decoded message object with ``xid``."""
    if len(buf) < 8:
        raise CodecError("message shorter than the OpenFlow header")
    version, t, length, xid = _HDR.unpack_from(buf)
    if length != len(buf):
        raise CodecError(f"message length {length} != {len(buf)} bytes received")
    try:
        return _parse_body(bytes(buf), t, xid, version)
    except struct.error as e:
        raise CodecError(f"truncated message of type {t}: {e}") from None


def _parse_body(buf: bytes, t: int, xid: int, version: int):
    if t == T_HELLO:
        return Hello(xid, version)
    if t == T_ERROR:
        etype, code = struct.unpack_from("!HH", buf, 8)
        return ErrorMsg(xid, etype, code, buf[12:])
    if t == T_ECHO_REQUEST:
        return EchoRequest(xid, buf[8:])
    if t == T_ECHO_REPLY:
        return EchoReply(xid, buf[8:])
    if t == T_BARRIER_REPLY:
        return BarrierReply(xid)
    if t == T_FEATURES_REPLY:
        dpid, nbuf, ntab, aux, caps = struct.unpack_from("!QIBB2xI", buf, 8)
        return FeaturesReply(xid, dpid, nbuf, ntab, aux, caps)
    if t == T_PACKET_IN:
        buffer_id, total_len, reason, table_id, cookie = struct.unpack_from("!IHBBQ", buf, 8)
        match, p = _decode_match(buf, 24)
        return PacketIn(xid, buffer_id, total_len, reason, table_id, cookie, match, buf[p + 2 :])
    if t == T_MULTIPART_REPLY:
        mp_type, flags = struct.unpack_from("!HH", buf, 8)
        if mp_type == MP_FLOW:
            body: list = _flow_stats(buf, 16, len(buf))
        elif mp_type == MP_GROUP_DESC:
            body = _group_desc(buf, 16, len(buf))
        else:
            body = [buf[16:]]
        return MultipartReply(xid, mp_type, flags, body)
    if t == T_FLOW_MOD:
        f = struct.unpack_from("!QQBBHHHIIIH", buf, 8)
        match, p = _decode_match(buf, 48)
        return FlowModMsg(xid, *f, match, _decode_instructions(buf, p, len(buf)))
    if t == T_GROUP_MOD:
        cmd, gtype, gid = struct.unpack_from("!HBxI", buf, 8)
        return GroupModMsg(xid, cmd, gtype, gid, _buckets(buf, 16, len(buf)))
    if t == T_PACKET_OUT:
        buffer_id, in_port, alen = struct.unpack_from("!IIH", buf, 8)
        if 24 + alen > len(buf):
            raise CodecError("packet-out actions overrun the message")
        return PacketOutMsg(xid, buffer_id, in_port, decode_actions(buf, 24, 24 + alen), buf[24 + alen :])
    return OfMessage(t, xid, buf[8:])


# ---- read-back into flow values --------------------------------------------------------------
def _checked(actions) -> tuple[Action, ...]:
    for a in actions:
        if isinstance(a, Unsupported):
            raise ValueError(a.text)
    return tuple(actions)


def flow_from_stats(st) -> Flow:
    """Flow value from a flow-stats entry (or a decoded FLOW_MOD): anything with ``table_id``,
    ``priority``, ``match``, ``instructions`` and ``cookie``.  ``ValueError`` for content we do
    not build (unknown fields, actions, instructions), or for an entry of another reply type
    (a reply whose multipart type was not flow stats carries raw bytes)."""
    if not all(hasattr(st, f) for f in ("table_id", "priority", "match", "instructions", "cookie")):
        raise CodecError(f"not a flow stats entry: {type(st).__name__}")
    actions: tuple[Action, ...] = ()
    wm = None
    goto = None
    for ins in st.instructions:
        if isinstance(ins, ApplyActions):
            actions = _checked(ins.actions)
        elif isinstance(ins, WriteMetadata):
            wm = (ins.metadata, ins.metadata_mask)
        elif isinstance(ins, GotoTable):
            goto = table_by_id(ins.table_id)
        else:
            raise ValueError(f"unsupported instruction in read-back: {ins}")
    unknown = [k for k in st.match if k.startswith("oxm:")]
    if unknown:
        raise ValueError(f"unsupported match field in read-back: {unknown[0]}")
    match = FlowMatch.of(**st.match)
    return Flow(table_by_id(st.table_id), st.priority, match, actions, wm, goto, st.cookie)


def group_from_desc(d) -> Group:
    gtype = {GT_ALL: "all", GT_SELECT: "select"}.get(d.type, str(d.type))
    return Group(d.group_id, tuple(_checked(b.actions) for b in d.buckets), gtype)


def error_text(etype: int, code: int) -> str:
    return f"{ERROR_TYPES.get(etype, etype)} code={code}"
