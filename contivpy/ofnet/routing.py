"""Flow builders of the vxlan bridge in routing mode (``--fwdmode routing``; the original's ``vrouter``).

A pure L3 overlay on ``contivVxlanBridge`` (docs/ovs-pipeline.md, "Routing mode"): no VLAN is pushed, no
flood groups exist, every IPv4 packet is routed by its /32 destination in table ``ip`` (7), per VRF.

  base            as the bridge pipeline, except: ``svc_snat`` miss -> ``ip``; ``ip`` miss -> ``host_snat`` (8)
                  (containers reach their host and the outside through contivh0, hostaccess.py); no
                  ``mac_dest`` (9) flows at all
  network         vlan p100 ``in_port=<vtep>,tun_id=<vni>`` -> write_metadata VRF|RX_VTEP, goto svc_snat
                  (one per VTEP: traffic from a VTEP bypasses svc_dnat, dst_group and policy, as the
                  original's table 6); arp_responder p90 ``metadata=VRF|0,arp_tpa=<gateway>`` -> router MAC
  local endpoint  vlan p10 ``in_port=P`` -> write_metadata VRF|srcEPG, goto svc_dnat (p11 + DSCP);
                  dst_group p100 (as the bridge); ip p100 ``ip,metadata=VRF,nw_dst=IP`` -> set eth_src router
                  MAC, set eth_dst endpoint MAC, output P; arp_responder p100 ``metadata=VRF|0,arp_tpa=IP``
                  -> router MAC
  remote endpoint dst_group p100; ip p100 ``ip,metadata=VRF|0,nw_dst=IP`` -> set eth_dst router MAC, set
                  tun_id VNI, output VTEP (``RX_VTEP=0``: a host never sends back to a VTEP what it received
                  from one, so stale state cannot loop a packet between hosts); arp_responder p100 as local

ARP: every request for a known address of the asker's VRF (endpoint, gateway, service VIP) is answered
with the router MAC ``00:00:11:11:11:11`` in OVS, whatever the global ARP mode (there is no flooding to
fall back on); requests from a VTEP are never answered. Everything else goes to the controller
(punt.py: off-subnet addresses of a network without gateway get the router MAC, the rest is ignored).

Nothing here does I/O; the agent picks these builders for its owners when its forwarding mode is
``routing`` and the bridge ones otherwise, so a mode switch is one re-apply of every owner.
"""

from __future__ import annotations

from . import builders as B
from . import fields as F
from .builders import (
    ARP_REQUEST,
    ETH_ARP,
    ETH_IP,
    GATEWAY_MAC,
    _dst_group_flow,
    _src_metadata,
    arp_reply_actions,
)
from .flows import Flow, Match, Output, SetField
from .pipeline import ARP_RESPONDER, HOST_SNAT, IP, MAC_DEST, SVC_DNAT, SVC_SNAT, VLAN, Prio
from .types import LocalEndpoint, Network, RemoteEndpoint, Vtep

__all__ = [
    "ROUTER_MAC",
    "base_flows",
    "network_flows",
    "local_endpoint_flows",
    "remote_endpoint_flows",
    "arp_responder_flow",
]

#: The MAC every routed packet is addressed to and sent from (ofnet's vrouter MAC).
ROUTER_MAC = GATEWAY_MAC


def _vrf_local(vrf_id: int) -> tuple[int, int]:
    """metadata match: this VRF, not received from a VTEP."""
    return F.combine((F.VRF, vrf_id), (F.RX_VTEP, 0))


def base_flows(dns: bool) -> list[Flow]:
    """The vxlan bridge's table misses and fixed table-0 flows (builders.base_flows), except that
    ``svc_snat`` continues to ``ip`` and ``ip`` to ``host_snat`` (its miss drops); nothing in ``mac_dest``."""
    out = [
        f
        for f in B.base_flows("vxlan", dns)
        if not (f.priority == Prio.MISS and f.table in (SVC_SNAT, MAC_DEST))
    ]
    out.append(Flow(SVC_SNAT, Prio.MISS, goto=IP))
    out.append(Flow(IP, Prio.MISS, goto=HOST_SNAT))  # no route: to the host through contivh0
    return out


def arp_responder_flow(ip: str, vrf_id: int, prio: int = Prio.ARP_ENDPOINT) -> Flow:
    """Answer a local asker's ARP request for ``ip`` in its VRF with the router MAC (no VLAN to pop)."""
    m = Match.of(eth_type=ETH_ARP, arp_op=ARP_REQUEST, metadata=_vrf_local(vrf_id), arp_tpa=ip)
    return Flow(ARP_RESPONDER, prio, m, arp_reply_actions(ROUTER_MAC, ip, False))


def network_flows(net: Network, vrf_id: int, vteps: list[Vtep]) -> list[Flow]:
    md = F.combine((F.VRF, vrf_id), (F.RX_VTEP, 1))
    out = [
        Flow(VLAN, Prio.MATCH, Match.of(in_port=vt.ofport, tunnel_id=net.vni), (), md, SVC_SNAT)
        for vt in vteps
    ]
    if net.gateway:
        out.append(arp_responder_flow(net.gateway, vrf_id, Prio.ARP_GATEWAY))
    return out


def local_endpoint_flows(ep: LocalEndpoint, vrf_id: int) -> list[Flow]:
    md = _src_metadata(vrf_id, ep.epg)
    out = [Flow(VLAN, Prio.PORT, Match.of(in_port=ep.ofport), (), md, SVC_DNAT)]
    if ep.dscp:
        m = Match.of(in_port=ep.ofport, eth_type=ETH_IP)
        out.append(Flow(VLAN, Prio.PORT_DSCP, m, (SetField("ip_dscp", ep.dscp),), md, SVC_DNAT))
    out.append(_dst_group_flow(ep.ip, vrf_id, ep.epg))
    route = Match.of(eth_type=ETH_IP, metadata=(F.VRF.value(vrf_id), F.VRF.mask), ipv4_dst=ep.ip)
    acts = (SetField("eth_src", ROUTER_MAC), SetField("eth_dst", ep.mac), Output(ep.ofport))
    out.append(Flow(IP, Prio.MATCH, route, acts))
    out.append(arp_responder_flow(ep.ip, vrf_id))
    return out


def remote_endpoint_flows(ep: RemoteEndpoint, vrf_id: int, vtep_port: int | None) -> list[Flow]:
    """Without a known VTEP only the dst_group flow (the route waits for the VTEP's port)."""
    out = [_dst_group_flow(ep.ip, vrf_id, ep.epg)]
    if vtep_port is None:
        return out
    route = Match.of(eth_type=ETH_IP, metadata=_vrf_local(vrf_id), ipv4_dst=ep.ip)
    acts = (SetField("eth_dst", ROUTER_MAC), SetField("tunnel_id", ep.vni), Output(vtep_port))
    out.append(Flow(IP, Prio.MATCH, route, acts))
    out.append(arp_responder_flow(ep.ip, vrf_id))
    return out
