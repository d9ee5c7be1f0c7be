"""ofnet/packets.py: build/parse round trips, correct checksums, and no exception on any input."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from contivpy.ofnet import packets as P
from contivpy.ofnet.svcproxy import _parse

ETH = P.Ethernet("02:02:0a:01:01:02", "02:02:0a:01:01:01", P.ETH_IP)


def _l4_sum(frame: bytes, proto: int) -> int:
    ihl = (frame[14] & 0xF) * 4
    seg = frame[14 + ihl :]
    return P.checksum(frame[26:34] + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def test_checksum_known_value():
    # the IPv4 header example of RFC 1071 section 3 style: a header whose checksum field is filled sums to 0
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    c = P.checksum(hdr)
    assert c == 0xB861 and P.checksum(hdr[:10] + struct.pack("!H", c) + hdr[12:]) == 0
    assert P.checksum(b"\x01") == P.checksum(b"\x01\x00")


def test_udp_round_trip_and_checksums():
    ip = P.IPv4("10.1.1.1", "192.168.1.53", P.IP_UDP, ttl=64, identification=0x1234)
    frame = P.build_udp(ETH, ip, P.Udp(40001, 53), b"query")
    assert len(frame) == 14 + 20 + 8 + 5
    assert P.checksum(frame[14:34]) == 0 and _l4_sum(frame, P.IP_UDP) == 0
    pkt = P.parse(frame)
    assert (pkt.eth, pkt.ip, pkt.udp, pkt.payload) == (ETH, ip, P.Udp(40001, 53), b"query")
    assert pkt.arp is None and pkt.tcp is None
    assert P.parse(frame + bytes(20)).payload == b"query"  # Ethernet padding is not payload
    assert _parse(frame) == ("10.1.1.1", "192.168.1.53", "udp", 53)


def test_tcp_round_trip_and_checksums():
    ip = P.IPv4("10.1.1.1", "10.1.1.100", P.IP_TCP)
    frame = P.build_tcp(ETH, ip, P.Tcp(40000, 80, seq=7, flags=0x02))
    assert P.checksum(frame[14:34]) == 0 and _l4_sum(frame, P.IP_TCP) == 0
    pkt = P.parse(frame)
    assert pkt.tcp == P.Tcp(40000, 80, 7, 0, 0x02) and pkt.ip == ip and pkt.payload == b""
    assert _parse(frame) == ("10.1.1.1", "10.1.1.100", "tcp", 80)


def test_arp_and_vlan_tag():
    arp = P.Arp(P.ARP_REQUEST, "02:02:0a:01:01:01", "10.1.1.1", "00:00:00:00:00:00", "10.1.1.2")
    eth = P.Ethernet("ff:ff:ff:ff:ff:ff", "02:02:0a:01:01:01", P.ETH_ARP)
    frame = P.build_arp(eth, arp)
    assert len(frame) == 42 and frame[12:16] == b"\x08\x06\x00\x01"
    assert P.parse(frame) == P.Packet(eth, arp=arp)
    tagged = P.build_arp(P.Ethernet(eth.dst, eth.src, P.ETH_ARP, vlan_tci=0x0005), arp)
    assert tagged[12:16] == b"\x81\x00\x00\x05" and P.parse(tagged).arp == arp
    assert P.parse(tagged).eth.vlan_tci == 5


def test_ip_options_fragments_and_other_protocols():
    ip = P.IPv4("10.0.0.1", "10.0.0.2", P.IP_UDP)
    frame = P.build_udp(ETH, ip, P.Udp(1, 2), b"x")
    # insert 4 bytes of options (IHL 6): the UDP header is still found
    hdr = bytearray(frame[14:34])
    hdr[0], hdr[2:4] = 0x46, struct.pack("!H", 24 + 9)
    with_opts = frame[:14] + bytes(hdr) + b"\x01\x01\x01\x00" + frame[34:]
    assert P.parse(with_opts).udp == P.Udp(1, 2)
    frag = bytearray(frame)
    frag[20:22] = struct.pack("!H", 10)  # fragment offset 10: no L4 header
    assert P.parse(bytes(frag)).udp is None and _parse(bytes(frag)) is None
    icmp = bytearray(frame)
    icmp[23] = 1
    assert P.parse(bytes(icmp)).ip.proto == 1 and P.parse(bytes(icmp)).udp is None
    ipv6 = P.parse(bytes(12) + b"\x86\xdd" + bytes(40))
    assert ipv6.ip is None and ipv6.eth.ethertype == 0x86DD


def test_truncated_or_inconsistent_frames_are_none():
    frame = P.build_udp(ETH, P.IPv4("10.0.0.1", "10.0.0.2", P.IP_UDP), P.Udp(1, 53), b"abc")
    for n in (0, 13, 20, 33, 41):
        assert P.parse(frame[:n]) is None
    bad_len = frame[:16] + struct.pack("!H", 200) + frame[18:]
    assert P.parse(bad_len) is None
    bad_udp = frame[:38] + struct.pack("!H", 99) + frame[40:]
    assert P.parse(bad_udp) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_parse_never_raises(data):
    P.parse(data)
    P.parse(bytes(12) + b"\x08\x00" + data)
    P.parse(bytes(12) + b"\x08\x06" + data)
