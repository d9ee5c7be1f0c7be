"""Host access: containers reach their host and the outside through ``contivh0`` (vxlan bridge) or ``contivh0v`` (vlan bridge).

The original routed this through its vrouter's tables ``host_dnat`` (2) and ``host_snat`` (8); contivpy
uses the same tables and the same per-endpoint private addresses in bridge mode
(docs/ovs-pipeline.md, "Host access"; docs/decisions.md):

* ``contivh0`` is an OVS internal port whose host side holds ``pvtSubnet + 0xfffe``
  (172.19.255.254/16, MAC 02:02:ac:13:ff:fe); netplugin creates it and the kernel's
  ``POSTROUTING -s <pvtSubnet> ! -o contivh0 -j MASQUERADE`` rule NATs what leaves the host.
* every local endpoint on OpenFlow port P (< 0x8000) has the private address ``pvtSubnet + P`` (MAC
  ``02:02:<address bytes>``): unique on the host across tenants, so overlapping tenant subnets never
  meet in the host's routing table.
* Egress: a container sends off-subnet traffic to the router MAC (``arp.GATEWAY_MAC``, answered by the ARP
  proxy). ``svc_snat`` diverts IP frames to that MAC (not received from a VTEP) to ``host_snat``, except
  frames addressed to the private subnet (dropped: no endpoint may reach another one through the host)
  other than ``contivh0``'s own address. ``host_snat`` (one flow per local endpoint, matched by ``in_port``)
  rewrites the source to the endpoint's private address and MAC, the destination MAC to ``contivh0``'s,
  pops the VLAN and outputs to ``contivh0``. The host kernel delivers, forwards or NATs it.
* Ingress: ``vlan`` sends everything from ``contivh0`` to ``host_dnat``; one flow per local endpoint
  rewrites its private address back to the endpoint's address and MAC (source MAC = router MAC), pushes
  the network's VLAN, writes its VRF and continues at ``dst_group`` (policy applies, as for traffic from a
  VTEP or an uplink). The kernel's ARP requests for private addresses (``arp,in_port=contivh0``, punted
  in both ARP modes) are answered by the controller with the private MAC; DNS from ``contivh0`` is not
  punted.

Routing mode (routing.py): no VLAN is popped or pushed, and there is no ``svc_snat`` divert: a packet
for which table ``ip`` has no route reaches ``host_snat`` through that table's miss (the deny of the
private subnet and the allow of contivh0's address stay in ``svc_snat``).

vlan bridge (:class:`HostAccess` with ``vlan=True``): its own host port ``contivh0v``
(``VLAN_HOST_PORT``), present on the vlan bridge whenever host access is set up, in both forwarding
modes, with ``pvtSubnet + 0xfffd``/17 (the upper half of the private subnet, a more specific route than
contivh0's /16) and its endpoints' private addresses ``pvtSubnet + 0x8000 + P`` (the vxlan bridge's stay
below 0x8000, so the two bridges' OpenFlow port numbers never give the same address). One address plan,
one port, one set of tables (``host_snat``, ``host_dnat``); the private subnet deny covers the whole /16 on
both bridges. The flows follow the forwarding mode (the agent rebuilds them on a live switch):

* bridge mode: the pipeline carries no VLAN tag and has no router, so a local endpoint's ARP for its
  network's gateway is taken in ``svc_snat`` (p101, any ARP mode) to ``arp_responder``, which answers the
  router MAC (vlan networks without a gateway get no host access in bridge mode); IP to the router MAC
  goes to ``host_snat`` as above (no VLAN pop; nothing from the uplink is diverted: it carries no router
  MAC); ``host_dnat`` ends at ``dst_group`` as above and ``mac_dest`` p100
  ``in_port=<contivh0v>,dl_dst=<endpoint MAC>`` outputs to the endpoint's port (its miss NORMAL would
  forward in contivh0v's own VLAN). Five flows per endpoint (three without gateway).
* routing mode (vlrouting.py, the original's vlrouter): the routing variant of the vxlan bridge's flows
  (no divert, no VLAN): table ``ip``'s miss reaches ``host_snat``, ``host_dnat`` continues at
  ``dst_group`` and table ``ip`` routes the reply to the endpoint's /32. Two flows per endpoint.
  A network without a gateway is covered too: the agent answers its containers' ARP outside the
  subnet with the router MAC (punt.py), and their on-link default route does the rest.

Owners: ``hostport`` (the fixed flows, which need the port number and the subnet) and ``hep:<ofport>`` (one
local endpoint's flows). Without a host port nothing is installed and the pipeline is exactly as before.
Pure builders plus a small state holder; the agent applies the owners.
"""

