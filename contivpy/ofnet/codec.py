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

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from .flows import (
    OFPP_CONTROLLER,
    OFPP_NORMAL,
    Action,
    Controller,
    Flow,
    Group,
    GroupAction,
    Match,
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
    raise TypeError(f"unknown action {a!r}")


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


@lru_cache(maxsize=1 << 16)
def _flow_bytes(flow: Flow, command: int) -> bytes:
    return encode_msg(flow_mod(flow, command), 0)


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
