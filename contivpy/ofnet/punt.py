"""Packet-in handling of :class:`~contivpy.ofnet.agent.OfnetAgent` (a mixin: it reads the agent's
intent tables ``_local``, ``_remote``, ``_vteps``, ``_networks``, ``_uplinks`` and ``svc``).

Packet-ins: ARP requests (proxy mode) are answered from the endpoint tables (see
:mod:`arp`); on the vxlan bridge an ARP request of a local endpoint for its network's gateway
(held by no endpoint), or for a network without a gateway any address outside its subnet, is
answered with ``arp.GATEWAY_MAC`` (on the vlan bridge in routing mode too), so off-subnet traffic, DNS queries to
an upstream resolver included, leaves the container (with a host port it leaves through
``contivh0``, see :mod:`hostaccess`; without one it is dropped in table 9). ARP requests of the host
port itself are answered with the private MAC of a local endpoint's private address. DNS queries from container MACs go to ``dns_resolver(in_port, frame)`` (if set;
``local_endpoint(in_port).vrf`` gives the asker's tenant), which returns the reply frame sent out
of ``in_port``, or None: then the query is re-injected with VLAN 4093 so it continues through the
pipeline.

Routing mode (routing.py): every answer is the router MAC, requests from a VTEP are ignored and an
unknown target is never re-injected (nothing is bridged between hosts).

First packets of a service client (punted from svc_dnat) go to the agent's ``svc`` proxy.
Nothing here changes flows; replies are packet-outs, counted in ``_counters``.
"""

from __future__ import annotations

import ipaddress

from . import arp as arpmod
from .flows import OFPP_CONTROLLER, OFPP_TABLE, OFPVID_PRESENT, Output, PushVlan, SetField
from .hostaccess import mac_of
from .pipeline import DNS_VLAN, SVC_DNAT
from .types import LocalEndpoint

__all__ = ["PuntMixin"]


