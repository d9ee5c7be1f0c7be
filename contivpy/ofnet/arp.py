"""ARP proxy and DNS punt packet helpers (packet codec = ofnet/packets.py).

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

from . import packets as P
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
    pkt = P.parse(data)
    a = pkt.arp if pkt is not None else None
    if a is None or a.opcode != P.ARP_REQUEST:
        return None
    return ArpRequest(a.src_mac, a.src_ip, a.dst_ip)


def arp_reply_frame(req: ArpRequest, answer_mac: str) -> bytes:
    return P.build_arp(
        P.Ethernet(dst=req.src_mac, src=answer_mac, ethertype=P.ETH_ARP),
        P.Arp(P.ARP_REPLY, answer_mac, req.dst_ip, req.src_mac, req.src_ip),
    )


def arp_request_frame(req: ArpRequest) -> bytes:
    """The broadcast ARP request ``req`` rebuilt (re-injected towards VTEPs or uplinks)."""
    return P.build_arp(
        P.Ethernet(dst="ff:ff:ff:ff:ff:ff", src=req.src_mac, ethertype=P.ETH_ARP),
        P.Arp(P.ARP_REQUEST, req.src_mac, req.src_ip, "00:00:00:00:00:00", req.dst_ip),
    )


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
    pkt = P.parse(data)
    return pkt is not None and pkt.udp is not None and pkt.udp.dst_port == 53
