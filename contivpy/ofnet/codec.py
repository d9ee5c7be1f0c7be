"""Flow/Group values <-> os-ken OpenFlow 1.3 messages (one of the two os_ken importers).

Encoding builds ``OFPFlowMod``/``OFPGroupMod``/``OFPPacketOut`` with os-ken and serialises
them; the bytes of a (flow, command) pair are memoised (flows are immutable), and only the
xid is patched per send, so re-sending or diffing large flow sets costs little CPU.
Decoding turns OVS flow-stats / group-desc replies back into the same values (masks that
are all ones dropped, actions mapped back), so a read-back compares equal to what was built.

Invariant: ``flow_from_stats(parse(encode(flow)))`` == flow for every flow the pipeline
builds (tested in tests/unit/test_ofnet_codec.py).
"""

from __future__ import annotations

import struct
from functools import lru_cache

from os_ken.ofproto import nicira_ext, ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from .flows import (
    OFPP_CONTROLLER,
    OFPP_NORMAL,
    Action,
    Controller,
    Ct,
    Flow,
    Group,
    GroupAction,
    Match,
    Move,
    Nat,
    Normal,
    Output,
    PopVlan,
    PushVlan,
    SetField,
)
from .pipeline import table_by_id

__all__ = [
    "DP",
    "ofp",
    "parser",
    "ADD",
    "MODIFY_STRICT",
    "DELETE_STRICT",
    "flow_mod",
    "encode_flow_mod",
    "encode_msg",
    "group_mod",
    "encode_group_mod",
    "flow_from_stats",
    "group_from_desc",
    "packet_out",
    "parse_message",
    "actions_to_osken",
]

ADD = ofp.OFPFC_ADD
MODIFY_STRICT = ofp.OFPFC_MODIFY_STRICT
DELETE_STRICT = ofp.OFPFC_DELETE_STRICT
GROUP_ADD = ofp.OFPGC_ADD
GROUP_MODIFY = ofp.OFPGC_MODIFY
GROUP_DELETE = ofp.OFPGC_DELETE


class DP:
    """Stub datapath: os-ken message classes only need ``ofproto``/``ofproto_parser``."""

    ofproto = ofp
    ofproto_parser = parser
    id = 0


def _action(a: Action):
    if isinstance(a, Output):
        return parser.OFPActionOutput(a.port, 0)
    if isinstance(a, Controller):
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len)
    if isinstance(a, Normal):
        return parser.OFPActionOutput(ofp.OFPP_NORMAL, 0)
    if isinstance(a, GroupAction):
        return parser.OFPActionGroup(a.group_id)
    if isinstance(a, PushVlan):
        return parser.OFPActionPushVlan(a.ethertype)
    if isinstance(a, PopVlan):
        return parser.OFPActionPopVlan()
    if isinstance(a, SetField):
        return parser.OFPActionSetField(**{a.name: a.value})
    if isinstance(a, Move):
        return parser.NXActionRegMove(src_field=a.src, dst_field=a.dst, n_bits=a.width)
    if isinstance(a, Ct):
        return _ct_action(a)
    raise TypeError(f"unknown action {a!r}")


_NAT_FLAGS = {None: 0, "src": 1, "dst": 2}  # NX_NAT_F_SRC / NX_NAT_F_DST (not exported by os-ken)
_NAT_KIND = {v: k for k, v in _NAT_FLAGS.items()}


def _ct_action(a: Ct):
    nat = []
    if a.nat is not None:
        kw = {}
        if a.nat.ip is not None:
            kw["range_ipv4_min"] = a.nat.ip  # min only (max = min), as ovs-ofctl encodes one address
        if a.nat.port is not None:
            kw["range_proto_min"] = a.nat.port
        nat.append(parser.NXActionNAT(_NAT_FLAGS[a.nat.kind], **kw))
    return parser.NXActionCT(
        flags=nicira_ext.NX_CT_F_COMMIT if a.commit else 0,
        zone_src="",
        zone_ofs_nbits=a.zone,
        recirc_table=a.table.id if a.table is not None else nicira_ext.NX_CT_RECIRC_NONE,
        alg=0,
        actions=nat,
    )


def _ct_back(a) -> Ct:
    if a.zone_src or a.alg or a.flags & ~nicira_ext.NX_CT_F_COMMIT:
        raise ValueError(f"unsupported ct action in read-back: {a!r}")
    nat = None
    for n in a.actions:
        if not isinstance(n, parser.NXActionNAT) or n.flags not in _NAT_KIND:
            raise ValueError(f"unsupported ct nested action in read-back: {n!r}")
        single_ip = n.range_ipv4_max in ("", n.range_ipv4_min)
        if not single_ip or n.range_proto_max not in (None, n.range_proto_min):
            raise ValueError(f"unsupported nat range in read-back: {n!r}")
        nat = Nat(_NAT_KIND[n.flags], n.range_ipv4_min or None, n.range_proto_min)
    table = None if a.recirc_table == nicira_ext.NX_CT_RECIRC_NONE else table_by_id(a.recirc_table)
    return Ct(a.zone_ofs_nbits, table, bool(a.flags & nicira_ext.NX_CT_F_COMMIT), nat)


