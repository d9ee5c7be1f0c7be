"""Host access on the vxlan bridge: containers reach their host and the outside through ``contivh0``.

The original routed this through its vrouter's tables ``host_dnat`` (2) and ``host_snat`` (8); contivpy
uses the same tables and the same per-endpoint private addresses in bridge mode
(docs/ovs-pipeline.md, "Host access"; docs/decisions.md):

* ``contivh0`` is an OVS internal port whose host side holds ``pvtSubnet + 0xfffe``
  (172.19.255.254/16, MAC 02:02:ac:13:ff:fe); netplugin creates it and the kernel's
  ``POSTROUTING -s <pvtSubnet> ! -o contivh0 -j MASQUERADE`` rule NATs what leaves the host.
* every local endpoint on OpenFlow port P has the private address ``pvtSubnet + P`` (MAC
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

vlan routing mode (vlrouting.py, the original's vlrouter): the vlan bridge has a host port of its own,
``contivh0v`` (``VLAN_HOST_PORT``), with ``pvtSubnet + 0xfffd``/17 (the upper half of the private
subnet: 172.19.255.253/17, a more specific route than contivh0's /16) and its endpoints' private
addresses ``pvtSubnet + 0x8000 + P`` (``VLAN_OFFSET``), so the two bridges' OpenFlow port numbers
never give the same address. Same tables, same flows (routing variant), no VLAN; the private subnet
deny covers the whole /16 on both bridges.

Owners: ``hostport`` (the fixed flows, which need the port number and the subnet) and ``hep:<ofport>`` (one
local endpoint's two flows). Without a host port nothing is installed and the pipeline is exactly as before.
Pure builders plus a small state holder; the agent applies the owners.
"""

from __future__ import annotations

import ipaddress

from contivpy.common.errors import ValidationError

from . import fields as F
from .arp import GATEWAY_MAC
from .flows import OFPVID_PRESENT, Controller, Flow, Match, Output, PopVlan, PushVlan, SetField
from .pipeline import (
    DST_GROUP,
    HOST_DNAT,
    HOST_PORT_SUFFIX,
    HOST_SNAT,
    INPUT,
    SVC_SNAT,
    VLAN,
    Prio,
)
from .types import LocalEndpoint

__all__ = [
    "HostAccess",
    "host_port_address",
    "private_address",
    "port_address",
    "VLAN_HOST_PORT",
    "VLAN_OFFSET",
    "mac_of",
    "host_port_flows",
    "host_endpoint_flows",
]

ETH_IP, ETH_ARP, UDP = 0x0800, 0x0806, 17
VLAN_HOST_PORT = "contivh0v"  # the vlan bridge's host port (vlan routing mode)
VLAN_OFFSET = 0x8000  # the vlan bridge's private addresses: pvtSubnet + 0x8000 + ofport
VLAN_PORT_SUFFIX = 0xFFFD  # contivh0v's own address: pvtSubnet + 0xfffd (/17)


def _net(pvt_subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(pvt_subnet, strict=False)
    except ValueError:
        raise ValidationError(f"invalid private subnet {pvt_subnet!r}") from None
    if net.prefixlen != 16:
        raise ValidationError(f"private subnet {pvt_subnet} is not a /16")
    return net


def host_port_address(pvt_subnet: str) -> str:
    """contivh0's address: pvtSubnet + 0xfffe (172.19.255.254 for the default)."""
    return str(_net(pvt_subnet).network_address + HOST_PORT_SUFFIX)


def port_address(pvt_subnet: str, offset: int = 0) -> str:
    """The host port's own address: contivh0 (offset 0) pvtSubnet + 0xfffe, contivh0v pvtSubnet + 0xfffd."""
    return str(_net(pvt_subnet).network_address + (VLAN_PORT_SUFFIX if offset else HOST_PORT_SUFFIX))


def _limit(offset: int) -> int:
    return (VLAN_PORT_SUFFIX if offset else HOST_PORT_SUFFIX) - offset


def private_address(pvt_subnet: str, ofport: int, offset: int = 0) -> str:
    """The private address of the local endpoint on OpenFlow port ``ofport``: pvtSubnet + offset + ofport."""
    if not 0 < ofport < _limit(offset):
        raise ValidationError(f"ofport {ofport} has no private address")
    return str(_net(pvt_subnet).network_address + offset + ofport)


def mac_of(ip: str) -> str:
    """02:02:<address bytes> (the Contiv MAC of an address)."""
    return "02:02:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def host_port_flows(port: int, pvt_subnet: str, routing: bool = False, offset: int = 0) -> list[Flow]:
    """Routing mode (routing.py) has no ``svc_snat`` divert: what table ``ip`` has no route for goes
    to ``host_snat`` by its miss; the deny of the private subnet (and the allow of the host port's own
    address) stays in ``svc_snat``, ahead of the routing."""
    net = _net(pvt_subnet)
    h0 = port_address(pvt_subnet, offset)
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
    ep: LocalEndpoint, vrf_id: int, port: int, pvt_subnet: str, routing: bool = False, offset: int = 0
) -> list[Flow]:
    """Bridge mode pops/pushes the network's VLAN; routing mode has none in the pipeline."""
    pvt = private_address(pvt_subnet, ep.ofport, offset)
    h0_mac = mac_of(port_address(pvt_subnet, offset))
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


class HostAccess:
    """The host port of one agent (contivh0 on the vxlan bridge, offset 0; contivh0v on the vlan
    bridge, offset ``VLAN_OFFSET``): its OpenFlow port and the private subnet (or none)."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self.port: int | None = None
        self.pvt_subnet: str = ""
        self.routing = False  # the agent's forwarding mode (set by OfnetAgent)

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
        return ("hostport", host_port_flows(self.port, self.pvt_subnet, self.routing, self.offset), [])

    def endpoint_owner(self, ep: LocalEndpoint, vrf_id: int):
        name = f"hep:{ep.ofport}"
        if not self.enabled or ep.ofport >= _limit(self.offset):
            return (name, [], [])
        flows = host_endpoint_flows(ep, vrf_id, self.port, self.pvt_subnet, self.routing, self.offset)
        return (name, flows, [])

    def private_ip(self, ofport: int) -> str:
        if not self.enabled or not 0 < ofport < _limit(self.offset):
            return ""
        return private_address(self.pvt_subnet, ofport, self.offset)

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
        off = int(addr) - int(net.network_address) - self.offset
        return off if 0 < off < _limit(self.offset) else None