from __future__ import annotations

import ipaddress

from contivpy.common.errors import ValidationError

from . import fields as F
from .arp import GATEWAY_MAC
from .builders import ARP_REQUEST, arp_reply_actions
from .flows import OFPVID_PRESENT, Controller, Flow, Match, Output, PopVlan, PushVlan, SetField
from .pipeline import (
    ARP_RESPONDER,
    DST_GROUP,
    HOST_DNAT,
    HOST_PORT_SUFFIX,
    HOST_SNAT,
    INPUT,
    MAC_DEST,
    SVC_SNAT,
    VLAN,
    VLAN_HOST_PORT_SUFFIX,
    VLAN_PVT_OFFSET,
    Prio,
)
from .types import LocalEndpoint

__all__ = [
    "HostAccess",
    "host_port_address",
    "private_address",
    "mac_of",
    "host_port_flows",
    "host_endpoint_flows",
    "vlan_host_port_flows",
    "vlan_host_endpoint_flows",
    "VLAN_HOST_PORT",
]

ETH_IP, ETH_ARP, UDP = 0x0800, 0x0806, 17
VLAN_HOST_PORT = "contivh0v"  # the vlan bridge's host port (both forwarding modes)


def _net(pvt_subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(pvt_subnet, strict=False)
    except ValueError:
        raise ValidationError(f"invalid private subnet {pvt_subnet!r}") from None
    if net.prefixlen != 16:
        raise ValidationError(f"private subnet {pvt_subnet} is not a /16")
    return net


def host_port_address(pvt_subnet: str, vlan: bool = False) -> str:
    """contivh0's address: pvtSubnet + 0xfffe (172.19.255.254 for the default); the vlan bridge's
    contivh0v: pvtSubnet + 0xfffd."""
    return str(_net(pvt_subnet).network_address + (VLAN_HOST_PORT_SUFFIX if vlan else HOST_PORT_SUFFIX))


def _offset(vlan: bool) -> tuple[int, int]:
    """(first, end) of the private address offsets of a bridge's endpoints (ofport + first < end)."""
    return (VLAN_PVT_OFFSET, VLAN_HOST_PORT_SUFFIX) if vlan else (0, VLAN_PVT_OFFSET)


def private_address(pvt_subnet: str, ofport: int, vlan: bool = False) -> str:
    """The private address of the local endpoint on OpenFlow port ``ofport``: pvtSubnet + ofport
    (vxlan bridge, ofport < 0x8000) or pvtSubnet + 0x8000 + ofport (vlan bridge)."""
    first, end = _offset(vlan)
    if not 0 < ofport < end - first:
        raise ValidationError(f"ofport {ofport} has no private address")
    return str(_net(pvt_subnet).network_address + first + ofport)


def mac_of(ip: str) -> str:
    """02:02:<address bytes> (the Contiv MAC of an address)."""
    return "02:02:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def host_port_flows(port: int, pvt_subnet: str, routing: bool = False, vlan: bool = False) -> list[Flow]:
    """Routing mode (routing.py, vlrouting.py) has no ``svc_snat`` divert: what table ``ip`` has no
    route for goes to ``host_snat`` by its miss; the deny of the private subnet (and the allow of the
    host port's own address) stays in ``svc_snat``, ahead of the routing. ``vlan``: contivh0v's address
    (routing mode; the vlan bridge in bridge mode uses :func:`vlan_host_port_flows`)."""
    net = _net(pvt_subnet)
    h0 = host_port_address(pvt_subnet, vlan)
    to_router = {"eth_type": ETH_IP, "metadata": (0, F.RX_VTEP.mask), "eth_dst": GATEWAY_MAC}
    return [
        Flow(INPUT, Prio.UPLINK_DNS, Match.of(in_port=port, eth_type=ETH_ARP), (Controller(),)),
        Flow(INPUT, Prio.UPLINK_DNS, Match.of(in_port=port, eth_type=ETH_IP, ip_proto=UDP, udp_dst=53),
             goto=VLAN),
        Flow(VLAN, Prio.MATCH, Match.of(in_port=port), goto=HOST_DNAT),
        *(() if routing else (Flow(SVC_SNAT, Prio.HOST_DIVERT, Match.of(**to_router), goto=HOST_SNAT),)),
        Flow(SVC_SNAT, Prio.HOST_DENY, Match.of(**to_router, ipv4_dst=(str(net.network_address), str(net.netmask)))),
        Flow(SVC_SNAT, Prio.HOST_ALLOW, Match.of(**to_router, ipv4_dst=h0), goto=HOST_SNAT),
    ]  # fmt: skip


def host_endpoint_flows(
    ep: LocalEndpoint, vrf_id: int, port: int, pvt_subnet: str, routing: bool = False, vlan: bool = False
) -> list[Flow]:
    """Bridge mode pops/pushes the network's VLAN; routing mode has none in the pipeline. ``vlan``:
    the vlan bridge's addresses (routing mode only; bridge mode: :func:`vlan_host_endpoint_flows`)."""
    pvt = private_address(pvt_subnet, ep.ofport, vlan)
    h0_mac = mac_of(host_port_address(pvt_subnet, vlan))
    snat = (
        SetField("ipv4_src", pvt),
        SetField("eth_src", mac_of(pvt)),
        SetField("eth_dst", h0_mac),
        *(() if routing else (PopVlan(),)),
        Output(port),
    )
    dnat = (
        SetField("ipv4_dst", ep.ip),
        SetField("eth_src", GATEWAY_MAC),
        SetField("eth_dst", ep.mac),
        *(() if routing else (PushVlan(), SetField("vlan_vid", OFPVID_PRESENT | ep.vlan))),
    )
    md = F.combine((F.VRF, vrf_id))
    # pop_vlan needs a VLAN in the match (OpenFlow 1.3 consistency)
    vid = {} if routing else {"vlan_vid": OFPVID_PRESENT | ep.vlan}
    return [
        Flow(HOST_SNAT, Prio.MATCH, Match.of(in_port=ep.ofport, eth_type=ETH_IP, **vid), snat),
        Flow(
            HOST_DNAT, Prio.MATCH, Match.of(in_port=port, eth_type=ETH_IP, ipv4_dst=pvt), dnat, md, DST_GROUP
        ),
    ]


def vlan_host_port_flows(port: int, pvt_subnet: str) -> list[Flow]:
    """The vlan bridge's fixed host access flows (contivh0v on ``port``)."""
    net = _net(pvt_subnet)
    h0 = host_port_address(pvt_subnet, vlan=True)
    to_router = {"eth_type": ETH_IP, "eth_dst": GATEWAY_MAC}
    return [
        Flow(INPUT, Prio.UPLINK_DNS, Match.of(in_port=port, eth_type=ETH_ARP), (Controller(),)),
        Flow(INPUT, Prio.UPLINK_DNS, Match.of(in_port=port, eth_type=ETH_IP, ip_proto=UDP, udp_dst=53),
             goto=VLAN),
        Flow(VLAN, Prio.MATCH, Match.of(in_port=port), goto=HOST_DNAT),
        Flow(SVC_SNAT, Prio.HOST_DIVERT, Match.of(**to_router), goto=HOST_SNAT),
        Flow(SVC_SNAT, Prio.HOST_DENY, Match.of(**to_router, ipv4_dst=(str(net.network_address), str(net.netmask)))),
        Flow(SVC_SNAT, Prio.HOST_ALLOW, Match.of(**to_router, ipv4_dst=h0), goto=HOST_SNAT),
    ]  # fmt: skip


def vlan_host_endpoint_flows(
    ep: LocalEndpoint, vrf_id: int, port: int, pvt_subnet: str, gateway: str = ""
) -> list[Flow]:
    """One vlan-bridge endpoint's host access flows (no VLAN in the pipeline; see the module doc)."""
    pvt = private_address(pvt_subnet, ep.ofport, vlan=True)
    h0_mac = mac_of(host_port_address(pvt_subnet, vlan=True))
    snat = (
        SetField("ipv4_src", pvt),
        SetField("eth_src", mac_of(pvt)),
        SetField("eth_dst", h0_mac),
        Output(port),
    )
    dnat = (SetField("ipv4_dst", ep.ip), SetField("eth_src", GATEWAY_MAC), SetField("eth_dst", ep.mac))
    md = F.combine((F.VRF, vrf_id))
    out = [
        Flow(HOST_SNAT, Prio.MATCH, Match.of(in_port=ep.ofport, eth_type=ETH_IP), snat),
        Flow(
            HOST_DNAT, Prio.MATCH, Match.of(in_port=port, eth_type=ETH_IP, ipv4_dst=pvt), dnat, md, DST_GROUP
        ),
        Flow(MAC_DEST, Prio.MATCH, Match.of(in_port=port, eth_dst=ep.mac), (Output(ep.ofport),)),
    ]
    if gateway:
        arp = Match.of(in_port=ep.ofport, eth_type=ETH_ARP, arp_op=ARP_REQUEST, arp_tpa=gateway)
        out += [
            Flow(SVC_SNAT, Prio.HOST_GW_ARP, arp, goto=ARP_RESPONDER),
            Flow(ARP_RESPONDER, Prio.ARP_GATEWAY, arp, arp_reply_actions(GATEWAY_MAC, gateway, False)),
        ]
    return out  # fmt: skip


class HostAccess:
    """The host port of one agent (contivh0 on the vxlan bridge; contivh0v on the vlan bridge, ``vlan``):
    its OpenFlow port and the private subnet (or none)."""

    def __init__(self, vlan: bool = False) -> None:
        self.port: int | None = None
        self.pvt_subnet: str = ""
        self.routing = False  # the agent's forwarding mode (set by OfnetAgent)
        self.vlan = vlan  # the vlan bridge's contivh0v (module doc)

    @property
    def enabled(self) -> bool:
        return self.port is not None and bool(self.pvt_subnet)

    def set(self, port: int | None, pvt_subnet: str = "") -> None:
        if port is not None:
            if not isinstance(port, int) or not 0 < port < 0xFFFFFF00:
                raise ValidationError(f"invalid host port {port!r}")
            _net(pvt_subnet)
        self.port, self.pvt_subnet = port, pvt_subnet if port is not None else ""

    def port_owner(self):
        if not self.enabled:
            return ("hostport", [], [])
        if self.vlan and not self.routing:
            return ("hostport", vlan_host_port_flows(self.port, self.pvt_subnet), [])
        return ("hostport", host_port_flows(self.port, self.pvt_subnet, self.routing, self.vlan), [])

    def endpoint_owner(self, ep: LocalEndpoint, vrf_id: int, gateway: str = ""):
        name = f"hep:{ep.ofport}"
        first, end = _offset(self.vlan)
        if not self.enabled or ep.ofport >= end - first:
            return (name, [], [])
        if self.vlan and not self.routing:
            return (name, vlan_host_endpoint_flows(ep, vrf_id, self.port, self.pvt_subnet, gateway), [])
        flows = host_endpoint_flows(ep, vrf_id, self.port, self.pvt_subnet, self.routing, self.vlan)
        return (name, flows, [])

    def private_ip(self, ofport: int) -> str:
        first, end = _offset(self.vlan)
        if not self.enabled or not 0 < ofport < end - first:
            return ""
        return private_address(self.pvt_subnet, ofport, self.vlan)

    def arp_target_port(self, ip: str) -> int | None:
        """The OpenFlow port whose private address is ``ip`` (None: not one of ours)."""
        if not self.enabled:
            return None
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        net = _net(self.pvt_subnet)
        if addr not in net:
            return None
        first, end = _offset(self.vlan)
        off = int(addr) - int(net.network_address) - first
        return off if 0 < off < end - first else None