def actions_to_osken(actions) -> list:
    return [_action(a) for a in actions]


def _action_back(a) -> Action:
    if isinstance(a, parser.OFPActionOutput):
        if a.port == OFPP_CONTROLLER:
            return Controller(a.max_len)
        if a.port == OFPP_NORMAL:
            return Normal()
        return Output(a.port)
    if isinstance(a, parser.OFPActionGroup):
        return GroupAction(a.group_id)
    if isinstance(a, parser.OFPActionPushVlan):
        return PushVlan(a.ethertype)
    if isinstance(a, parser.OFPActionPopVlan):
        return PopVlan()
    if isinstance(a, parser.OFPActionSetField):
        return SetField(a.key, a.value)
    if isinstance(a, parser.NXActionCT):
        return _ct_back(a)
    if isinstance(a, parser.NXActionRegMove):
        # OVS answers with NXM headers, which os-ken names "<field>_nxm"
        mv = Move(a.src_field.removesuffix("_nxm"), a.dst_field.removesuffix("_nxm"))
        if a.src_ofs or a.dst_ofs or a.n_bits != mv.width:
            raise ValueError(f"unsupported partial move in read-back: {a!r}")
        return mv
    raise ValueError(f"unsupported action in read-back: {a!r}")


def flow_mod(flow: Flow, command: int = ADD):
    inst = []
    if flow.actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions_to_osken(flow.actions)))
    if flow.write_metadata is not None:
        inst.append(parser.OFPInstructionWriteMetadata(*flow.write_metadata))
    if flow.goto is not None:
        inst.append(parser.OFPInstructionGotoTable(flow.goto.id))
    return parser.OFPFlowMod(
        DP,
        cookie=flow.cookie,
        cookie_mask=(1 << 64) - 1 if command == DELETE_STRICT else 0,
        table_id=flow.table.id,
        command=command,
        priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**flow.match.as_kwargs()),
        instructions=inst if command != DELETE_STRICT else [],
    )


def encode_msg(msg, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def _patch_xid(b: bytes, xid: int) -> bytes:
    return b[:4] + struct.pack("!I", xid) + b[8:]


# ---- fast path: direct struct packing of FlowMods (verified against os-ken in unit tests) ----
_OXM = {  # name -> (OXM field number, value length)
    "in_port": (0, 4), "metadata": (2, 8), "eth_dst": (3, 6), "eth_src": (4, 6), "eth_type": (5, 2),
    "vlan_vid": (6, 2), "ip_dscp": (8, 1), "ip_proto": (10, 1), "ipv4_src": (11, 4), "ipv4_dst": (12, 4),
    "tcp_src": (13, 2), "tcp_dst": (14, 2), "udp_src": (15, 2), "udp_dst": (16, 2), "arp_op": (21, 2),
    "arp_spa": (22, 4), "arp_tpa": (23, 4), "arp_sha": (24, 6), "arp_tha": (25, 6), "tunnel_id": (38, 8),
}  # fmt: skip
_MACS = ("eth_src", "eth_dst", "arp_sha", "arp_tha")
_IPS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa")
_NX_EXPERIMENTER, _NXAST_REG_MOVE = 0x00002320, 6


def _val_bytes(name: str, v, n: int) -> bytes:
    if name in _MACS:
        return bytes.fromhex(v.replace(":", ""))
    if name in _IPS:
        return bytes(int(x) for x in v.split("."))
    return int(v).to_bytes(n, "big")


def _oxm_header(name: str) -> int:
    field, n = _OXM[name]
    return 0x80000000 | field << 9 | n


def _oxm(name: str, value, mask) -> bytes:
    field, n = _OXM[name]
    if mask is None:
        return struct.pack("!I", _oxm_header(name)) + _val_bytes(name, value, n)
    return (
        struct.pack("!I", 0x80000000 | field << 9 | 0x100 | 2 * n)
        + _val_bytes(name, value, n)
        + _val_bytes(name, mask, n)
    )


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def _fast_action(a: Action) -> bytes:
    if isinstance(a, Output):
        return struct.pack("!HHIH6x", 0, 16, a.port, 0)
    if isinstance(a, Controller):
        return struct.pack("!HHIH6x", 0, 16, ofp.OFPP_CONTROLLER, a.max_len)
    if isinstance(a, Normal):
        return struct.pack("!HHIH6x", 0, 16, ofp.OFPP_NORMAL, 0)
    if isinstance(a, GroupAction):
        return struct.pack("!HHI", 22, 8, a.group_id)
    if isinstance(a, PushVlan):
        return struct.pack("!HHH2x", 17, 8, a.ethertype)
    if isinstance(a, PopVlan):
        return struct.pack("!HH4x", 18, 8)
    if isinstance(a, SetField):
        body = _pad8(struct.pack("!HH", 25, 0) + _oxm(a.name, a.value, None))
        return struct.pack("!HH", 25, len(body)) + body[4:]
    if isinstance(a, Move):  # NXAST_REG_MOVE with OXM headers, as os-ken encodes it
        return struct.pack(
            "!HHIHHHHII", 0xFFFF, 24, _NX_EXPERIMENTER, _NXAST_REG_MOVE, a.width, 0, 0,
            _oxm_header(a.src), _oxm_header(a.dst),
        )  # fmt: skip
    raise TypeError(f"unknown action {a!r}")


def _fast_flow_mod(flow: Flow, command: int) -> bytes:
    oxm = b"".join(_oxm(n, v, m) for n, v, m in flow.match.fields)
    match = _pad8(struct.pack("!HH", 1, 4 + len(oxm)) + oxm)
    inst = b""
    if command != DELETE_STRICT:
        if flow.actions:
            acts = b"".join(_fast_action(a) for a in flow.actions)
            inst += struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts
        if flow.write_metadata is not None:
            inst += struct.pack("!HH4xQQ", ofp.OFPIT_WRITE_METADATA, 24, *flow.write_metadata)
        if flow.goto is not None:
            inst += struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, flow.goto.id)
    cookie_mask = (1 << 64) - 1 if command == DELETE_STRICT else 0
    body = struct.pack(
        "!QQBBHHHIIIH2x", flow.cookie, cookie_mask, flow.table.id, command, 0, 0, flow.priority,
        ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY, 0,
    ) + match + inst  # fmt: skip
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, 8 + len(body), 0) + body


