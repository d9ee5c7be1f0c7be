"""ARP proxy and DNS punt packet helpers (packet codec = os_ken.lib.packet).

Pure functions: parse a punted frame, decide, build the answer frame.  The decision
follows the original vxlan bridge (contiv-reference §6.2):

* gratuitous ARP (sender IP == target IP) is ignored;
* both sender and target unknown -> ignore;
* request received from a VTEP -> answer only if the target is a *local* endpoint;
* target known and (sender known or target local) -> reply with the target's MAC;
* sender known, target unknown, from a local port -> re-inject the request to every VTEP
  (vxlan) or to the uplinks (vlan bridge).

The agent answers a local endpoint's request for its network's gateway with ``GATEWAY_MAC``
(vxlan bridge; see agent.py) before this decision.  In proxy mode the ``arp_responder`` flows
(builders.py) already answer known endpoints and the gateway inside OVS with the same decision for
those cases, so this code sees only what they do not cover (unknown targets, VIPs, off-subnet
addresses of a network without gateway, requests from uplinks).
"""

from __future__ import annotations

from dataclasses import dataclass

from os_ken.lib.packet import arp as osk_arp
from os_ken.lib.packet import ethernet, ipv4, packet, udp

from .builders import GATEWAY_MAC as _GATEWAY_MAC

__all__ = [
    "ArpRequest",
    "GATEWAY_MAC",
    "parse_arp_request",
    "arp_reply_frame",
    "arp_request_frame",
    "decide",
    "is_dns_query",
]

#: MAC the vxlan bridge answers for a network's gateway address (ofnet's router MAC; one definition,
#: in builders, whose arp_responder flows answer it in OVS while the controller answers the rest).
GATEWAY_MAC = _GATEWAY_MAC


@dataclass(frozen=True)
class ArpRequest:
    src_mac: str
    src_ip: str
    dst_ip: str


def parse_arp_request(data: bytes) -> ArpRequest | None:
    try:
        pkt = packet.Packet(data)
    except Exception:
        return None
    a = pkt.get_protocol(osk_arp.arp)
    if a is None or a.opcode != osk_arp.ARP_REQUEST:
        return None
    return ArpRequest(a.src_mac.lower(), a.src_ip, a.dst_ip)


def arp_reply_frame(req: ArpRequest, answer_mac: str) -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=req.src_mac, src=answer_mac, ethertype=0x0806))
    p.add_protocol(
        osk_arp.arp(
            opcode=osk_arp.ARP_REPLY,
            src_mac=answer_mac,
            src_ip=req.dst_ip,
            dst_mac=req.src_mac,
            dst_ip=req.src_ip,
        )
    )
    p.serialize()
    return bytes(p.data)


def arp_request_frame(req: ArpRequest) -> bytes:
    """The broadcast ARP request ``req`` rebuilt (re-injected towards VTEPs or uplinks)."""
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=req.src_mac, ethertype=0x0806))
    p.add_protocol(
        osk_arp.arp(src_mac=req.src_mac, src_ip=req.src_ip, dst_mac="00:00:00:00:00:00", dst_ip=req.dst_ip)
    )
    p.serialize()
    return bytes(p.data)


def decide(req: ArpRequest, *, from_vtep: bool, src_known: bool, dst_mac: str | None, dst_local: bool) -> str:
    """One of "ignore", "reply", "reinject"."""
    if req.src_ip == req.dst_ip:
        return "ignore"
    if dst_mac is None and not src_known:
        return "ignore"
    if from_vtep:
        return "reply" if dst_local else "ignore"
    if dst_mac is not None and (src_known or dst_local):
        return "reply"
    if src_known and dst_mac is None:
        return "reinject"
    return "ignore"


def is_dns_query(data: bytes) -> bool:
    try:
        pkt = packet.Packet(data)
    except Exception:
        return False
    u = pkt.get_protocol(udp.udp)
    return pkt.get_protocol(ipv4.ipv4) is not None and u is not None and u.dst_port == 53
