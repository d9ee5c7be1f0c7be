"""Our OpenFlow codec: every flow/group/packet-out shape the pipeline builds round-trips through
our decoder, and Open vSwitch's own parser (``ovs-ofctl ofp-parse``) reads our bytes exactly as
it reads the canonical text of the same value (``parse-flows`` / ``parse-group``)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contivpy.ofnet import arp, codec
from contivpy.ofnet.flows import (
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    OFPP_TABLE,
    Controller,
    Ct,
    Flow,
    Move,
    Nat,
    Normal,
    Output,
    PopVlan,
    PushVlan,
    SetField,
)
from contivpy.ofnet.pipeline import DST_GROUP, MAC_DEST, SVC_DNAT
from tests.fixtures.ofnet_shapes import all_built_flows, built_flows, flood_groups

needs_ofctl = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")


def test_every_action_and_instruction_kind_is_built():
    """The shapes above cover every action class of flows.py, masks and the three instructions."""
    flows = built_flows()
    kinds = {type(a) for f in flows for a in f.actions}
    assert kinds >= {Output, Controller, Normal, PushVlan, PopVlan, SetField, Move, Ct}
    assert any(f.write_metadata for f in flows) and any(f.goto for f in flows)
    assert any(m is not None for f in flows for _, _, m in f.match.fields)
    names = {n for f in flows for n, _, _ in f.match.fields}
    assert {"tcp_flags", "metadata", "vlan_vid", "arp_tpa", "tunnel_id", "ipv4_src", "udp_dst"} <= names


@pytest.mark.parametrize("flow", all_built_flows(), ids=str)
def test_flow_round_trip(flow):
    for cmd in (codec.ADD, codec.MODIFY_STRICT, codec.DELETE_STRICT):
        raw = codec.encode_flow_mod(flow, cmd, 0x1234)
        msg = codec.parse_message(raw)
        assert isinstance(msg, codec.FlowModMsg) and msg.xid == 0x1234 and msg.command == cmd
        assert (msg.buffer_id, msg.out_port, msg.out_group, msg.flags) == (0xFFFFFFFF,) * 3 + (0,)
        back = codec.flow_from_stats(msg)
        if cmd == codec.DELETE_STRICT:
            assert back.key == flow.key and msg.instructions == [] and msg.cookie_mask == (1 << 64) - 1
        else:
            assert back == flow and back.same_effect(flow) and msg.cookie_mask == 0


def test_encoding_is_memoised_but_xid_patched():
    f = Flow(MAC_DEST, 1)
    a, b = codec.encode_flow_mod(f, codec.ADD, 1), codec.encode_flow_mod(f, codec.ADD, 2)
    assert a[8:] == b[8:] and a[4:8] != b[4:8]


def test_group_round_trip():
    for g in flood_groups():
        for cmd in (codec.GROUP_ADD, codec.GROUP_MODIFY):
            msg = codec.parse_message(codec.encode_group_mod(g, cmd, 9))
            assert isinstance(msg, codec.GroupModMsg) and (msg.xid, msg.command) == (9, cmd)
            assert codec.group_from_desc(msg) == g
        gone = codec.parse_message(codec.encode_group_mod(g, codec.GROUP_DELETE, 9))
        assert gone.buckets == [] and gone.group_id == g.group_id


def test_packet_out_round_trip():
    acts = [PushVlan(), SetField("vlan_vid", 0x1000 | 4093), Output(OFPP_TABLE)]
    raw = codec.packet_out(7, acts, b"frame").encode(3)
    msg = codec.parse_message(raw)
    assert (msg.xid, msg.in_port, msg.actions, msg.data) == (3, 7, acts, b"frame")


def test_requests_layouts():
    """Header, length and the fields OVS reads of every request we send."""
    assert codec.hello().encode(1) == bytes.fromhex("04000010000000010001000800000010")
    assert codec.barrier_request().encode(5) == bytes.fromhex("0414000800000005")
    assert codec.features_request().encode(5) == bytes.fromhex("0405000800000005")
    assert codec.echo_request(b"ab").encode(2) == bytes.fromhex("0402000a00000002") + b"ab"
    fs = codec.flow_stats_request(0x11, 0xFF).encode(4)
    assert len(fs) == 56 and struct.unpack_from("!HH4xB3xII4xQQ", fs, 8) == (
        1,
        0,
        0xFF,
        2**32 - 1,
        2**32 - 1,
        0x11,
        0xFF,
    )
    assert fs[48:] == bytes.fromhex("0001000400000000")  # empty OXM match
    assert codec.group_desc_request().encode(6) == bytes.fromhex("04120010000000060007000000000000")


def _reply(mtype: int, body: bytes, xid=1, flags=0) -> bytes:
    return struct.pack("!BBHIHH4x", 4, 19, 16 + len(body), xid, mtype, flags) + body


def test_decode_switch_messages():
    assert codec.parse_message(bytes.fromhex("0415000800000009")) == codec.BarrierReply(9)
    e = codec.parse_message(struct.pack("!BBHIHH", 4, 1, 16, 7, 5, 1) + b"abcd")
    assert (e.xid, e.type, e.code, e.data) == (7, 5, 1, b"abcd")
    assert codec.error_text(5, 1) == "OFPET_FLOW_MOD_FAILED code=1"
    echo = codec.parse_message(struct.pack("!BBHI", 4, 2, 10, 3) + b"hi")
    assert isinstance(echo, codec.EchoRequest) and echo.data == b"hi"
    f = codec.parse_message(struct.pack("!BBHIQIBB2xII", 4, 6, 32, 1, 0xABCDEF, 256, 254, 0, 0x4F, 0))
    assert (f.datapath_id, f.n_tables, f.n_buffers) == (0xABCDEF, 254, 256)
    # packet-in: OXM in_port + tunnel_id, then 2 pad bytes, then the frame
    oxm = struct.pack("!IIIQ", 0x80000004, 6, 0x80004C08, 77)
    match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm
    match += b"\0" * (-len(match) % 8)
    body = struct.pack("!IHBBQ", 0xFFFFFFFF, 5, 1, 3, 0x99) + match + b"\0\0" + b"frame"
    pi = codec.parse_message(struct.pack("!BBHI", 4, 10, 8 + len(body), 2) + body)
    assert (pi.table_id, pi.cookie, pi.data, pi.match.get("in_port"), pi.match.get("tunnel_id")) == (
        3, 0x99, b"frame", 6, 77,
    )  # fmt: skip
    other = codec.parse_message(struct.pack("!BBHI", 4, 12, 12, 4) + b"port")
    assert isinstance(other, codec.OfMessage) and other.type == 12 and other.body == b"port"
    mp = codec.parse_message(_reply(1, b"", flags=1))
    assert isinstance(mp, codec.MultipartReply) and mp.flags & codec.OFPMPF_REPLY_MORE and mp.body == []


@pytest.mark.parametrize(
    "raw", [b"", b"\x04\x00\x00", struct.pack("!BBHI", 4, 1, 9, 1), _reply(1, b"\x00\x40" + bytes(10))]
)
def test_malformed_messages_raise_codec_error(raw):
    with pytest.raises(codec.CodecError):
        codec.parse_message(raw)


def test_flow_stats_and_group_desc_replies():
    """A multipart reply carrying entries laid out like OVS's (OVS answers ``move`` with NXM headers
    and a single NAT address as min == max): decoded into the very values we built."""
    flows = all_built_flows()
    entries = b""
    for f in flows:
        fm = codec.encode_flow_mod(f, codec.ADD, 1)
        match_inst = fm[48:]
        head = struct.pack(
            "!HBxIIHHHH4xQQQ", 48 + len(match_inst), f.table.id, 1, 2, f.priority, 0, 0, 0, f.cookie, 5, 6
        )
        entries += head + match_inst
    reply = codec.parse_message(_reply(1, entries))
    assert [codec.flow_from_stats(s) for s in reply.body] == flows
    assert reply.body[0].packet_count == 5 and reply.body[0].byte_count == 6
    groups = flood_groups()
    body = b""
    for g in groups:
        gm = codec.encode_group_mod(g, codec.GROUP_ADD, 1)
        body += struct.pack("!HBxI", 8 + len(gm) - 16, gm[10], g.group_id) + gm[16:]
    assert [codec.group_from_desc(d) for d in codec.parse_message(_reply(7, body)).body] == groups


def _nx(subtype: int, body: bytes) -> bytes:
    raw = struct.pack("!HHIH", 0xFFFF, 0, 0x2320, subtype) + body
    raw += b"\0" * (-len(raw) % 8)
    return raw[:2] + struct.pack("!H", len(raw)) + raw[4:]


def _one(raw: bytes):
    (a,) = codec.decode_actions(raw)
    if isinstance(a, codec.Unsupported):
        raise ValueError(a.text)
    return a


def test_move_read_back_from_nxm_headers():
    """OVS dumps ``move`` with NXM headers; read-back gives the same Move, partial moves refused."""
    hdr = {"eth_src": 0x00000406, "eth_dst": 0x00000206, "arp_sha": 0x00012206, "arp_tha": 0x00012406,
           "arp_spa": 0x00002004, "arp_tpa": 0x00002204, "reg0": 0x00010004, "reg3": 0x00010604}  # fmt: skip
    for src, dst, bits in (
        ("eth_src", "eth_dst", 48),
        ("arp_sha", "arp_tha", 48),
        ("arp_spa", "arp_tpa", 32),
        ("reg0", "reg3", 32),
    ):
        raw = _nx(6, struct.pack("!HHHII", bits, 0, 0, hdr[src], hdr[dst]))
        assert _one(raw) == Move(src, dst)
        assert codec.decode_actions(codec.encode_actions([Move(src, dst)])) == [Move(src, dst)]
    partial = _nx(6, struct.pack("!HHHII", 16, 0, 0, hdr["eth_src"], hdr["eth_dst"]))
    with pytest.raises(ValueError, match="partial move"):
        _one(partial)
    with pytest.raises(ValueError, match="width"):
        Move("eth_src", "arp_spa")
    assert str(Output(OFPP_IN_PORT)) == "IN_PORT"


def test_ct_nat_read_back_variants():
    dnat = Ct(65000, DST_GROUP, commit=True, nat=Nat("dst", "10.1.1.3", 8080))
    nat = _nx(
        36,
        struct.pack("!2xHH", 2, 1 | 2 | 16 | 32) + bytes([10, 1, 1, 3] * 2) + struct.pack("!HH", 8080, 8080),
    )
    ct = _nx(35, struct.pack("!HIHB3xH", 1, 0, 65000, DST_GROUP.id, 0) + nat)
    assert _one(ct) == dnat  # OVS may read a single address back with max == min
    assert _one(codec.encode_actions([dnat])) == dnat
    bare = Ct(7, None, nat=Nat())
    assert _one(codec.encode_actions([bare])) == bare
    ranged = _nx(36, struct.pack("!2xHH", 2, 1 | 2) + bytes([1, 1, 1, 1, 1, 1, 1, 9]))
    for bad in (
        _nx(35, struct.pack("!HIHB3xH", 1, 0, 1, 4, 0) + ranged),  # a real range is not something we build
        _nx(35, struct.pack("!HIHB3xH", 1, 0x80001004, 1, 4, 0)),  # zone from a field
        _nx(35, struct.pack("!HIHB3xH", 1, 0, 1, 4, 21)),  # alg=ftp
        _nx(99, b""),
        struct.pack("!HHI", 11, 8, 0),  # OFPAT_DEC_MPLS_TTL
    ):
        with pytest.raises(ValueError, match="unsupported"):
            _one(bad)
    f = Flow(SVC_DNAT, 1, actions=(Output(1),))
    msg = codec.parse_message(codec.encode_flow_mod(f, codec.ADD, 1))
    msg.instructions[0] = codec.ApplyActions((codec.Unsupported("unsupported action type 11 in read-back"),))
    with pytest.raises(ValueError, match="unsupported action"):
        codec.flow_from_stats(msg)


def test_arp_reply_frame_and_decisions():
    from contivpy.ofnet import packets as P

    frame = P.build_arp(
        P.Ethernet("ff:ff:ff:ff:ff:ff", "02:02:0a:01:01:01", P.ETH_ARP),
        P.Arp(P.ARP_REQUEST, "02:02:0a:01:01:01", "10.1.1.1", "00:00:00:00:00:00", "10.1.1.2"),
    )
    req = arp.parse_arp_request(frame)
    assert req == arp.ArpRequest("02:02:0a:01:01:01", "10.1.1.1", "10.1.1.2")
    assert arp.arp_request_frame(req) == frame
    reply = P.parse(arp.arp_reply_frame(req, "02:02:0a:01:01:02"))
    assert reply.eth == P.Ethernet("02:02:0a:01:01:01", "02:02:0a:01:01:02", P.ETH_ARP)
    assert reply.arp == P.Arp(P.ARP_REPLY, "02:02:0a:01:01:02", "10.1.1.2", "02:02:0a:01:01:01", "10.1.1.1")
    d = arp.decide
    assert d(req, from_vtep=False, src_known=True, dst_mac="x", dst_local=False) == "reply"
    assert d(req, from_vtep=True, src_known=False, dst_mac="x", dst_local=False) == "ignore"
    assert d(req, from_vtep=True, src_known=False, dst_mac="x", dst_local=True) == "reply"
    assert d(req, from_vtep=False, src_known=True, dst_mac=None, dst_local=False) == "reinject"
    assert d(req, from_vtep=False, src_known=False, dst_mac=None, dst_local=False) == "ignore"
    garp = arp.ArpRequest("02:02:0a:01:01:01", "10.1.1.1", "10.1.1.1")
    assert d(garp, from_vtep=False, src_known=True, dst_mac="x", dst_local=True) == "ignore"
    assert arp.parse_arp_request(b"\x00garbage") is None


# ---- against Open vSwitch's own parser -------------------------------------------------------
def _ofctl(*args: str) -> list[str]:
    out = subprocess.run(["ovs-ofctl", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def _after(lines: list[str], marker: str) -> list[str]:
    """The text after ``marker`` (e.g. ``": ADD "``) of every line holding it."""
    return [ln.split(marker, 1)[1].strip() for ln in lines if marker in ln]


@needs_ofctl
@pytest.mark.parametrize(
    "cmd,word", [(codec.ADD, "ADD"), (codec.MODIFY_STRICT, "MOD_STRICT"), (codec.DELETE_STRICT, "DEL_STRICT")]
)
def test_flow_mods_agree_with_ovs_ofctl(tmp_path, cmd, word):
    """The bytes we send, decoded by ``ovs-ofctl ofp-parse``, equal ``ovs-ofctl -O OpenFlow13
    parse-flows`` of our canonical text (numeric tables) of the same flows -- so the wire encoding
    means what the text says, for every shape the builders make."""
    flows = all_built_flows()
    raw = tmp_path / "mods.of"
    raw.write_bytes(b"".join(codec.encode_flow_mod(f, cmd, i + 1) for i, f in enumerate(flows)))
    ours = _after(_ofctl("ofp-parse", str(raw)), f": {word} ")
    assert len(ours) == len(flows)
    txt = tmp_path / "flows.txt"
    txt.write_text("".join(f"cookie={f.cookie:#x}," + f.text(names=False) + "\n" for f in flows))
    theirs = _after(_ofctl("-O", "OpenFlow13", "parse-flows", str(txt)), ": ADD ")
    if cmd == codec.MODIFY_STRICT:  # same flow; OVS prints no cookie for a modify without cookie mask
        theirs = [re.sub(r" cookie:0x[0-9a-f]+", "", t) for t in theirs]
    elif cmd == codec.DELETE_STRICT:  # the same key, the cookie matched exactly, no instructions
        theirs = [
            re.sub(r"(cookie:0x[0-9a-f]+) actions=.*", r"\1/0xffffffffffffffff actions=drop", t)
            for t in theirs
        ]
    assert ours == theirs
    responder = [t for t in ours if " table:10 " in f" {t}"]
    assert len(responder) >= 6 and (cmd == codec.DELETE_STRICT or sum("IN_PORT" in t for t in responder) >= 5)


@needs_ofctl
def test_group_mods_agree_with_ovs_ofctl(tmp_path):
    for g in flood_groups():
        raw = tmp_path / "g.of"
        raw.write_bytes(codec.encode_group_mod(g, codec.GROUP_ADD, 1))
        ours = _after(_ofctl("ofp-parse", str(raw)), " ADD ")
        theirs = _after(_ofctl("-O", "OpenFlow13", "parse-group", str(g)), " ADD ")
        assert ours == theirs and len(ours) == 1, (ours, theirs)


@needs_ofctl
def test_packet_out_agrees_with_ovs_ofctl(tmp_path):
    frame = arp.arp_request_frame(arp.ArpRequest("02:02:0a:01:01:01", "10.1.1.1", "10.1.1.2"))
    cases = [
        (OFPP_CONTROLLER, [Output(3)], "in_port=CONTROLLER actions=output:3"),
        (5, [PushVlan(), SetField("vlan_vid", 0x1000 | 4093), Output(OFPP_TABLE)],
         "in_port=5 actions=push_vlan:0x8100,set_field:8189->vlan_vid,TABLE"),
        (OFPP_CONTROLLER, [SetField("tunnel_id", 77), Output(9)], "in_port=CONTROLLER actions=set_field:0x4d->tun_id,output:9"),
    ]  # fmt: skip
    for in_port, acts, want in cases:
        raw = tmp_path / "po.of"
        raw.write_bytes(codec.packet_out(in_port, acts, frame).encode(1))
        text = "\n".join(_ofctl("ofp-parse", str(raw)))
        assert f"{want} data_len={len(frame)}" in text, text
        assert (
            "arp,vlan_tci=0x0000,dl_src=02:02:0a:01:01:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=10.1.1.1" in text
        )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2, 6, 10, 13, 14, 15, 19, 21, 99]), st.binary(max_size=200), st.integers(0, 3))
def test_decoder_raises_only_codec_error(mtype, body, mp):
    """Any well-framed message: a decoded object or CodecError, never another exception."""
    if mtype == 19:
        body = struct.pack("!HH4x", (1, 7, 2, 1)[mp], 0) + body
    raw = struct.pack("!BBHI", 4, mtype, 8 + len(body), 1) + body
    try:
        msg = codec.parse_message(raw)
    except codec.CodecError:
        return
    for entry in getattr(msg, "body", []) if isinstance(msg, codec.MultipartReply) else []:
        try:
            (codec.flow_from_stats if isinstance(entry, codec.FlowStats) else codec.group_from_desc)(entry)
        except (ValueError, AttributeError):  # refused read-back (AttributeError: raw bytes body)
            pass


def _stats_reply() -> bytes:
    entries = b""
    for f in all_built_flows()[-8:]:
        mi = codec.encode_flow_mod(f, codec.ADD, 1)[48:]
        entries += struct.pack(
            "!HBxIIHHHH4xQQQ", 48 + len(mi), f.table.id, 0, 0, f.priority, 0, 0, 0, f.cookie, 0, 0
        )
        entries += mi
    return _reply(1, entries)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(16, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_stats_reply_raises_only_value_errors(flips):
    raw = bytearray(_stats_reply())
    for pos, val in flips:
        raw[pos % len(raw)] = val
    try:
        msg = codec.parse_message(bytes(raw))
        if not isinstance(msg, codec.MultipartReply):
            return  # a flipped type byte makes another (well-formed) message: nothing to read back
        for s in msg.body:
            codec.flow_from_stats(s)
    except ValueError:  # CodecError, or a read-back refused
        pass
