"""Flow builders of the vlan bridge in routing mode (``--fwdmode routing``; the original's ``vlrouter``).

A routed, untagged underlay (docs/ovs-pipeline.md, "vlan routing mode"): every IPv4 packet of a
local endpoint is routed by its destination in table ``ip`` (7), per VRF, either to another local
endpoint or, for a prefix learned by BGP, out of the uplink to the next hop's MAC. The BGP speaker
(gobgpd, netplugin/gobgp) talks through ``inb01``, an OVS internal port with the host's router-ip,
bridged to the uplink by NORMAL.

  base            as the vlan bridge, except: ``svc_snat`` miss -> ``ip``; ``ip`` miss -> ``host_snat``
                  (a local endpoint's packet with no route leaves through the host port ``contivh0v``
                  with its private address, as the vrouter's, hostaccess.py); ``host_snat`` miss ->
                  ``mac_dest`` (NORMAL: what is not routed, e.g. the router port's own traffic, is bridged)
  uplink          input p100 ``arp,in_port=<uplink>`` -> NORMAL (the peer resolves the router-ip);
                  nothing in vlan (routed in by destination, below; the rest reaches NORMAL)
  router port     input p100 ``in_port=<inb01>`` -> NORMAL (BGP session, ARP to and from the peer)
  network         arp_responder p90 ``metadata=VRF|0,arp_tpa=<gateway>`` -> router MAC
  local endpoint  vlan p10 ``in_port=P`` -> write_metadata VRF|srcEPG, goto svc_dnat (p11 + DSCP);
                  vlan p5 ``ip,nw_dst=IP`` -> write_metadata VRF|RX, goto svc_snat (routed in from the
                  uplink, which has no VRF: the destination picks it); dst_group p100; ip p100
                  ``ip,metadata=VRF,nw_dst=IP`` -> set eth_src router MAC, eth_dst endpoint MAC, output P;
                  arp_responder p100 -> router MAC
  remote endpoint dst_group p100; arp_responder p100 -> router MAC (its route comes from BGP)
  learned route   ip p99 ``ip,metadata=VRF|0,nw_dst=PREFIX`` -> set eth_src router MAC, eth_dst next
                  hop MAC, output uplink (below the local /32s: a stale learned copy of a local address
                  never wins; ARP for remote containers is answered by their remote endpoint owners)

``RX`` (the RX_VTEP metadata bit) marks traffic routed in from the uplink: it is never routed back
out (``metadata=VRF|0`` on learned routes), so two hosts with stale routes cannot loop a packet.
Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress

from . import builders as B
from . import fields as F
from . import routing as R
from .builders import ETH_ARP, ETH_IP, _dst_group_flow
from .flows import Flow, Match, Normal, Output, SetField
from .pipeline import HOST_SNAT, INPUT, IP, MAC_DEST, SVC_SNAT, VLAN, Prio
from .types import LocalEndpoint, Network, RemoteEndpoint

__all__ = [
    "ROUTER_PORT",
    "base_flows",
    "uplink_flows",
    "router_port_flows",
    "network_flows",
    "local_endpoint_flows",
    "remote_endpoint_flows",
    "route_flows",
]

#: the OVS internal port on the vlan bridge that holds the router-ip (the BGP speaker's address)
ROUTER_PORT = "inb01"
ROUTE_IN = 5  # vlan: routed in from the uplink (below every port flow)
ROUTE_LEARNED = 99  # ip: learned (BGP) routes, below the local endpoints' /32s (100)


def base_flows(dns: bool) -> list[Flow]:
    out = [f for f in B.base_flows("vlan", dns) if not (f.priority == Prio.MISS and f.table in (SVC_SNAT,))]
    out.append(Flow(SVC_SNAT, Prio.MISS, goto=IP))
    out.append(Flow(IP, Prio.MISS, goto=HOST_SNAT))  # no route: a local endpoint's packet to the host
    out.append(Flow(HOST_SNAT, Prio.MISS, goto=MAC_DEST))  # not an endpoint's (the router port's): NORMAL
    return out


def uplink_flows(ofport: int, dns: bool) -> list[Flow]:
    """No ``in_port=<uplink>`` classification (the bridge's p100 would hide the routed-in flows): what
    comes in from the uplink is routed to a local endpoint by its destination (vlan p5) or else
    reaches NORMAL (the router port's traffic)."""
    out = [f for f in B.uplink_flows(ofport, dns) if f.table != VLAN]
    out.append(Flow(INPUT, Prio.MATCH, Match.of(in_port=ofport, eth_type=ETH_ARP), (Normal(),)))
    return out


def router_port_flows(ofport: int) -> list[Flow]:
    return [Flow(INPUT, Prio.MATCH, Match.of(in_port=ofport), (Normal(),))]


def network_flows(net: Network, vrf_id: int) -> list[Flow]:
    return [R.arp_responder_flow(net.gateway, vrf_id, Prio.ARP_GATEWAY)] if net.gateway else []


def local_endpoint_flows(ep: LocalEndpoint, vrf_id: int) -> list[Flow]:
    out = R.local_endpoint_flows(ep, vrf_id)
    md = F.combine((F.VRF, vrf_id), (F.RX_VTEP, 1))
    out.append(Flow(VLAN, ROUTE_IN, Match.of(eth_type=ETH_IP, ipv4_dst=ep.ip), (), md, SVC_SNAT))
    return out


def remote_endpoint_flows(ep: RemoteEndpoint, vrf_id: int) -> list[Flow]:
    return [_dst_group_flow(ep.ip, vrf_id, ep.epg), R.arp_responder_flow(ep.ip, vrf_id)]


def route_flows(prefix: str, vrf_id: int, next_hop_mac: str, uplink: int) -> list[Flow]:
    net = ipaddress.IPv4Network(prefix, strict=False)
    dst = str(net.network_address) if net.prefixlen == 32 else (str(net.network_address), str(net.netmask))
    m = Match.of(eth_type=ETH_IP, metadata=F.combine((F.VRF, vrf_id), (F.RX_VTEP, 0)), ipv4_dst=dst)
    acts = (SetField("eth_src", R.ROUTER_MAC), SetField("eth_dst", next_hop_mac), Output(uplink))
    return [Flow(IP, ROUTE_LEARNED, m, acts)]
