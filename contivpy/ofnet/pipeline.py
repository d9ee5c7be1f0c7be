"""Contiv's OpenFlow 1.3 pipeline, declared once.

Every table the datapaths use is a :class:`Table` value in :data:`TABLES`; flow builders
refer to these objects (``INPUT``, ``VLAN`` ...), never to bare integers, and canonical
flow text prints the table *name*.  The numbering is the original ofnet's
(docs/ovs-pipeline.md) and is wire-visible: ``ovs-ofctl dump-flows`` shows the ids.
``arp_responder`` (10) is ours: the OVS-side ARP proxy, after the original's tables so that its
diversion (from ``svc_snat``, which every path crosses) only ever goes forward.

Priorities are named bands (:class:`Prio`).  A table's *miss* flow (priority 1, empty
match) is part of the base flow set and depends on the datapath (vxlan drops unknown
ports in table 1 and unknown MACs in table 9; the vlan bridge continues to table 4 and
ends with NORMAL).

Invariants: table ids are unique; ``goto`` only ever points to a higher id (OpenFlow
forbids going backwards), which :func:`check_goto` enforces for every built flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "Table",
    "Prio",
    "TABLES",
    "INPUT",
    "VLAN",
    "HOST_DNAT",
    "SVC_DNAT",
    "DST_GROUP",
    "POLICY",
    "SVC_SNAT",
    "IP",
    "HOST_SNAT",
    "MAC_DEST",
    "ARP_RESPONDER",
    "table_by_id",
    "check_goto",
    "DNS_VLAN",
    "SVC_CT_ZONE",
    "HOST_PORT_SUFFIX",
    "VLAN_HOST_PORT_SUFFIX",
    "VLAN_PVT_OFFSET",
]


@dataclass(frozen=True, order=True)
class Table:
    """One OpenFlow table: wire id, short name, and what its miss flow does (per datapath)."""

    id: int
    name: str
    purpose: str = ""

    def __str__(self) -> str:
        return self.name


INPUT = Table(0, "input", "drop multicast src; DNS punt to controller; else -> vlan")
VLAN = Table(1, "vlan", "classify by in_port / VTEP+VNI: VLAN push, metadata VRF+src EPG")
HOST_DNAT = Table(2, "host_dnat", "traffic from contivh0: private IP -> endpoint IP")
SVC_DNAT = Table(3, "svc_dnat", "service LB DNAT; miss -> dst_group")
DST_GROUP = Table(4, "dst_group", "dst IP (+VRF) -> dst EPG in metadata; miss -> policy")
POLICY = Table(5, "policy", "ACL rules (10 + rule priority); miss -> svc_snat (default allow)")
SVC_SNAT = Table(6, "svc_snat", "service LB reverse NAT; miss -> mac_dest")
IP = Table(7, "ip", "(vrouter) /32 routing")
HOST_SNAT = Table(8, "host_snat", "egress via contivh0: endpoint IP -> its private IP")
MAC_DEST = Table(9, "mac_dest", "dst MAC+VLAN -> port/VTEP; per-VLAN flood; vlan bridge: NORMAL")
# Not one of the original's tables (decisions.md): ARP requests are diverted here from svc_snat in
# proxy mode, and answered in place by per-endpoint flows; what no flow answers goes to the controller.
ARP_RESPONDER = Table(
    10, "arp_responder", "proxy ARP in OVS: known IP -> reply out IN_PORT; miss -> controller"
)

TABLES: tuple[Table, ...] = (
    INPUT,
    VLAN,
    HOST_DNAT,
    SVC_DNAT,
    DST_GROUP,
    POLICY,
    SVC_SNAT,
    IP,
    HOST_SNAT,
    MAC_DEST,
    ARP_RESPONDER,
)
_BY_ID = {t.id: t for t in TABLES}
assert len(_BY_ID) == len(TABLES), "duplicate table id"

#: VLAN used to re-inject DNS queries the controller did not answer (original: 4093).
DNS_VLAN = 4093


class Prio(IntEnum):
    """Named priority bands (docs/original.md §6.1)."""

    MISS = 1
    FLOOD = 10  # per-VLAN flood flows in mac_dest
    PORT = 10  # local endpoint port classification in table vlan (as the original)
    PORT_DSCP = 11  # same, IP traffic with DSCP marking
    POLICY_BASE = 10  # policy flow priority = POLICY_BASE + rule priority
    SVC_WATCH = 10  # svc_dnat: first packet to a service VIP+proto -> controller (original: 10)
    HOST_DIVERT = 50  # svc_snat: IP to the router MAC (off-subnet) -> host_snat (host access)
    HOST_DENY = 51  # svc_snat: same, addressed to the private subnet -> drop
    HOST_ALLOW = 52  # svc_snat: same, addressed to contivh0's own address -> host_snat
    HOST_GW_ARP = 101  # vlan bridge, svc_snat: a local endpoint's ARP for its gateway -> arp_responder
    ARP_ROUTER = (
        99  # svc_snat (flood mode): a local ARP request of a network without gateway -> arp_responder
    )
    MATCH = 100  # exact matches (MAC, dst IP, VTEP classification, ARP divert)
    ARP_ENDPOINT = 100  # arp_responder: an endpoint's address (local or remote)
    ARP_VIP = 95  # arp_responder: a service VIP (no endpoint holds it)
    ARP_GATEWAY = 90  # arp_responder: the network's gateway (no endpoint holds it)
    ARP_PUNT = 1  # arp_responder: anything else -> controller (reinject / ignore decisions)
    DNS_REINJECT = 101
    UPLINK_DNS = 102  # DNS from uplink/VTEP bypasses the punt


# conntrack zone of the service LB's NAT (svc_dnat commits client -> VIP connections with a DNAT,
# svc_snat un-NATs their replies); no other part of the pipeline uses conntrack.
SVC_CT_ZONE = 65000


# Host access (docs/ovs-pipeline.md): the host port contivh0 takes the address pvtSubnet + 0xfffe
# (172.19.255.254 for 172.19.0.0/16); a local endpoint on OpenFlow port P gets pvtSubnet + P as its
# private address.  MACs of both are 02:02:<address bytes>.
HOST_PORT_SUFFIX = 0xFFFE
# The vlan bridge's host port contivh0v (hostaccess.py): pvtSubnet + 0xfffd on the upper /17; its local
# endpoint on OpenFlow port P gets pvtSubnet + 0x8000 + P (vxlan bridge endpoints stay below 0x8000).
VLAN_HOST_PORT_SUFFIX = 0xFFFD
VLAN_PVT_OFFSET = 0x8000


def table_by_id(table_id: int) -> Table:
    """The declared table with this id; an undeclared id (e.g. read back from OVS) gets a generic name."""
    t = _BY_ID.get(table_id)
    return t if t is not None else Table(table_id, f"table{table_id}")


def check_goto(src: Table, dst: Table) -> None:
    if dst.id <= src.id:
        raise ValueError(f"goto from {src.name}({src.id}) to {dst.name}({dst.id}) goes backwards")
