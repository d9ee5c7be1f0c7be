"""Codec round-trips: Flow/Group -> os-ken bytes -> parsed message -> equal value; ARP frames."""

from __future__ import annotations

import shutil
import struct
import subprocess
from types import SimpleNamespace

import pytest

from contivpy.ofnet import arp, codec
from contivpy.ofnet import builders as B
from contivpy.ofnet.cookies import cookie_for
from contivpy.ofnet.flows import OFPP_IN_PORT, Flow, Match, Move, Output
from contivpy.ofnet.pipeline import ARP_RESPONDER, MAC_DEST
from contivpy.ofnet.types import LocalEndpoint, Network, RemoteEndpoint, Rule, Service, Vtep


def built_flows():
    """Every flow shape the builders make, without cookies."""
    out = B.base_flows("vxlan", True) + B.base_flows("vlan", True) + B.arp_punt_flows("proxy")
    out += B.network_flows(Network(3, 77, "10.1.1.254"), 1, [Vtep(9, "1.2.3.4")], arp_proxy=True)
    lep = LocalEndpoint(2, "02:02:0a:01:01:01", "10.1.1.1", 3, epg=4, dscp=10)
    out += B.local_endpoint_flows(lep, 1, "vxlan", arp_proxy=True)
    out += [f for f in B.local_endpoint_flows(lep, 1, "vlan", arp_proxy=True) if f.table == ARP_RESPONDER]
    rep = RemoteEndpoint("02:02:0a:01:01:05", "10.1.1.5", "1.2.3.4", vni=77)
    out += B.remote_endpoint_flows(rep, 1, 3, 9, "vxlan", arp_proxy=True)
    out += B.service_watch_flows(Service("10.1.1.100", "t", ["80:8080:TCP", "53:53:UDP"]), 2, arp_proxy=True)
    out += B.uplink_flows(1, True) + B.vtep_flows(Vtep(9, "1.2.3.4"), True)
    out += B.rule_flows(Rule("a", 3, 1, 2, "10.0.0.0/8", "10.1.1.1", 17, 53, 5353))
    out += B.rule_flows(Rule("b", 0, 0, 2, protocol=6, tcp_flags="syn,!ack", action="deny"))
    return out


def all_built_flows():
    return [f.with_cookie(cookie_for(f"x:{i}")) for i, f in enumerate(built_flows())]


@pytest.mark.parametrize("flow", all_built_flows(), ids=str)
def test_flow_round_trip(flow):
    raw = codec.encode_flow_mod(flow, codec.ADD, 0x1234)
    msg = codec.parse_message(raw)
    assert msg.xid == 0x1234 and msg.command == codec.ADD
    back = codec.flow_from_stats(msg)
    assert back == flow
    assert back.key == flow.key and back.same_effect(flow)


@pytest.mark.parametrize("flow", all_built_flows(), ids=str)
def test_fast_encoder_equals_osken(flow):
    """The struct-packed fast path decodes (by os-ken) to the same message os-ken itself builds."""
    for cmd in (codec.ADD, codec.MODIFY_STRICT, codec.DELETE_STRICT):
        fast = codec.parse_message(codec.encode_flow_mod(flow, cmd, 7))
        ref = codec.parse_message(codec.encode_msg(codec.flow_mod(flow, cmd), 7))
        assert sorted(map(str, fast.match._fields2)) == sorted(map(str, ref.match._fields2))  # OXM order free
        for attr in (
            "command",
            "cookie",
            "cookie_mask",
            "table_id",
            "priority",
            "buffer_id",
            "out_port",
            "flags",
        ):
            assert getattr(fast, attr) == getattr(ref, attr), attr
        assert codec.flow_from_stats(fast) == codec.flow_from_stats(ref) or cmd == codec.DELETE_STRICT


def test_encoding_is_memoised_but_xid_patched():
    f = Flow(MAC_DEST, 1)
    a, b = codec.encode_flow_mod(f, codec.ADD, 1), codec.encode_flow_mod(f, codec.ADD, 2)
    assert a[8:] == b[8:] and a[4:8] != b[4:8]


def test_delete_strict_matches_cookie_exactly():
    f = Flow(MAC_DEST, 1, Match.of(eth_dst="02:02:00:00:00:01"), cookie=cookie_for("lep:1"))
    msg = codec.parse_message(codec.encode_flow_mod(f, codec.DELETE_STRICT, 5))
    assert msg.cookie_mask == (1 << 64) - 1 and msg.instructions == []


def test_group_round_trip():
    for g in B.flood_groups(Network(2, 99), [3, 1], [Vtep(5, "1.1.1.1"), Vtep(4, "1.1.1.2")]):
        raw = codec.encode_group_mod(g, codec.GROUP_ADD, 9)
        # os-ken has no parser for controller->switch GROUP_MOD: decode its buckets like a GROUP_DESC entry
        buckets, off = [], 16
        while off < len(raw):
            b = codec.parser.OFPBucket.parser(raw, off)
            buckets.append(b)
            off += b.len
        desc = SimpleNamespace(group_id=int.from_bytes(raw[12:16], "big"), type=raw[10], buckets=buckets)
        assert codec.group_from_desc(desc) == g


