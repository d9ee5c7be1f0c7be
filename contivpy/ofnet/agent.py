"""OfnetAgent: the per-bridge facade the netplugin agent calls.

One agent = one OVS bridge = one :class:`OfController` (listening where the bridge's
controller target points, ofnet: 127.0.0.1:6633 vxlan / :6634 vlan) + one
:class:`FlowCache`.  Every call updates the agent's intent (networks, local/remote
endpoints, VTEPs, rules, uplinks, ARP mode), rebuilds the flows of each affected *owner*
with :mod:`builders`, and hands them to the cache, which diffs and sends one batch with a
barrier (concurrent calls coalesce).  Errors from the switch raise ``OpenFlowError``;
bad input raises ``ValidationError``/``ConflictError`` and leaves state untouched.

Restart/reconnect: on connect the cache reads back what the switch holds (cookies name
the owners) and converges by diff.  A freshly started agent does not delete anything it
does not know yet; call :meth:`sync_complete` once the full state has been re-applied to
prune leftovers.  VRF ids are allocated per tenant name in first-use order (first -> 1),
so replaying networks in a stable order reproduces the same metadata values.

Packet-ins: ARP requests (proxy mode) are answered from the endpoint tables (see
:mod:`arp`); on the vxlan bridge an ARP request of a local endpoint for its network's gateway
(held by no endpoint), or for a network without a gateway any address outside its subnet, is
answered with ``arp.GATEWAY_MAC``, so off-subnet traffic, DNS queries to
an upstream resolver included, leaves the container (then it is dropped in table 9: bridge mode
has no router). DNS queries from container MACs go to ``dns_resolver(in_port, frame)`` (if set;
``local_endpoint(in_port).vrf`` gives the asker's tenant), which returns the reply frame sent out
of ``in_port``, or None: then the query is re-injected with VLAN 4093 so it continues through the
pipeline.

Service load balancing (tables svc_dnat/svc_snat, VIP ARP answers) lives in :mod:`svcproxy`;
``add_service``/``remove_service`` manage it, and every endpoint change lets it re-check its
clients' provider choices.  Without services it installs nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError

from . import arp as arpmod
from . import builders as B
from .flowcache import FlowCache
from .flows import OFPP_CONTROLLER, OFPP_TABLE, OFPVID_PRESENT, Output, PushVlan, SetField
from .pipeline import DNS_VLAN, SVC_DNAT
from .svcproxy import ServiceProxy
from .switch import OfController
from .types import LocalEndpoint, Network, RemoteEndpoint, Rule, Service, Vtep

__all__ = ["OfnetAgent", "DEFAULT_PORTS"]

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"vxlan": 6633, "vlan": 6634}
DnsResolver = Callable[[int, bytes], Awaitable[bytes | None]]


class OfnetAgent:
    def __init__(
        self,
        bridge: str,
        datapath: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        sock: socket.socket | None = None,
        arp_mode: str = "proxy",
        dns: bool = True,
        echo_interval: float = 5.0,
    ) -> None:
        if datapath not in DEFAULT_PORTS:
            raise ValidationError(f"Unknown Datapath {datapath}")
        if arp_mode not in ("proxy", "flood"):
            raise ValidationError(f"invalid arp mode {arp_mode!r}")
        self.bridge, self.datapath, self.dns = bridge, datapath, dns
        self.arp_mode = arp_mode
        self.controller = OfController(
            bridge, host=host, port=DEFAULT_PORTS[datapath] if port is None else port, sock=sock,
            echo_interval=echo_interval, echo_timeout=2 * echo_interval,
        )  # fmt: skip
        self.controller.on_packet_in = self._packet_in
        self.cache = FlowCache(self.controller)
        self.svc = ServiceProxy(self)
        self.controller.on_connect.append(lambda _sw: self.svc.recover())  # after the cache's read-back
        self.dns_resolver: DnsResolver | None = None
        self._vrf_ids: dict[str, int] = {}
        self._networks: dict[int, Network] = {}
        self._local: dict[int, LocalEndpoint] = {}
        self._vteps: dict[str, Vtep] = {}
        self._remote: dict[str, RemoteEndpoint] = {}
        self._rules: dict[str, Rule] = {}
        self._uplinks: set[int] = set()
        self._counters = dict.fromkeys(
            (
                "arp_replies",
                "arp_gateway_replies",
                "arp_reinjects",
                "arp_ignored",
                "dns_answers",
                "dns_reinjects",
            ),
            0,
        )
        self._base_task = None

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for the switch and record the base flows (installed as soon as it connects)."""
        await self.controller.start()
        await asyncio.gather(
            self.cache.apply("base", B.base_flows(self.datapath, self.dns)),
            self.cache.apply("arp", B.arp_punt_flows(self.arp_mode)),
        )

    async def stop(self) -> None:
        await self.controller.stop()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await self.controller.wait_connected(timeout)

    @property
    def port(self) -> int:
        return self.controller.port

    async def sync_complete(self) -> int:
        """Full state re-applied after start: delete our flows/groups nobody owns any more."""
        return await self.cache.prune()

    # ---- networks --------------------------------------------------------------------------
    def _vrf_id(self, vrf: str) -> int:
        if vrf not in self._vrf_ids:
            used = set(self._vrf_ids.values())
            free = next((i for i in range(1, 256) if i not in used), None)
            if free is None:
                raise ValidationError("no free VRF id (max 255 tenants per agent)")
            self._vrf_ids[vrf] = free
        return self._vrf_ids[vrf]

    def _vlan_of_vni(self, vni: int) -> int | None:
        return next((n.vlan for n in self._networks.values() if n.vni == vni and vni), None)

    async def add_network(
        self, vlan: int, vni: int = 0, gateway: str = "", vrf: str = "default", subnet: str = ""
    ) -> None:
        net = Network(vlan, vni, gateway, vrf, subnet)
        if self.datapath == "vxlan" and not vni:
            raise ValidationError("a vxlan network needs a VNI")
        other = next((n for n in self._networks.values() if n.vni == vni and vni and n.vlan != vlan), None)
        if other is not None:
            raise ConflictError(f"VNI {vni} already mapped to vlan {other.vlan}")
        self._vrf_id(vrf)
        self._networks[vlan] = net
        owners = [self._net_owner(vlan)]
        owners += [self._rep_owner(k) for k, r in self._remote.items() if r.vni == vni and vni]
        await self._apply(*owners)

    async def remove_network(self, vlan: int) -> None:
        if vlan not in self._networks:
            return
        if any(ep.vlan == vlan for ep in self._local.values()):
            raise ConflictError(f"vlan {vlan} still has local endpoints")
        net = self._networks.pop(vlan)
        await self._apply(
            self._net_owner(vlan), *[self._rep_owner(k) for k, r in self._remote.items() if r.vni == net.vni]
        )

    def _net_owner(self, vlan: int):
        net = self._networks.get(vlan)
        if net is None or self.datapath != "vxlan":
            return (f"net:{vlan}", [], [])
        vteps = list(self._vteps.values())
        ports = [ep.ofport for ep in self._local.values() if ep.vlan == vlan]
        flows = B.network_flows(net, self._vrf_id(net.vrf), vteps)
        return (f"net:{vlan}", flows, B.flood_groups(net, ports, vteps))

    # ---- local endpoints ---------------------------------------------------------------------
    async def add_local_endpoint(self, ep: LocalEndpoint) -> None:
        if not isinstance(ep, LocalEndpoint):
            raise ValidationError("add_local_endpoint needs a LocalEndpoint")
        clash = next((o for o in self._local.values() if o.key == ep.key and o.ofport != ep.ofport), None)
        owners = []
        if clash is not None:  # same ip:vrf moved to another port: the old port's flows go
            del self._local[clash.ofport]
            owners += [(f"lep:{clash.ofport}", [], []), self._net_owner(clash.vlan)]
        self._vrf_id(ep.vrf)
        old = self._local.get(ep.ofport)
        self._local[ep.ofport] = ep
        owners.append(self._lep_owner(ep))
        owners.append(self._net_owner(ep.vlan))
        if old is not None and old.vlan != ep.vlan:
            owners.append(self._net_owner(old.vlan))
        await self._apply(*owners)
        await self.svc.refresh()

    async def remove_local_endpoint(self, ofport: int) -> None:
        ep = self._local.pop(ofport, None)
        if ep is None:
            return
        await self._apply((f"lep:{ofport}", [], []), self._net_owner(ep.vlan))
        await self.svc.refresh()

    def _lep_owner(self, ep: LocalEndpoint):
        return (f"lep:{ep.ofport}", B.local_endpoint_flows(ep, self._vrf_id(ep.vrf), self.datapath), [])

    # ---- VTEPs and remote endpoints ------------------------------------------------------------
    async def add_vtep(self, ofport: int, remote_ip: str) -> None:
        vt = Vtep(ofport, remote_ip)
        if self.datapath != "vxlan":
            raise ValidationError("VTEPs exist only on the vxlan bridge")
        self._vteps[vt.remote_ip] = vt
        await self._apply(*self._vtep_related(vt.remote_ip, B.vtep_flows(vt, self.dns)))

    async def remove_vtep(self, remote_ip: str) -> None:
        if self._vteps.pop(remote_ip, None) is None:
            return
        await self._apply(*self._vtep_related(remote_ip, []))

    def _vtep_related(self, ip: str, flows):
        owners = [(f"vtep:{ip}", flows, [])]
        owners += [self._net_owner(v) for v in self._networks]
        owners += [self._rep_owner(k) for k, r in self._remote.items() if r.vtep_ip == ip]
        return owners

    async def add_remote_endpoint(self, ep: RemoteEndpoint) -> None:
        if not isinstance(ep, RemoteEndpoint):
            raise ValidationError("add_remote_endpoint needs a RemoteEndpoint")
        if self.datapath == "vxlan" and not ep.vni:
            return  # vlan endpoints are the vlan bridge's business (as the original)
        if self.datapath == "vlan" and ep.vni:
            return
        old = self._remote.get(ep.key)
        if old is not None and old.timestamp > ep.timestamp:
            return  # an older announcement never replaces a newer one
        self._vrf_id(ep.vrf)
        self._remote[ep.key] = ep
        await self._apply(self._rep_owner(ep.key))
        await self.svc.refresh()

    async def remove_remote_endpoint(self, ep: RemoteEndpoint | str) -> None:
        key = ep if isinstance(ep, str) else ep.key
        if self._remote.pop(key, None) is None:
            return
        await self._apply((f"rep:{key}", [], []))
        await self.svc.refresh()

    def _rep_owner(self, key: str):
        ep = self._remote.get(key)
        if ep is None:
            return (f"rep:{key}", [], [])
        if self.datapath == "vxlan":
            vlan, vt = self._vlan_of_vni(ep.vni), self._vteps.get(ep.vtep_ip)
            if vlan is None or vt is None:
                return (f"rep:{key}", [], [])  # pending until network and VTEP are known
            flows = B.remote_endpoint_flows(ep, self._vrf_id(ep.vrf), vlan, vt.ofport, "vxlan")
        else:
            flows = B.remote_endpoint_flows(ep, self._vrf_id(ep.vrf), ep.vlan, None, "vlan")
        return (f"rep:{key}", flows, [])

    # ---- vlan bridge uplinks ---------------------------------------------------------------------
    async def add_uplink(self, ofport: int) -> None:
        if self.datapath != "vlan":
            raise ValidationError("uplinks exist only on the vlan bridge")
        self._uplinks.add(ofport)
        await self._apply((f"uplink:{ofport}", B.uplink_flows(ofport, self.dns), []))

    async def remove_uplink(self, ofport: int) -> None:
        self._uplinks.discard(ofport)
        await self._apply((f"uplink:{ofport}", [], []))

    # ---- policy ------------------------------------------------------------------------------
    async def add_rule(self, rule: Rule) -> None:
        old = self._rules.get(rule.rule_id)
        if old is not None:
            if old == rule:
                return
            raise ConflictError("Rule already exists")
        self._rules[rule.rule_id] = rule
        try:
            await self._apply((f"rule:{rule.rule_id}", B.rule_flows(rule), []))
        except Exception:
            self._rules.pop(rule.rule_id, None)
            await self._apply((f"rule:{rule.rule_id}", [], []))
            raise

    async def remove_rule(self, rule_id: str) -> None:
        if self._rules.pop(rule_id, None) is None:
            raise NotFoundError(f"Rule {rule_id} not found")
        await self._apply((f"rule:{rule_id}", [], []))

    async def set_arp_mode(self, mode: str) -> None:
        if mode not in ("proxy", "flood"):
            raise ValidationError(f"invalid arp mode {mode!r}")
        self.arp_mode = mode
        await self.cache.apply("arp", B.arp_punt_flows(mode))

    # ---- service load balancer (svcproxy.py) ------------------------------------------------------
    async def add_service(self, svc: Service) -> None:
        """Add or update a service (VIP + ports + providers); clients whose provider changes re-punt."""
        if not isinstance(svc, Service):
            raise ValidationError("add_service needs a Service")
        await self.svc.add(svc)

    async def remove_service(self, vip: str, vrf: str = "default") -> bool:
        """Remove a service and all its flows; False if it was not there."""
        return await self.svc.remove(vip, vrf)

    def services(self) -> list[dict]:
        return self.svc.stats()

    # ---- introspection -----------------------------------------------------------------------
    def statistics(self) -> dict:
        flows = self.cache.desired_flows()
        per_table: dict[str, int] = {}
        for f in flows:
            per_table[f.table.name] = per_table.get(f.table.name, 0) + 1
        sw = self.controller.switch
        return {
            "bridge": self.bridge,
            "datapath": self.datapath,
            "connected": self.controller.connected,
            "connects": self.controller.connects,
            "dpid": f"{sw.dpid:016x}" if sw else "",
            "networks": len(self._networks),
            "local_endpoints": len(self._local),
            "remote_endpoints": len(self._remote),
            "vteps": len(self._vteps),
            "rules": len(self._rules),
            "services": len(self.svc.services),
            "flows": len(flows),
            "flows_per_table": per_table,
            "groups": len(self.cache.desired_groups()),
            "cache": dict(self.cache.stats),
            "switch": dict(sw.stats) if sw else {},
            **self._counters,
            **self.svc.counters,
        }

    # ---- internals -------------------------------------------------------------------------
    async def _apply(self, *owners) -> None:
        results = await asyncio.gather(
            *(self.cache.apply(name, flows, groups) for name, flows, groups in owners), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

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
        vtep = next((v for v in self._vteps.values() if v.ofport == in_port), None)
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
            await sw.packet_out(OFPP_CONTROLLER, acts, arpmod.arp_reply_frame(req, dst.mac))
            self._counters["arp_replies"] += 1
        elif verdict == "reinject" and src_l is not None:
            if self.datapath == "vxlan":
                net = self._networks.get(src_l.vlan)
                acts = []
                for vt in self._vteps.values():
                    acts += [SetField("tunnel_id", net.vni if net else 0), Output(vt.ofport)]
            else:
                acts = [Output(p) for p in sorted(self._uplinks)]
            if acts:
                await sw.packet_out(OFPP_CONTROLLER, acts, self._rebuild_request(req))
                self._counters["arp_reinjects"] += 1
        else:
            self._counters["arp_ignored"] += 1

    def _is_router_address(self, in_port: int, ip: str) -> bool:
        """vxlan bridge only (nobody else answers in bridge mode; on the vlan bridge a real router
        on the uplink may): the gateway of the asking local port's network or, for a network
        without one, any address outside its subnet (such containers route everything off the
        subnet straight out of eth0: the plugin's Join gives them ``default dev eth0``)."""
        lep = self._local.get(in_port)
        if self.datapath != "vxlan" or lep is None:
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

    @staticmethod
    def _rebuild_request(req: arpmod.ArpRequest) -> bytes:
        from os_ken.lib.packet import arp, ethernet, packet

        p = packet.Packet()
        p.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=req.src_mac, ethertype=0x0806))
        p.add_protocol(
            arp.arp(src_mac=req.src_mac, src_ip=req.src_ip, dst_mac="00:00:00:00:00:00", dst_ip=req.dst_ip)
        )
        p.serialize()
        return bytes(p.data)

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
