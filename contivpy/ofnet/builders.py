"""Pure flow builders: one function per owner kind, for both datapaths.

Shapes follow the original's dump-flows (docs/original.md R8, docs/original.md R6):

  vxlan local endpoint   vlan:      priority=10,in_port=P -> push_vlan, set vlan_vid, write_metadata VRF|srcEPG, goto svc_dnat
                         dst_group: priority=100,ip,metadata=VRF,nw_dst=IP -> write_metadata dstEPG/0xfffe, goto policy
                         mac_dest:  priority=100,dl_vlan=V,dl_dst=MAC -> pop_vlan, output P
  remote endpoint        dst_group as above; mac_dest -> set tun_id VNI, pop_vlan, output VTEP
  network (vxlan)        mac_dest priority=10 metadata=0/0x1 -> group allFlood, metadata=1/1 -> group localFlood;
                         vlan priority=100 in_port=VTEP,tun_id=VNI -> push/set VLAN, write_metadata VRF|RX_VTEP, goto svc_snat
  flood groups           localFlood = 2*vlan-1 (local ports), allFlood = 2*vlan (local ports + VTEPs with tun_id);
                         buckets: [set tun_id,] pop_vlan, output
  vlan bridge            port flow without VLAN push; no MAC flows; mac_dest miss = NORMAL; uplink -> svc_snat
  service (svcproxy.py)  svc_dnat priority=10 <proto>,metadata=VRF,nw_dst=VIP -> CONTROLLER (one per proto)
  ARP responder (proxy)  svc_snat priority=100 arp,arp_op=1 -> goto arp_responder; arp_responder priority=1 -> CONTROLLER;
                         per endpoint arp_responder priority=100 arp,arp_op=1,<scope>,arp_tpa=IP -> reply in place
                         (vxlan scope dl_vlan=V, remote endpoints also metadata=0/0x1; vlan bridge scope metadata=VRF);
                         per vxlan network with a gateway: priority=90,metadata=0/0x1,dl_vlan=V,arp_tpa=GW -> GATEWAY_MAC;
                         per service: priority=95,metadata=VRF|0/VRF|0x1,vlan present,arp_tpa=VIP -> 02:02:<vip>
  service client         svc_dnat priority=100 <proto>,metadata=VRF,nw_src=client,nw_dst=VIP,tp_dst=svcPort
                           -> set dl_dst=provider MAC, ct(commit,zone=Z,nat(dst=provider:provPort)) -> dst_group
                         svc_snat priority=100 <proto>,metadata=VRF,nw_src=provider,nw_dst=client,tp_src=provPort
                           -> ct(zone=Z,nat) -> mac_dest (un-NATs only connections committed via the VIP)

Everything returns lists of :class:`Flow`/:class:`Group` without cookies (the flow cache
stamps the owner's cookie).  No I/O here.
"""

from __future__ import annotations

import ipaddress