class PuntMixin:
    """ARP proxy, DNS punt and service first-packet dispatch for OfnetAgent."""

    def _endpoint(self, ip: str, vrf: str):
        key = f"{ip}:{vrf}"
        loc = next((e for e in self._local.values() if e.key == key), None)
        return loc, self._remote.get(key)

    async def _packet_in(self, sw, msg) -> None:
        in_port = msg.match.get("in_port")
        data = bytes(msg.data)
        if msg.table_id == SVC_DNAT.id:
            await self.svc.packet_in(sw, in_port, data)
            return
        req = arpmod.parse_arp_request(data)
        if req is not None:
            await self._arp(sw, in_port, msg.match.get("tunnel_id"), req)
        elif self.dns and arpmod.is_dns_query(data):
            await self._dns(sw, in_port, data)

    async def _arp(self, sw, in_port: int, tun_id, req: arpmod.ArpRequest) -> None:
        if self.host.enabled and in_port == self.host.port:  # the host asks for a private address
            if self.host.arp_target_port(req.dst_ip) in self._local:
                mac = mac_of(req.dst_ip)
                await sw.packet_out(OFPP_CONTROLLER, [Output(in_port)], arpmod.arp_reply_frame(req, mac))
                self._counters["arp_replies"] += 1
            else:
                self._counters["arp_ignored"] += 1
            return
        vtep = next((v for v in self._vteps.values() if v.ofport == in_port), None)
        if vtep is not None and self.routing:
            self._counters["arp_ignored"] += 1
            return
        if vtep is not None:
            vlan = self._vlan_of_vni(tun_id or 0)
            vrf = self._networks[vlan].vrf if vlan else None
        else:
            lep = self._local.get(in_port)
            vrf = lep.vrf if lep else "default"
        if vrf is None:
            self._counters["arp_ignored"] += 1
            return
        src_l, src_r = self._endpoint(req.src_ip, vrf)
        dst_l, dst_r = self._endpoint(req.dst_ip, vrf)
        dst = dst_l or dst_r
        vmac = self.svc.vip_mac(req.dst_ip, vrf) if vtep is None and in_port in self._local else None
        if vmac is not None and dst is None:  # a service VIP, asked by a local endpoint of its tenant
            vmac = arpmod.GATEWAY_MAC if self.routing else vmac
            await sw.packet_out(OFPP_CONTROLLER, [Output(in_port)], arpmod.arp_reply_frame(req, vmac))
            self._counters["arp_replies"] += 1
            return
        if dst is None and vtep is None and self._is_router_address(in_port, req.dst_ip):
            await sw.packet_out(
                OFPP_CONTROLLER, [Output(in_port)], arpmod.arp_reply_frame(req, arpmod.GATEWAY_MAC)
            )
            self._counters["arp_gateway_replies"] += 1
            return
        verdict = arpmod.decide(
            req, from_vtep=vtep is not None, src_known=bool(src_l or src_r), dst_mac=dst.mac if dst else None,
            dst_local=dst_l is not None,
        )  # fmt: skip
        if verdict == "reply":
            acts = [SetField("tunnel_id", tun_id), Output(in_port)] if vtep else [Output(in_port)]
            mac = arpmod.GATEWAY_MAC if self.routing else dst.mac
            await sw.packet_out(OFPP_CONTROLLER, acts, arpmod.arp_reply_frame(req, mac))
            self._counters["arp_replies"] += 1
        elif verdict == "reinject" and src_l is not None and not self.routing:
            if self.datapath == "vxlan":
                net = self._networks.get(src_l.vlan)
                acts = []
                for vt in self._vteps.values():
                    acts += [SetField("tunnel_id", net.vni if net else 0), Output(vt.ofport)]
            else:  # the uplinks are trunks: the request leaves tagged with the asker's VLAN
                tag = [PushVlan(), SetField("vlan_vid", OFPVID_PRESENT | src_l.vlan)] if src_l.vlan else []
                acts = [*tag, *(Output(p) for p in sorted(self._uplinks))] if self._uplinks else []
            if acts:
                await sw.packet_out(OFPP_CONTROLLER, acts, arpmod.arp_request_frame(req))
                self._counters["arp_reinjects"] += 1
        else:
            self._counters["arp_ignored"] += 1

    def _is_router_address(self, in_port: int, ip: str) -> bool:
        """The vxlan bridge, and the vlan bridge in routing mode (in vlan bridge mode a real router
        on the uplink may answer, so nobody here does): the gateway of the asking local port's
        network or, for a network without one, any address outside its subnet (such containers
        route everything off the subnet straight out of eth0: the plugin's Join gives them
        ``default dev eth0``, on a vlan network when the agent routes)."""
        lep = self._local.get(in_port)
        if (self.datapath != "vxlan" and not self.routing) or lep is None:
            return False
        net = self._networks.get(lep.vlan)
        if net is None:
            return False
        if net.gateway:
            return net.gateway == ip
        if not net.subnet:
            return False
        try:
            return ipaddress.IPv4Address(ip) not in ipaddress.IPv4Network(net.subnet)
        except ValueError:
            return False

    def local_endpoint(self, ofport: int) -> LocalEndpoint | None:
        """The local endpoint on ``ofport`` (its ``vrf`` scopes a DNS resolver's answers)."""
        return self._local.get(ofport)

    async def _dns(self, sw, in_port: int, data: bytes) -> None:
        if self.dns_resolver is not None:
            answer = await self.dns_resolver(in_port, data)
            if answer:
                await sw.packet_out(OFPP_CONTROLLER, [Output(in_port)], answer)
                self._counters["dns_answers"] += 1
                return
        acts = [PushVlan(), SetField("vlan_vid", OFPVID_PRESENT | DNS_VLAN), Output(OFPP_TABLE)]
        await sw.packet_out(in_port, acts, data)
        self._counters["dns_reinjects"] += 1
