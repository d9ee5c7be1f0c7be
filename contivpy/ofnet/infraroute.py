"""Host routes through the special infra network ``contivh1`` (vxlan bridge; docs/ovs-pipeline.md).

The agent plugs each infra network as an OVS internal port that is a local endpoint of that network
(netplugin/managers/infra.py). For the network named ``contivh1`` the host also routes every vxlan data
subnet of the same tenant via its contivh1 address. In routing mode table ``ip`` already routes every
/32 of the VRF (routing.py) and this module adds nothing; in bridge mode nothing in the pipeline crosses
networks, so it adds the few routed flows that path needs, all owned by ``iroute:<ofport>``
(cookie category OTHER) and rebuilt from the agent's state whenever it changes:

* ``arp_responder`` p101, from the contivh1 port only: ARP for its own address (the routes' next hop)
  and for the address of every routed endpoint is answered with the router MAC;
* ``svc_snat`` p60 (above host access, p50-52), host -> container: IP from the contivh1 port to the
  router MAC and an endpoint's address (local or remote, same VRF, another VLAN) gets the router MAC as
  source, the endpoint's MAC as destination and the endpoint's VLAN, then goes to ``mac_dest``
  (which delivers it locally or over the endpoint's VTEP);
* ``svc_snat`` p60, container -> host: IP of the VRF (not from a VTEP) to the router MAC and the address
  of a contivh1 endpoint (this host's or another host's) is rewritten the same way towards it.

Invariants: only the VRF of the contivh1 network is routed (tenant isolation holds; other tenants'
subnets may overlap); policy tables run before the routing flows (the destination group is matched
in ``dst_group`` on the destination address, the source group of the contivh1 port is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import fields as F
from .arp import GATEWAY_MAC
from .builders import ARP_REQUEST, ETH_ARP, ETH_IP, arp_reply_actions
from .flows import OFPVID_PRESENT, Flow, Match, SetField
from .pipeline import ARP_RESPONDER, MAC_DEST, SVC_SNAT

__all__ = ["INFRA_ROUTER_NET", "ROUTE_PRIO", "ARP_PRIO", "Hop", "infra_route_flows"]

INFRA_ROUTER_NET = "contivh1"
ROUTE_PRIO = 60
ARP_PRIO = 101
TAGGED = (OFPVID_PRESENT, OFPVID_PRESENT)  # VLAN actions need a VLAN in the match (OpenFlow 1.3)


@dataclass(frozen=True)
class Hop:
    """An address the contivh1 routes deliver to: its MAC and the VLAN of its network on this bridge."""

    ip: str
    mac: str
    vlan: int


def _route(match: dict, hop: Hop) -> Flow:
    return Flow(
        SVC_SNAT,
        ROUTE_PRIO,
        Match.of(eth_type=ETH_IP, eth_dst=GATEWAY_MAC, ipv4_dst=hop.ip, vlan_vid=TAGGED, **match),
        (
            SetField("eth_src", GATEWAY_MAC),
            SetField("eth_dst", hop.mac),
            SetField("vlan_vid", OFPVID_PRESENT | hop.vlan),
        ),
        goto=MAC_DEST,
    )


def infra_route_flows(
    port: int, host_ip: str, vrf_id: int, endpoints: list[Hop], infra: list[Hop]
) -> list[Flow]:
    """Flows of the contivh1 port ``port`` (address ``host_ip``) in VRF ``vrf_id``: ``endpoints`` are the
    data endpoints of the VRF, ``infra`` the contivh1 endpoints (this host's included)."""

    def arp(tpa: str) -> Flow:
        return Flow(
            ARP_RESPONDER,
            ARP_PRIO,
            Match.of(eth_type=ETH_ARP, arp_op=ARP_REQUEST, in_port=port, arp_tpa=tpa, vlan_vid=TAGGED),
            arp_reply_actions(GATEWAY_MAC, tpa, True),
        )

    eps = sorted(set(endpoints), key=lambda h: h.ip)
    out = [arp(host_ip)] + [arp(h.ip) for h in eps if h.ip != host_ip]
    out += [_route({"in_port": port}, h) for h in eps]
    md = (F.VRF.value(vrf_id), F.VRF.mask | F.RX_VTEP.mask)
    out += [_route({"metadata": md}, h) for h in sorted(set(infra), key=lambda h: h.ip)]
    return out