from . import fields as F
from .flows import (
    OFPP_IN_PORT,
    OFPVID_PRESENT,
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
from .pipeline import (
    ARP_RESPONDER,
    DNS_VLAN,
    DST_GROUP,
    INPUT,
    IP,
    MAC_DEST,
    POLICY,
    SVC_CT_ZONE,
    SVC_DNAT,
    SVC_SNAT,
    VLAN,
    Prio,
)
from .types import ICMP_REQUEST_TYPES, LocalEndpoint, Network, RemoteEndpoint, Rule, Service, Vtep

__all__ = [
    "base_flows",
    "arp_punt_flows",
    "arp_reply_actions",
    "GATEWAY_MAC",
    "network_flows",
    "flood_groups",
    "local_flood_gid",
    "all_flood_gid",
    "local_endpoint_flows",
    "remote_endpoint_flows",
    "vtep_flows",
    "uplink_flows",
    "rule_flows",
    "service_watch_flows",
    "vip_mac",
    "service_client_flows",
]

ETH_IP = 0x0800
ETH_ARP = 0x0806
CONTIV_MAC = ("02:02:00:00:00:00", "ff:ff:00:00:00:00")
MCAST_MAC = ("01:00:00:00:00:00", "01:00:00:00:00:00")
IP_PROTO_UDP = 17
IP_PROTO_TCP = 6
TCP_SYN, TCP_ACK = 0x002, 0x010
ARP_REQUEST, ARP_REPLY = 1, 2
#: MAC answered for a network's gateway address on the vxlan bridge (ofnet's router MAC).
GATEWAY_MAC = "00:00:11:11:11:11"


def _vid(vlan: int) -> int:
    return OFPVID_PRESENT | vlan


def local_flood_gid(vlan: int) -> int:
    return 2 * vlan - 1


def all_flood_gid(vlan: int) -> int:
    return 2 * vlan


def base_flows(datapath: str, dns: bool) -> list[Flow]:
    """Table-miss chain and fixed table-0 flows (ARP punt is separate: it follows the ARP mode)."""
    vxlan = datapath == "vxlan"
    out = [
        Flow(INPUT, Prio.MISS, goto=VLAN),
        Flow(VLAN, Prio.MISS, goto=None if vxlan else DST_GROUP),
        Flow(SVC_DNAT, Prio.MISS, goto=DST_GROUP),
        Flow(DST_GROUP, Prio.MISS, goto=POLICY),
        Flow(POLICY, Prio.MISS, goto=SVC_SNAT),
        Flow(SVC_SNAT, Prio.MISS, goto=MAC_DEST),
        Flow(MAC_DEST, Prio.MISS, actions=() if vxlan else (Normal(),)),
    ]
    if vxlan:
        out.append(Flow(INPUT, Prio.MATCH, Match.of(eth_src=MCAST_MAC)))
    if dns:
        out.append(
            Flow(
                INPUT,
                Prio.MATCH,
                Match.of(eth_type=ETH_IP, ip_proto=IP_PROTO_UDP, eth_src=CONTIV_MAC, udp_dst=53),
                (Controller(),),
            )
        )
        out.append(
            Flow(
                INPUT,
                Prio.DNS_REINJECT,
                Match.of(
                    eth_type=ETH_IP,
                    ip_proto=IP_PROTO_UDP,
                    vlan_vid=_vid(DNS_VLAN),
                    eth_src=CONTIV_MAC,
                    udp_dst=53,
                ),
                (PopVlan(),),
                goto=VLAN,
            )
        )
    return out


def arp_punt_flows(arp_mode: str) -> list[Flow]:
    """Proxy mode: every ARP request is diverted (in svc_snat, which every path crosses once the
    packet carries its VRF / VLAN / RX_VTEP metadata) to arp_responder, whose endpoint flows
    answer known addresses in OVS; the rest goes to the controller (reinject or ignore, as the
    original).  Flood mode: nothing, ARP requests flood through the groups like any broadcast
    (except the requests for the router: :func:`network_flows` ``flood_router``)."""
    if arp_mode != "proxy":
        return []
    req = Match.of(eth_type=ETH_ARP, arp_op=ARP_REQUEST)
    return [
        Flow(SVC_SNAT, Prio.MATCH, req, goto=ARP_RESPONDER),
        Flow(ARP_RESPONDER, Prio.ARP_PUNT, req, (Controller(),)),
    ]


def arp_reply_actions(mac: str, ip: str, pop_vlan: bool) -> tuple:
    """Turn the ARP request in hand into the reply "``ip`` is at ``mac``" and send it back out of the
    port it came in on (the VLAN the vxlan bridge pushed is popped first; a request from a VTEP keeps
    its tun_id, so the reply returns over the same VNI)."""
    return (
        Move("eth_src", "eth_dst"),
        SetField("eth_src", mac),
        SetField("arp_op", ARP_REPLY),
        Move("arp_sha", "arp_tha"),
        Move("arp_spa", "arp_tpa"),
        SetField("arp_sha", mac),
        SetField("arp_spa", ip),
        *((PopVlan(),) if pop_vlan else ()),
        Output(OFPP_IN_PORT),
    )


def _arp_responder_flow(
    ip: str,
    mac: str,
    datapath: str,
    *,
    vlan: int = 0,
    vrf_id: int = 0,
    local_only: bool = False,
    prio: int = Prio.ARP_ENDPOINT,
) -> Flow:
    """vxlan bridge: scoped by the network's VLAN (pushed in table vlan for local ports and VTEPs);
    ``local_only`` adds RX_VTEP=0 (requests from a VTEP are only answered for local endpoints).
    vlan bridge: no tag in the pipeline, scoped by the VRF (requests from an uplink carry none)."""
    kw: dict = {"eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "arp_tpa": ip}
    if datapath == "vxlan":
        kw["vlan_vid"] = _vid(vlan)
        if local_only:
            kw["metadata"] = (0, F.RX_VTEP.mask)
    else:
        kw["metadata"] = (F.VRF.value(vrf_id), F.VRF.mask)
    return Flow(ARP_RESPONDER, prio, Match.of(**kw), arp_reply_actions(mac, ip, datapath == "vxlan"))


def network_flows(
    net: Network, vrf_id: int, vteps: list[Vtep], arp_proxy: bool = False, flood_router: bool = False
) -> list[Flow]:
    """vxlan bridge only: flood flows of the VLAN and the VTEP+VNI classification per VTEP; with
    ``arp_proxy``, the gateway's ARP answer for local endpoints (an endpoint holding it wins).

    ``flood_router`` (ARP flood mode): the requests of local endpoints for the router are taken out of
    the flood in svc_snat: for the gateway, to arp_responder, whose gateway flow answers in OVS;
    without a gateway, any address outside the subnet goes to the controller (punt.py answers the
    router MAC, as in proxy mode). Every other request floods as before. This is what host access
    needs in flood mode."""
    out = [
        Flow(MAC_DEST, Prio.FLOOD, Match.of(metadata=(0, F.RX_VTEP.mask), vlan_vid=_vid(net.vlan)),
             (GroupAction(all_flood_gid(net.vlan)),)),
        Flow(MAC_DEST, Prio.FLOOD, Match.of(metadata=(1, F.RX_VTEP.mask), vlan_vid=_vid(net.vlan)),
             (GroupAction(local_flood_gid(net.vlan)),)),
    ]  # fmt: skip
    md = F.combine((F.VRF, vrf_id), (F.RX_VTEP, 1))
    for vt in vteps:
        out.append(
            Flow(
                VLAN,
                Prio.MATCH,
                Match.of(in_port=vt.ofport, tunnel_id=net.vni),
                (PushVlan(), SetField("vlan_vid", _vid(net.vlan))),
                md,
                SVC_SNAT,
            )
        )
    if (arp_proxy or flood_router) and net.gateway:
        out.append(
            _arp_responder_flow(net.gateway, GATEWAY_MAC, "vxlan", vlan=net.vlan, local_only=True,
                                prio=Prio.ARP_GATEWAY)
        )  # fmt: skip
    if flood_router and not arp_proxy:
        req = {"eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "metadata": (0, F.RX_VTEP.mask),
               "vlan_vid": _vid(net.vlan)}  # fmt: skip
        if net.gateway:
            out.append(Flow(SVC_SNAT, Prio.MATCH, Match.of(**req, arp_tpa=net.gateway), goto=ARP_RESPONDER))
        elif net.subnet:
            n = ipaddress.IPv4Network(net.subnet)
            inside = Match.of(**req, arp_tpa=(str(n.network_address), str(n.netmask)))
            out.append(Flow(SVC_SNAT, Prio.MATCH, inside, goto=MAC_DEST))
            out.append(Flow(SVC_SNAT, Prio.ARP_ROUTER, Match.of(**req), (Controller(),)))
    return out


def flood_groups(net: Network, local_ports: list[int], vteps: list[Vtep]) -> list[Group]:
    local = tuple((PopVlan(), Output(p)) for p in sorted(local_ports))
    remote = tuple(
        (SetField("tunnel_id", net.vni), PopVlan(), Output(v.ofport))
        for v in sorted(vteps, key=lambda v: v.ofport)
    )
    return [Group(local_flood_gid(net.vlan), local), Group(all_flood_gid(net.vlan), local + remote)]


def _src_metadata(vrf_id: int, epg: int) -> tuple[int, int]:
    if epg:
        return F.combine((F.VRF, vrf_id), (F.SRC_EPG, epg))
    return F.combine((F.VRF, vrf_id))


def _dst_group_flow(ip: str, vrf_id: int, epg: int) -> Flow:
    return Flow(
        DST_GROUP,
        Prio.MATCH,
        Match.of(eth_type=ETH_IP, metadata=(F.VRF.value(vrf_id), F.VRF.mask), ipv4_dst=ip),
        write_metadata=(F.DST_EPG.value(epg), F.DST_EPG.mask),
        goto=POLICY,
    )


def local_endpoint_flows(
    ep: LocalEndpoint, vrf_id: int, datapath: str, arp_proxy: bool = False
) -> list[Flow]:
    md = _src_metadata(vrf_id, ep.epg)
    push = (PushVlan(), SetField("vlan_vid", _vid(ep.vlan))) if datapath == "vxlan" else ()
    out = [Flow(VLAN, Prio.PORT, Match.of(in_port=ep.ofport), push, md, SVC_DNAT)]
    if ep.dscp:
        out.append(
            Flow(
                VLAN,
                Prio.PORT_DSCP,
                Match.of(in_port=ep.ofport, eth_type=ETH_IP),
                push + (SetField("ip_dscp", ep.dscp),),
                md,
                SVC_DNAT,
            )
        )
    out.append(_dst_group_flow(ep.ip, vrf_id, ep.epg))
    if datapath == "vxlan":
        out.append(
            Flow(
                MAC_DEST,
                Prio.MATCH,
                Match.of(vlan_vid=_vid(ep.vlan), eth_dst=ep.mac),
                (PopVlan(), Output(ep.ofport)),
            )
        )
    if arp_proxy:
        out.append(_arp_responder_flow(ep.ip, ep.mac, datapath, vlan=ep.vlan, vrf_id=vrf_id))
    return out


def remote_endpoint_flows(
    ep: RemoteEndpoint, vrf_id: int, vlan: int, vtep_port: int | None, datapath: str, arp_proxy: bool = False
) -> list[Flow]:
    out = [_dst_group_flow(ep.ip, vrf_id, ep.epg)]
    if datapath == "vxlan" and vtep_port is not None:
        out.append(
            Flow(
                MAC_DEST,
                Prio.MATCH,
                Match.of(vlan_vid=_vid(vlan), eth_dst=ep.mac),
                (SetField("tunnel_id", ep.vni), PopVlan(), Output(vtep_port)),
            )
        )
    if arp_proxy and (datapath == "vlan" or vtep_port is not None):
        out.append(_arp_responder_flow(ep.ip, ep.mac, datapath, vlan=vlan, vrf_id=vrf_id, local_only=True))
    return out


def vtep_flows(vt: Vtep, dns: bool) -> list[Flow]:
    """DNS from a VTEP is not punted (the sender's host already handled it)."""
    if not dns:
        return []
    m = Match.of(in_port=vt.ofport, eth_type=ETH_IP, ip_proto=IP_PROTO_UDP, udp_dst=53)
    return [Flow(INPUT, Prio.UPLINK_DNS, m, goto=VLAN)]


def uplink_flows(ofport: int, dns: bool) -> list[Flow]:
    out = [Flow(VLAN, Prio.MATCH, Match.of(in_port=ofport), goto=SVC_SNAT)]
    if dns:
        m = Match.of(in_port=ofport, eth_type=ETH_IP, ip_proto=IP_PROTO_UDP, udp_dst=53)
        out.append(Flow(INPUT, Prio.UPLINK_DNS, m, goto=VLAN))
    return out


def rule_flows(rule: Rule) -> list[Flow]:
    kw: dict = {"eth_type": ETH_IP}
    if rule.protocol:
        kw["ip_proto"] = rule.protocol
    md_parts = []
    if rule.src_epg:
        md_parts.append((F.SRC_EPG, rule.src_epg))
    if rule.dst_epg:
        md_parts.append((F.DST_EPG, rule.dst_epg))
    if md_parts:
        kw["metadata"] = F.combine(*md_parts)
    for key, cidr in (("ipv4_src", rule.src_ip), ("ipv4_dst", rule.dst_ip)):
        if cidr:
            addr, plen = cidr.split("/")
            mask = str(ipaddress.IPv4Network(cidr).netmask)
            kw[key] = (addr, mask) if plen != "32" else addr
    l4 = {6: "tcp", 17: "udp"}.get(rule.protocol)
    if l4 and rule.src_port:
        kw[f"{l4}_src"] = rule.src_port
    if l4 and rule.dst_port:
        kw[f"{l4}_dst"] = rule.dst_port
    if rule.tcp_flags:
        flags = {"syn,!ack": (TCP_SYN, TCP_SYN | TCP_ACK), "syn": (TCP_SYN, TCP_SYN), "ack": (TCP_ACK, TCP_ACK),
                 "!ack": (0, TCP_ACK)}[rule.tcp_flags]  # fmt: skip
        kw["tcp_flags"] = flags
    goto = SVC_SNAT if rule.action == "allow" else None
    prio = Prio.POLICY_BASE + rule.priority
    if rule.icmp_type == "request":  # one flow per request type: replies and errors do not match
        return [Flow(POLICY, prio, Match.of(**kw, icmpv4_type=t), goto=goto) for t in ICMP_REQUEST_TYPES]
    return [Flow(POLICY, prio, Match.of(**kw), goto=goto)]


_L4 = {"tcp": (IP_PROTO_TCP, "tcp_src", "tcp_dst"), "udp": (IP_PROTO_UDP, "udp_src", "udp_dst")}


def vip_mac(vip: str) -> str:
    """The proxy MAC of a service VIP: ``02:02:`` + its IPv4 bytes (as the original)."""
    return "02:02:" + ":".join(f"{int(b):02x}" for b in vip.split("."))


def service_watch_flows(svc: Service, vrf_id: int, arp_proxy: bool = False) -> list[Flow]:
    """Punt the first packet of a client to the VIP (one flow per protocol of the service); with
    ``arp_proxy``, answer ARP for the VIP from local endpoints of its tenant with :func:`vip_mac`
    (the service LB is vxlan-only: the VLAN pushed in table vlan is popped; an endpoint holding the
    address wins)."""
    md = (F.VRF.value(vrf_id), F.VRF.mask)
    out = []
    for proto in sorted({p for _, _, p in svc.ports}):
        m = Match.of(eth_type=ETH_IP, ip_proto=_L4[proto][0], metadata=md, ipv4_dst=svc.vip)
        out.append(Flow(SVC_DNAT, Prio.SVC_WATCH, m, (Controller(),)))
    if arp_proxy:
        m = Match.of(
            eth_type=ETH_ARP, arp_op=ARP_REQUEST, arp_tpa=svc.vip,
            metadata=F.combine((F.VRF, vrf_id), (F.RX_VTEP, 0)), vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT),
        )  # fmt: skip
        out.append(Flow(ARP_RESPONDER, Prio.ARP_VIP, m, arp_reply_actions(vip_mac(svc.vip), svc.vip, True)))
    return out


def service_client_flows(
    svc: Service,
    vrf_id: int,
    client: str,
    provider: str,
    provider_mac: str,
    routing: bool = False,
    routed_client: tuple[str, int] | None = None,
) -> list[Flow]:
    """Per-client stateful NAT in conntrack zone SVC_CT_ZONE: svc_dnat commits client -> VIP:svcPort
    with a DNAT to provider:provPort (and sets the provider's MAC), recirculating into dst_group;
    svc_snat sends the provider's replies to this client through ``ct(nat)``, which un-NATs only
    connections committed through the VIP (a direct connection's reply passes unchanged). The reply
    continues at mac_dest, or at ip in routing mode (routing.py).

    ``routed_client`` = (MAC, VLAN) of a client on another network than the providers: the contivh1
    port in bridge mode (infraroute.py). Its DNAT sets the router MAC as destination (the host may have
    resolved the VIP itself), so the contivh1 route of the provider (svc_snat p60) carries it across; its reply gets the router MAC as source and
    the client's MAC and VLAN before the un-NAT recirculates into mac_dest."""
    md = (F.VRF.value(vrf_id), F.VRF.mask)
    out = []
    for svc_port, prov_port, proto in svc.ports:
        num, src, dst = _L4[proto]
        dnat = Match.of(
            eth_type=ETH_IP, ip_proto=num, metadata=md, ipv4_src=client, ipv4_dst=svc.vip, **{dst: svc_port}
        )
        ct = Ct(SVC_CT_ZONE, DST_GROUP, commit=True, nat=Nat("dst", provider, prov_port))
        pre = (SetField("eth_dst", GATEWAY_MAC if routed_client else provider_mac),)
        out.append(Flow(SVC_DNAT, Prio.MATCH, dnat, (*pre, ct)))
        snat = Match.of(
            eth_type=ETH_IP, ip_proto=num, metadata=md, ipv4_src=provider, ipv4_dst=client, **{src: prov_port}
        )
        un_nat = Ct(SVC_CT_ZONE, IP if routing else MAC_DEST, nat=Nat())
        if routed_client:
            snat = Match.of(**snat.as_kwargs(), vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT))
            back = (
                SetField("eth_src", GATEWAY_MAC),
                SetField("eth_dst", routed_client[0]),
                SetField("vlan_vid", OFPVID_PRESENT | routed_client[1]),
            )
            out.append(Flow(SVC_SNAT, Prio.MATCH, snat, (*back, un_nat)))
        else:
            out.append(Flow(SVC_SNAT, Prio.MATCH, snat, (un_nat,)))
    return out
