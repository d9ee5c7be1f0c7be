"""Small packet codec: Ethernet (+ one 802.1Q tag), ARP, IPv4, UDP and TCP headers.

Only what the controller's punt paths need (ARP proxy, service first packet, DNS server):
:func:`parse` splits a frame into header values and the payload; the ``build_*`` functions
make the frames we send.  Written from the protocol RFCs (826 ARP, 791 IPv4, 768 UDP, 793 TCP,
1071 checksum); no third-party code.

Invariants: :func:`parse` never raises on wire input -- anything truncated or inconsistent
(short headers, IHL < 5, total length beyond the frame) returns None; IPv4 options are
skipped; the IPv4 header checksum and the UDP checksum of built frames are correct (a
receiver verifying them gets zero), and ``parse(build(x))`` gives back ``x``.  MACs are
lower-case colon text, IPv4 addresses dotted text.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "ETH_IP",
    "ETH_ARP",
    "ETH_VLAN",
    "ARP_REQUEST",
    "ARP_REPLY",
    "IP_TCP",
    "IP_UDP",
    "Ethernet",
    "Arp",
    "IPv4",
    "Udp",
    "Tcp",
    "Packet",
    "parse",
    "checksum",
    "build_arp",
    "build_udp",
    "build_tcp",
]

ETH_IP, ETH_ARP, ETH_VLAN = 0x0800, 0x0806, 0x8100
ARP_REQUEST, ARP_REPLY = 1, 2
IP_TCP, IP_UDP = 6, 17


@dataclass(frozen=True)
class Ethernet:
    dst: str
    src: str
    ethertype: int
    vlan_tci: int | None = None  # the 802.1Q TCI when the frame carries a tag


@dataclass(frozen=True)
class Arp:
    opcode: int
    src_mac: str
    src_ip: str
    dst_mac: str
    dst_ip: str


@dataclass(frozen=True)
class IPv4:
    src: str
    dst: str
    proto: int
    ttl: int = 64
    identification: int = 0
    tos: int = 0
    flags_frag: int = 0  # flags (3 bits) and fragment offset (13 bits) as on the wire


@dataclass(frozen=True)
class Udp:
    src_port: int
    dst_port: int


@dataclass(frozen=True)
class Tcp:
    src_port: int
    dst_port: int
    seq: int = 0
    ack: int = 0
    flags: int = 0


@dataclass(frozen=True)
class Packet:
    eth: Ethernet
    arp: Arp | None = None
    ip: IPv4 | None = None
    udp: Udp | None = None
    tcp: Tcp | None = None
    payload: bytes = b""


def _mac(b: bytes) -> str:
    return b.hex(":")


def _mac_bytes(s: str) -> bytes:
    b = bytes.fromhex(s.replace(":", "").replace("-", ""))
    if len(b) != 6:
        raise ValueError(f"invalid MAC address {s!r}")
    return b


def _ip(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def _ip_bytes(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse(frame: bytes) -> Packet | None:
    """Header values of an Ethernet frame; None when it is not a well-formed frame."""
    frame = bytes(frame)
    if len(frame) < 14:
        return None
    dst, src = _mac(frame[0:6]), _mac(frame[6:12])
    (etype,) = struct.unpack_from("!H", frame, 12)
    off, tci = 14, None
    if etype == ETH_VLAN:
        if len(frame) < 18:
            return None
        tci, etype = struct.unpack_from("!HH", frame, 14)
        off = 18
    eth = Ethernet(dst, src, etype, tci)
    if etype == ETH_ARP:
        if len(frame) < off + 28:
            return None
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, off)
        if htype != 1 or ptype != ETH_IP or hlen != 6 or plen != 4:
            return Packet(eth, payload=frame[off:])
        a = frame[off + 8 : off + 28]
        return Packet(eth, arp=Arp(op, _mac(a[0:6]), _ip(a[6:10]), _mac(a[10:16]), _ip(a[16:20])))
    if etype != ETH_IP:
        return Packet(eth, payload=frame[off:])
    if len(frame) < off + 20:
        return None
    vihl, tos, total, ident, ff, ttl, proto = struct.unpack_from("!BBHHHBB", frame, off)
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or len(frame) < off + total:
        return None
    ip = IPv4(_ip(frame[off + 12 : off + 16]), _ip(frame[off + 16 : off + 20]), proto, ttl, ident, tos, ff)
    l4, end = off + ihl, off + total  # bytes after ``end`` are Ethernet padding
    if ff & 0x1FFF:  # a non-first fragment carries no L4 header
        return Packet(eth, ip=ip, payload=frame[l4:end])
    if proto == IP_UDP:
        if end - l4 < 8:
            return None
        sp, dp, ulen = struct.unpack_from("!HHH", frame, l4)
        if ulen < 8 or l4 + ulen > end:
            return None
        return Packet(eth, ip=ip, udp=Udp(sp, dp), payload=frame[l4 + 8 : l4 + ulen])
    if proto == IP_TCP:
        if end - l4 < 20:
            return None
        sp, dp, seq, ack, offf = struct.unpack_from("!HHIIH", frame, l4)
        doff = (offf >> 12) * 4
        if doff < 20 or l4 + doff > end:
            return None
        return Packet(eth, ip=ip, tcp=Tcp(sp, dp, seq, ack, offf & 0x1FF), payload=frame[l4 + doff : end])
    return Packet(eth, ip=ip, payload=frame[l4:end])


def _eth(eth: Ethernet) -> bytes:
    head = _mac_bytes(eth.dst) + _mac_bytes(eth.src)
    if eth.vlan_tci is not None:
        head += struct.pack("!HH", ETH_VLAN, eth.vlan_tci)
    return head + struct.pack("!H", eth.ethertype)


def build_arp(eth: Ethernet, arp: Arp) -> bytes:
    """An Ethernet/ARP frame (hardware Ethernet, protocol IPv4); not padded to 60 bytes."""
    body = struct.pack("!HHBBH", 1, ETH_IP, 6, 4, arp.opcode)
    body += _mac_bytes(arp.src_mac) + _ip_bytes(arp.src_ip) + _mac_bytes(arp.dst_mac) + _ip_bytes(arp.dst_ip)
    return _eth(eth) + body


def _ipv4_header(ip: IPv4, payload_len: int) -> bytes:
    src, dst = _ip_bytes(ip.src), _ip_bytes(ip.dst)
    total = 20 + payload_len
    if total > 0xFFFF:
        raise ValueError("IPv4 packet too long")
    hdr = struct.pack("!BBHHHBBH", 0x45, ip.tos, total, ip.identification, ip.flags_frag, ip.ttl, ip.proto, 0)
    hdr += src + dst
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]


def build_udp(eth: Ethernet, ip: IPv4, udp: Udp, payload: bytes) -> bytes:
    """An Ethernet/IPv4/UDP frame with correct IPv4 header and UDP checksums (``ip.proto`` is set
    to UDP whatever it says)."""
    ulen = 8 + len(payload)
    pseudo = _ip_bytes(ip.src) + _ip_bytes(ip.dst) + struct.pack("!BBH", 0, IP_UDP, ulen)
    seg = struct.pack("!HHHH", udp.src_port, udp.dst_port, ulen, 0) + bytes(payload)
    csum = checksum(pseudo + seg) or 0xFFFF  # 0 means "no checksum" in UDP
    seg = seg[:6] + struct.pack("!H", csum) + seg[8:]
    ip = IPv4(ip.src, ip.dst, IP_UDP, ip.ttl, ip.identification, ip.tos, ip.flags_frag)
    return _eth(eth) + _ipv4_header(ip, len(seg)) + seg


def build_tcp(eth: Ethernet, ip: IPv4, tcp: Tcp, payload: bytes = b"") -> bytes:
    """An Ethernet/IPv4/TCP frame (20-byte TCP header, window 65535) with correct checksums."""
    seg = struct.pack(
        "!HHIIHHHH", tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack, 5 << 12 | tcp.flags, 0xFFFF, 0, 0
    )
    seg += bytes(payload)
    pseudo = _ip_bytes(ip.src) + _ip_bytes(ip.dst) + struct.pack("!BBH", 0, IP_TCP, len(seg))
    seg = seg[:16] + struct.pack("!H", checksum(pseudo + seg)) + seg[18:]
    ip = IPv4(ip.src, ip.dst, IP_TCP, ip.ttl, ip.identification, ip.tos, ip.flags_frag)
    return _eth(eth) + _ipv4_header(ip, len(seg)) + seg
