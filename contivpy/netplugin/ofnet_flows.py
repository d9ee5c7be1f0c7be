"""Flow programmer backed by the ofnet package's ``OfnetAgent`` (the real Contiv pipeline).

One agent per bridge: ``vxlan`` datapath on contivVxlanBridge (controller port 6633) and ``vlan`` on
contivVlanBridge (6634). With ``--fwdmode routing`` the vxlan bridge runs the routing pipeline (the
original's ``vrouter``; ``set_fwd_mode`` switches it live) and the vlan bridge the BGP-routed ``vlrouter``
pipeline (ofnet/vlrouting.py; its routes come from netplugin/managers/bgp.py). This adapter only converts the agent's ``NetSpec``/``EpSpec`` values into
ofnet's input types; VRF = tenant name, its id the persisted one of ``NetSpec.vrf_id`` (netplugin/vrf.py). ``sync_complete`` is called by the daemon once the full state
has been re-applied after a (re)start, so flows nobody owns any more are pruned only then.
"""

from __future__ import annotations

from typing import Any

from contivpy.common.errors import ExternalServiceError, NotFoundError
from contivpy.ofnet.agent import OfnetAgent
from contivpy.ofnet.types import LocalEndpoint, Network, RemoteEndpoint, Rule


class OfnetFlows:
    def __init__(self, bridge: str, cfg) -> None:
        self.bridge = bridge
        self.kind = "vxlan" if bridge == "contivVxlanBridge" else "vlan"
        self.agent = OfnetAgent(
            bridge, self.kind, arp_mode="proxy", fwd_mode=self._mode(getattr(cfg, "fwdmode", ""))
        )
        self._local: dict[str, LocalEndpoint] = {}
        self._remote: dict[str, RemoteEndpoint] = {}
        self._remote_ids: dict[str, str] = {}

    async def start(self) -> None:
        await self.agent.start()

    async def wait_ready(self) -> None:
        try:
            await self.agent.wait_connected(30)
        except TimeoutError as e:
            raise ExternalServiceError(f"OVS switch {self.kind} Failed to connect") from e

    async def stop(self) -> None:
        await self.agent.stop()

    def connected(self) -> bool:
        return bool(self.agent.controller.connected)

    async def sync_complete(self) -> None:
        await self.agent.sync_complete()

    async def add_uplink(self, ofport: int) -> None:
        await self.agent.add_uplink(ofport)

    async def set_uplinks(self, ofports: set[int]) -> None:
        """Converge the uplink flows to exactly ``ofports`` (a bond: one per member interface)."""
        for stale in self.agent.uplinks() - set(ofports):
            await self.agent.remove_uplink(stale)
        for ofport in sorted(ofports):
            await self.agent.add_uplink(ofport)

    async def set_arp_mode(self, mode: str) -> None:
        await self.agent.set_arp_mode(mode)

    def _mode(self, fwd_mode: str) -> str:
        """The pipeline this bridge runs for the agent's forwarding mode."""
        return "routing" if fwd_mode == "routing" else "bridge"

    async def set_fwd_mode(self, fwd_mode: str) -> None:
        await self.agent.set_fwd_mode(self._mode(fwd_mode))

    async def set_host_port(self, ofport: int | None, pvt_subnet: str = "") -> None:
        await self.agent.set_host_port(ofport, pvt_subnet)

    async def add_network(self, net) -> None:
        vni = net.vni if self.kind == "vxlan" else 0
        await self.agent.add_network(
            net.vlan, vni, net.gateway, net.tenant or "default", net.subnet, vrf_id=net.vrf_id
        )

    async def remove_network(self, net) -> None:
        vni = net.vni if self.kind == "vxlan" else 0
        expect = Network(net.vlan, vni, net.gateway, net.tenant or "default", net.subnet)
        await self.agent.remove_network(net.vlan, expect)

    async def add_local_endpoint(self, ep) -> None:
        await self.add_local_endpoints([ep])

    async def add_local_endpoints(self, eps) -> None:
        leps = [
            LocalEndpoint(
                ofport=ep.ofport,
                mac=ep.mac,
                ip=ep.ip,
                vlan=ep.net.vlan,
                epg=ep.epg_id,
                vrf=ep.net.tenant or "default",
                dscp=ep.dscp,
                endpoint_id=ep.id,
            )
            for ep in eps
        ]
        await self.agent.add_local_endpoints(leps)
        for ep, lep in zip(eps, leps, strict=True):
            self._local[ep.id] = lep

    async def remove_local_endpoint(self, ep) -> None:
        lep = self._local.pop(ep.id, None)
        if lep is not None:
            await self.agent.remove_local_endpoint(lep.ofport)
        elif ep.ofport:
            await self.agent.remove_local_endpoint(ep.ofport)

    async def add_vtep(self, ip: str, ofport: int) -> None:
        await self.agent.add_vtep(ofport, ip)

    async def remove_vtep(self, ip: str) -> None:
        await self.agent.remove_vtep(ip)

    async def add_remote_endpoint(self, ep) -> None:
        rep = RemoteEndpoint(
            mac=ep.mac,
            ip=ep.ip,
            vtep_ip=ep.vtep_ip,
            vni=ep.net.vni if self.kind == "vxlan" else 0,
            vrf=ep.net.tenant or "default",
            epg=ep.epg_id,
            vlan=ep.net.vlan if self.kind == "vlan" else 0,
        )
        await self.agent.add_remote_endpoint(rep)
        self._remote[ep.id] = rep

    async def remove_remote_endpoint(self, ep) -> None:
        rep = self._remote.pop(ep.id, None)
        if rep is not None:
            await self.agent.remove_remote_endpoint(rep.key)

    async def add_rule(self, fields: dict) -> None:
        await self.agent.add_rule(Rule(**fields))

    async def remove_rule(self, rule_id: str) -> None:
        try:
            await self.agent.remove_rule(rule_id)
        except NotFoundError:
            pass

    async def add_service(self, svc) -> None:
        await self.agent.add_service(svc)

    async def remove_service(self, vip: str, tenant: str) -> None:
        await self.agent.remove_service(vip, tenant or "default")

    def services(self) -> list[dict]:
        return self.agent.services()

    def local_endpoints(self) -> dict[str, LocalEndpoint]:
        """The local endpoints this bridge programs, by endpoint state id (a copy)."""
        return dict(self._local)

    def inspect(self) -> dict[str, Any]:
        db: dict[str, Any] = {}
        for eid, e in self._local.items():
            db[eid] = {
                "EndpointID": f"{e.ip}:{e.vrf}",
                "IpAddr": e.ip,
                "MacAddrStr": e.mac,
                "Vlan": e.vlan,
                "PortNo": e.ofport,
                "EndpointGroup": e.epg,
                "Dscp": e.dscp,
                "Vrf": e.vrf,
                "HostPvtIp": self.agent.private_ip(e.ofport),
            }
        for eid, r in self._remote.items():
            db[eid] = {
                "EndpointID": f"{r.ip}:{r.vrf}",
                "IpAddr": r.ip,
                "MacAddrStr": r.mac,
                "Vni": r.vni,
                "OriginatorIp": r.vtep_ip,
                "EndpointGroup": r.epg,
                "Vrf": r.vrf,
            }
        return {
            "IsConnected": self.connected(),
            "EndpointDb": db,
            "ArpMode": self.agent.arp_mode,
            "FwdMode": self.agent.fwd_mode,
            "HostPort": self.agent.host.port or 0,
            "PvtSubnet": self.agent.host.pvt_subnet,
            "Stats": self.agent.statistics(),
        }