@lru_cache(maxsize=1 << 16)
def _flow_bytes(flow: Flow, command: int) -> bytes:
    if all(n in _OXM for n, _, _ in flow.match.fields) and all(
        not isinstance(a, (SetField, Move, Ct))
        or (isinstance(a, SetField) and a.name in _OXM)
        or (isinstance(a, Move) and a.src in _OXM and a.dst in _OXM)
        for a in flow.actions
    ):
        return _fast_flow_mod(flow, command)
    return encode_msg(flow_mod(flow, command), 0)  # e.g. tcp_flags (ONF experimenter OXM), ct


def encode_flow_mod(flow: Flow, command: int, xid: int) -> bytes:
    return _patch_xid(_flow_bytes(flow, command), xid)


def group_mod(group: Group, command: int = GROUP_ADD):
    buckets = [parser.OFPBucket(actions=actions_to_osken(b)) for b in group.buckets]
    gtype = {"all": ofp.OFPGT_ALL, "select": ofp.OFPGT_SELECT}[group.type]
    if command == GROUP_DELETE:
        buckets = []
    return parser.OFPGroupMod(DP, command=command, type_=gtype, group_id=group.group_id, buckets=buckets)


def encode_group_mod(group: Group, command: int, xid: int) -> bytes:
    return encode_msg(group_mod(group, command), xid)


def _match_back(m) -> Match:
    return Match.of(**dict(m._fields2))


def flow_from_stats(st) -> Flow:
    """Flow value from an ``OFPFlowStats`` entry of a flow-stats reply."""
    actions: tuple[Action, ...] = ()
    wm = None
    goto = None
    for ins in st.instructions:
        if isinstance(ins, parser.OFPInstructionActions) and ins.type == ofp.OFPIT_APPLY_ACTIONS:
            actions = tuple(_action_back(a) for a in ins.actions)
        elif isinstance(ins, parser.OFPInstructionWriteMetadata):
            wm = (ins.metadata, ins.metadata_mask)
        elif isinstance(ins, parser.OFPInstructionGotoTable):
            goto = table_by_id(ins.table_id)
        else:
            raise ValueError(f"unsupported instruction in read-back: {ins!r}")
    return Flow(table_by_id(st.table_id), st.priority, _match_back(st.match), actions, wm, goto, st.cookie)


def group_from_desc(d) -> Group:
    gtype = {ofp.OFPGT_ALL: "all", ofp.OFPGT_SELECT: "select"}.get(d.type, str(d.type))
    buckets = tuple(tuple(_action_back(a) for a in b.actions) for b in d.buckets)
    return Group(d.group_id, buckets, gtype)


def packet_out(in_port: int, actions, data: bytes):
    return parser.OFPPacketOut(
        DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, actions=actions_to_osken(actions), data=data
    )


def parse_message(buf: bytes):
    version, msg_type, msg_len, xid = struct.unpack_from("!BBHI", buf)
    return ofproto_parser.msg(DP, version, msg_type, msg_len, xid, buf)