def test_arp_reply_frame_and_decisions():
    from os_ken.lib.packet import arp as karp
    from os_ken.lib.packet import ethernet, packet

    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src="02:02:0a:01:01:01", ethertype=0x0806))
    p.add_protocol(karp.arp(src_mac="02:02:0a:01:01:01", src_ip="10.1.1.1", dst_ip="10.1.1.2"))
    p.serialize()
    req = arp.parse_arp_request(bytes(p.data))
    assert req == arp.ArpRequest("02:02:0a:01:01:01", "10.1.1.1", "10.1.1.2")
    reply = packet.Packet(arp.arp_reply_frame(req, "02:02:0a:01:01:02")).get_protocol(karp.arp)
    assert (
        reply.opcode == karp.ARP_REPLY and reply.src_mac == "02:02:0a:01:01:02" and reply.dst_ip == "10.1.1.1"
    )
    d = arp.decide
    assert d(req, from_vtep=False, src_known=True, dst_mac="x", dst_local=False) == "reply"
    assert d(req, from_vtep=True, src_known=False, dst_mac="x", dst_local=False) == "ignore"
    assert d(req, from_vtep=True, src_known=False, dst_mac="x", dst_local=True) == "reply"
    assert d(req, from_vtep=False, src_known=True, dst_mac=None, dst_local=False) == "reinject"
    assert d(req, from_vtep=False, src_known=False, dst_mac=None, dst_local=False) == "ignore"
    garp = arp.ArpRequest("02:02:0a:01:01:01", "10.1.1.1", "10.1.1.1")
    assert d(garp, from_vtep=False, src_known=True, dst_mac="x", dst_local=True) == "ignore"
    assert arp.parse_arp_request(b"\x00garbage") is None


def _ovs_flow_text(line: str) -> str:
    """The flow part of an ``OFPT_FLOW_MOD ... ADD`` line of ovs-ofctl."""
    return line.split(": ADD ", 1)[1].strip()


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
def test_encoding_and_text_agree_with_ovs_ofctl(tmp_path):
    """Round trip against Open vSwitch's own parser: the bytes we send, decoded by
    ``ovs-ofctl ofp-parse``, equal ``ovs-ofctl -O OpenFlow13 parse-flows`` of our canonical text
    (numeric tables) of the same flows -- so the wire encoding means what the text says, for every
    shape the builders make (ARP responder moves/loads and IN_PORT included)."""
    flows = built_flows()
    raw = tmp_path / "mods.of"
    raw.write_bytes(b"".join(codec.encode_flow_mod(f, codec.ADD, i + 1) for i, f in enumerate(flows)))
    txt = tmp_path / "flows.txt"
    txt.write_text("".join(f.text(names=False) + "\n" for f in flows))
    decoded = subprocess.run(["ovs-ofctl", "ofp-parse", str(raw)], capture_output=True, text=True, check=True)
    parsed = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "parse-flows", str(txt)], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr
    ours = [_ovs_flow_text(ln) for ln in decoded.stdout.splitlines() if "OFPT_FLOW_MOD" in ln]
    theirs = [_ovs_flow_text(ln) for ln in parsed.stdout.splitlines() if "OFPT_FLOW_MOD" in ln]
    assert len(ours) == len(flows) and ours == theirs
    responder = [t for t in ours if t.startswith("table:10 ")]
    assert len(responder) == 6 and all("IN_PORT" in t for t in responder[1:])


def test_move_read_back_from_nxm_headers():
    """OVS dumps ``move`` with NXM headers (os-ken: ``eth_src_nxm``); read-back gives the same Move."""
    hdr = {"eth_src": 0x00000406, "eth_dst": 0x00000206, "arp_sha": 0x00012206, "arp_tha": 0x00012406,
           "arp_spa": 0x00002004, "arp_tpa": 0x00002204}  # fmt: skip
    for src, dst, bits in (
        ("eth_src", "eth_dst", 48),
        ("arp_sha", "arp_tha", 48),
        ("arp_spa", "arp_tpa", 32),
    ):
        raw = struct.pack("!HHIHHHHII", 0xFFFF, 24, 0x2320, 6, bits, 0, 0, hdr[src], hdr[dst])
        assert codec._action_back(codec.parser.OFPAction.parser(raw, 0)) == Move(src, dst)
    partial = struct.pack("!HHIHHHHII", 0xFFFF, 24, 0x2320, 6, 16, 0, 0, hdr["eth_src"], hdr["eth_dst"])
    with pytest.raises(ValueError, match="partial move"):
        codec._action_back(codec.parser.OFPAction.parser(partial, 0))
    with pytest.raises(ValueError, match="width"):
        Move("eth_src", "arp_spa")
    assert str(Output(OFPP_IN_PORT)) == "IN_PORT"
