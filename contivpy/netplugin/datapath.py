"""The agent's datapath: two OVS bridges (OVSDB side here) and their OpenFlow programmers.

``Datapath`` is what the managers call; it never sees etcd. It owns
- the OVSDB client (bridges, access ports, VXLAN ports, uplinks),
- one flow programmer per bridge: ``OfnetFlows`` (``ofnet_flows.py``, an adapter onto the ofnet package's
  ``OfnetAgent``, the real Contiv pipeline with ARP proxy). There is no other pipeline.

Bridges (docs/original.md §5.2): ``contivVxlanBridge`` (controller tcp:127.0.0.1:6633) and
``contivVlanBridge`` (6634), ``fail_mode=secure``, OpenFlow10-13, ``datapath_type`` from ``--ovs-datapath``;
uplinks on the VLAN bridge: one -> that interface as a trunk port, several -> bond ``uplinkPort``
(balance-tcp, LACP active, ``lacp-fallback-ab``); the uplink flows name the member interfaces' ofports.

Host access (docs/ovs-pipeline.md, docs/deployment.md): ``ensure_host_port(pvt_subnet)`` makes the internal
port ``contivh0`` on the vxlan bridge (access tag 2, MAC ``02:02:<address>``), gives its host side
``pvtSubnet + 0xfffe``/16, enables IPv4 forwarding, converges the iptables nat rules (``iptables.py``) and
installs the host access flows; it also makes ``contivh0v`` on the vlan bridge (``pvtSubnet + 0xfffd``/17,
access tag 4095), the vlan bridge's host port in both forwarding modes (a live mode switch only rebuilds its
flows, ofnet/hostaccess.py); ``remove_host_port()`` undoes all of it (``netplugin --cleanup``).

Invariant: OVSDB objects are created before flows reference their ofport, and flows are removed before
the port is deleted. Every method is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from contivpy.common.groupcommit import GroupCommit
from contivpy.netplugin import iptables, links
from contivpy.netplugin.ofnet_flows import OfnetFlows
from contivpy.netplugin.ovsdb import OvsdbClient
from contivpy.ofnet import hostaccess
from contivpy.ofnet.vlrouting import ROUTER_PORT

log = logging.getLogger(__name__)

VXLAN_BRIDGE = "contivVxlanBridge"
VLAN_BRIDGE = "contivVlanBridge"
CTRL_PORTS = {VXLAN_BRIDGE: 6633, VLAN_BRIDGE: 6634}
RPC_PORTS = {VXLAN_BRIDGE: 9002, VLAN_BRIDGE: 9003}
HOST_PORT = iptables.HOST_PORT  # contivh0
INFRA_MARK = "contivpy-infra"  # external_ids key of an infra network's port (value: the net id)
UPLINK_PORT = "uplinkPort"  # the bond of several uplinks; also every uplink port's endpoint-id
BOND_MODE, BOND_LACP = "balance-tcp", "active"
HOST_PORT_TAG = 2  # the original's access tag (informational: the flows never use NORMAL)
VLAN_HOST_PORT = hostaccess.VLAN_HOST_PORT  # contivh0v: the vlan bridge's host port (both modes)
VLAN_HOST_PORT_TAG = 4095  # a VLAN no network has: NORMAL never floods the vlan bridge's frames to it


def vtep_port_name(ip: str) -> str:
    return "vxif" + ip.replace(".", "")


@dataclass(frozen=True)
class NetSpec:
    """A network as the datapath sees it."""

    id: str  # <net>.<tenant>
    tenant: str
    encap: str  # vxlan | vlan
    vlan: int  # local VLAN on the vxlan bridge, or the VLAN on the wire
    vni: int
    gateway: str
    subnet_len: int
    subnet: str = ""  # "<subnetIP>/<subnetLen>"
    vrf_id: int = 0  # the tenant's persisted per-host VRF id (netplugin/vrf.py); 0 = not allocated
    name: str = ""  # the network's name (an infra network's port is named after it)
    nw_type: str = "data"  # data | infra

    @property
    def bridge(self) -> str:
        return VXLAN_BRIDGE if self.encap == "vxlan" else VLAN_BRIDGE


@dataclass(frozen=True)
class EpSpec:
    id: str
    net: NetSpec
    ip: str
    mac: str
    epg_id: int = 0
    ipv6: str = ""
    ofport: int = 0  # local endpoints
    vtep_ip: str = ""  # remote endpoints
    dscp: int = 0  # local endpoints: DSCP of the group's netprofile (0 = none)


class Datapath:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.ovs = OvsdbClient(cfg.ovsdb)
        self.flows: dict[str, OfnetFlows] = {}
        self.vteps: dict[str, int] = {}  # peer ip -> ofport
        # Local endpoint flows of concurrent callers go to the switch together, per bridge: one
        # update of the network's flood group and one barrier for all of them (common/groupcommit.py).
        self._ep_adds: dict[str, GroupCommit[EpSpec, None]] = {}

    async def start(self) -> None:
        """Listen as controller, create/fix both bridges and the uplinks, then wait for OVS to connect.

        The controllers listen *before* the bridges are (re)configured: rewriting the Controller row makes
        vswitchd connect at once instead of after its reconnect backoff (max_backoff is also set to 1 s).
        """
        for br in CTRL_PORTS:
            if br not in self.flows:
                self.flows[br] = OfnetFlows(br, self.cfg)
                await self.flows[br].start()
        for br, port in CTRL_PORTS.items():
            await self.ovs.ensure_bridge(br, f"tcp:127.0.0.1:{port}", datapath_type=self.cfg.ovs_datapath)
        await self._ensure_uplinks()
        for fp in self.flows.values():
            await fp.wait_ready()
        # The uplink flows follow the member interfaces' ofports (a bond port has none of its own:
        # traffic enters with in_port = a member; out through NORMAL, which balances over the bond).
        ofports = {await self.ovs.wait_ofport(u) for u in self.cfg.vlan_uplinks}
        await self.flows[VLAN_BRIDGE].set_uplinks(ofports)

    async def sync_complete(self) -> None:
        """The full state has been re-applied after a start: let the programmers prune leftovers."""
        for fp in self.flows.values():
            await fp.sync_complete()

    async def _ensure_uplinks(self) -> None:
        """Converge the VLAN bridge's uplinks to ``cfg.vlan_uplinks`` (idempotent, also across restarts).

        One uplink: a trunk port named after the interface (a former bond ``uplinkPort`` goes first).
        Several: the bond ``uplinkPort`` over them (balance-tcp, LACP active, active-backup fallback);
        an equal bond is kept, a changed one replaced together with any single-uplink port of a member.
        Former uplink ports (``endpoint-id=uplinkPort``) no longer configured are removed."""
        ups = list(dict.fromkeys(self.cfg.vlan_uplinks or []))  # a repeated --vlan-if counts once
        existing = await self.ovs.list_ports(VLAN_BRIDGE)
        for name, p in existing.items():
            if p.external_ids.get("endpoint-id") == UPLINK_PORT and name != UPLINK_PORT and name not in ups:
                await self.ovs.remove_port(VLAN_BRIDGE, name)
        if not ups:
            if UPLINK_PORT in existing:
                await self.ovs.remove_port(VLAN_BRIDGE, UPLINK_PORT)
            return
        if len(ups) == 1:
            if UPLINK_PORT in existing:
                await self.ovs.remove_port(VLAN_BRIDGE, UPLINK_PORT)
                existing = await self.ovs.list_ports(VLAN_BRIDGE)
            await self.ovs.ensure_port(
                VLAN_BRIDGE,
                ups[0],
                vlan_mode="trunk",
                external_ids={"endpoint-id": UPLINK_PORT},
                existing=existing,
            )
            log.info("Added uplink [%s] to OVS switch %s.", ups[0], VLAN_BRIDGE)
            return
        created = await self.ovs.ensure_bond(
            VLAN_BRIDGE,
            UPLINK_PORT,
            ups,
            bond_mode=BOND_MODE,
            lacp=BOND_LACP,
            other_config={"lacp-fallback-ab": "true"},
            vlan_mode="trunk",
            external_ids={"endpoint-id": UPLINK_PORT},
        )
        log.info(
            "%s bonded uplink %s [%s] on OVS switch %s.",
            "Added" if created else "Kept",
            UPLINK_PORT,
            ",".join(ups),
            VLAN_BRIDGE,
        )

    # -- host access (contivh0) ----------------------------------------------------------------
    async def ensure_host_port(self, pvt_subnet: str, mtu: int | None = None) -> int:
        """Create/fix contivh0, its address, forwarding, the nat rules and the flows; returns its ofport.
        Idempotent; a changed ``pvt_subnet`` replaces address, rules and flows."""
        addr = hostaccess.host_port_address(pvt_subnet)  # ValidationError if not a /16
        await self.ovs.ensure_internal_port(
            VXLAN_BRIDGE, HOST_PORT, hostaccess.mac_of(addr), tag=HOST_PORT_TAG
        )
        ofport = await self.ovs.wait_ofport(HOST_PORT)
        await links.ensure_address(HOST_PORT, f"{addr}/16", mtu)
        await links.enable_ip_forwarding()
        await iptables.ensure(pvt_subnet, HOST_PORT)
        await self.flows[VXLAN_BRIDGE].set_host_port(ofport, pvt_subnet)
        if VLAN_BRIDGE in self.flows:  # contivh0v: host access of the vlan bridge (upper /17), both modes
            vaddr = hostaccess.host_port_address(pvt_subnet, vlan=True)
            await self.ovs.ensure_internal_port(
                VLAN_BRIDGE, VLAN_HOST_PORT, hostaccess.mac_of(vaddr), tag=VLAN_HOST_PORT_TAG
            )
            vport = await self.ovs.wait_ofport(VLAN_HOST_PORT)
            await links.ensure_address(VLAN_HOST_PORT, f"{vaddr}/17", mtu)
            await self.flows[VLAN_BRIDGE].set_host_port(vport, pvt_subnet)
        return ofport

    async def remove_host_port(self) -> None:
        """Clean uninstall of host access: flows (when programming), the OVS port, our nat rules."""
        for br, port in ((VXLAN_BRIDGE, HOST_PORT), (VLAN_BRIDGE, VLAN_HOST_PORT)):
            fp = self.flows.get(br)
            if fp is not None:
                await fp.set_host_port(None)
            await self.ovs.remove_port(br, port)
        await iptables.remove_all()

    async def set_node_ports(self, ports: list[tuple[str, int, str, int]]) -> None:
        """The CONTIV-NODEPORT DNATs of every service node port (iptables.py; converged)."""
        await iptables.ensure_nodeports(ports)

    # -- infra networks (managers/infra.py) -----------------------------------------------------------
    async def ensure_infra_port(self, net: NetSpec, ep_id: str, mac: str, cidr: str, mtu: int | None) -> int:
        """The infra network's OVS internal port (named after the network, access port of its VLAN,
        ``external_ids:contivpy-infra=<net id>``) with the endpoint's MAC and ``cidr``; its ofport."""
        await self.ovs.ensure_internal_port(
            net.bridge, net.name, mac, tag=net.vlan, external_ids={"endpoint-id": ep_id, INFRA_MARK: net.id}
        )
        ofport = await self.ovs.wait_ofport(net.name)
        await links.ensure_address(net.name, cidr, mtu)
        return ofport

    async def infra_ports(self) -> dict[str, tuple[str, str]]:
        """Infra ports on both bridges, also an earlier run's: port name -> (bridge, net id)."""
        out = {}
        for br in (VXLAN_BRIDGE, VLAN_BRIDGE):
            for name, p in (await self.ovs.list_ports(br)).items():
                if INFRA_MARK in p.external_ids:
                    out[name] = (br, p.external_ids[INFRA_MARK])
        return out

    # -- vlan routing mode: the BGP speaker's port and learned routes (managers/bgp.py) ---------------
    async def ensure_router_port(self, cidr: str, mac: str, mtu: int | None = None) -> int:
        """``inb01``: an OVS internal port on the vlan bridge (untagged, bridged to the uplink) holding
        the host's router-ip ``cidr``, where gobgpd speaks BGP; its flows installed. Returns its ofport."""
        await self.ovs.ensure_internal_port(VLAN_BRIDGE, ROUTER_PORT, mac)
        ofport = await self.ovs.wait_ofport(ROUTER_PORT)
        await links.ensure_address(ROUTER_PORT, cidr, mtu)
        await self.flows[VLAN_BRIDGE].agent.set_router_port(ofport)
        return ofport

    async def remove_router_port(self) -> None:
        fp = self.flows.get(VLAN_BRIDGE)
        if fp is not None:
            await fp.agent.set_routes({})
            await fp.agent.set_router_port(None)
        await self.ovs.remove_port(VLAN_BRIDGE, ROUTER_PORT)

    async def set_bgp_routes(self, routes: dict[tuple[str, str], str]) -> None:
        """Replace the learned routes on the vlan bridge: ``{(prefix, tenant): next hop MAC}``."""
        await self.flows[VLAN_BRIDGE].agent.set_routes(routes)

    def vlan_endpoints(self) -> list[tuple[str, str]]:
        """(ip, tenant) of every local endpoint on the vlan bridge (the /32s BGP advertises)."""
        fp = self.flows.get(VLAN_BRIDGE)
        return sorted((e.ip, e.vrf) for e in fp.agent._local.values()) if fp else []

    def vlan_networks(self) -> list[tuple[str, str]]:
        """(subnet, tenant) of every network on the vlan bridge (a learned prefix takes the tenant of
        the network that contains it)."""
        fp = self.flows.get(VLAN_BRIDGE)
        return sorted((n.subnet, n.vrf) for n in fp.agent._networks.values() if n.subnet) if fp else []

    async def set_infra_router(self, ofport: int | None) -> None:
        await self.flows[VXLAN_BRIDGE].agent.set_infra_router(ofport)

    def private_ip(self, ofport: int) -> str:
        fp = self.flows.get(VXLAN_BRIDGE)
        return fp.agent.private_ip(ofport) if fp else ""

    async def stop(self) -> None:
        for fp in self.flows.values():
            await fp.stop()
        await self.ovs.close()

    def connected(self, bridge: str) -> bool:
        fp = self.flows.get(bridge)
        return bool(fp and fp.connected())

    # -- networks --------------------------------------------------------------------------
    async def add_network(self, net: NetSpec) -> None:
        await self.flows[net.bridge].add_network(net)

    async def remove_network(self, net: NetSpec) -> None:
        await self.flows[net.bridge].remove_network(net)

    # -- local endpoints ---------------------------------------------------------------------
    async def plug_port(self, net: NetSpec, ovs_port: str, ep_id: str, existing=None) -> tuple[int, bool]:
        """Attach ``ovs_port`` as the endpoint's access port; returns (ofport, created): ``created``
        means a new Interface row, so its ingress policing is OVS's default 0/0."""
        created = await self.ovs.ensure_port(
            net.bridge,
            ovs_port,
            tag=net.vlan,
            vlan_mode="access",
            external_ids={"endpoint-id": ep_id},
            existing=existing,
        )
        cur = existing.get(ovs_port) if existing is not None and not created else None
        if cur is not None and cur.ofport and cur.ofport > 0:
            return cur.ofport, False  # listed with its ofport: no need to ask again
        return await self.ovs.wait_ofport(ovs_port), created

    async def add_local_endpoint(self, ep: EpSpec) -> None:
        """Install the endpoint's flows (returns once the switch has them). Concurrent calls for
        one bridge are installed together; a batch the switch refuses is retried one by one."""
        bridge = ep.net.bridge
        gc = self._ep_adds.get(bridge)
        if gc is None:

            async def batch(eps: list[EpSpec]) -> list[None]:
                await self.flows[bridge].add_local_endpoints(eps)
                return [None] * len(eps)

            gc = self._ep_adds[bridge] = GroupCommit(batch, name=f"endpoint_flows_{bridge}")
        await gc.submit(ep)

    async def add_local_endpoints(self, eps: list[EpSpec]) -> None:
        """Several local endpoints at once (a restart's re-bind): one flow update per bridge."""
        by_bridge: dict[str, list[EpSpec]] = {}
        for ep in eps:
            by_bridge.setdefault(ep.net.bridge, []).append(ep)
        for bridge, group in by_bridge.items():
            await self.flows[bridge].add_local_endpoints(group)

    async def set_port_policing(self, ovs_port: str, rate_kbps: int, burst_kb: int) -> None:
        await self.ovs.set_ingress_policing(ovs_port, rate_kbps, burst_kb)

    async def remove_local_endpoint(self, ep: EpSpec, ovs_port: str) -> None:
        await self.flows[ep.net.bridge].remove_local_endpoint(ep)
        await self.ovs.remove_port(ep.net.bridge, ovs_port)

    # -- VTEPs ---------------------------------------------------------------------------------
    async def add_vtep(self, ip: str, existing=None) -> int:
        name = vtep_port_name(ip)
        await self.ovs.ensure_vxlan_port(VXLAN_BRIDGE, name, ip, self.cfg.vxlan_port, existing=existing)
        ofport = await self.ovs.wait_ofport(name)
        await self.flows[VXLAN_BRIDGE].add_vtep(ip, ofport)
        self.vteps[ip] = ofport
        log.info("VTEP %s added as %s (ofport %d)", ip, name, ofport)
        return ofport

    async def remove_vtep(self, ip: str) -> None:
        await self.flows[VXLAN_BRIDGE].remove_vtep(ip)
        await self.ovs.remove_port(VXLAN_BRIDGE, vtep_port_name(ip))
        self.vteps.pop(ip, None)
        log.info("VTEP %s removed", ip)

    async def vtep_ports(self) -> list[str]:
        """Names of the VXLAN ports (``vxif*``) on the VXLAN bridge, including an earlier run's."""
        return [n for n in await self.ovs.list_ports(VXLAN_BRIDGE) if n.startswith("vxif")]

    async def remove_port(self, bridge: str, name: str) -> bool:
        return await self.ovs.remove_port(bridge, name)

    # -- remote endpoints ----------------------------------------------------------------------
    async def add_remote_endpoint(self, ep: EpSpec) -> None:
        await self.flows[ep.net.bridge].add_remote_endpoint(ep)

    async def remove_remote_endpoint(self, ep: EpSpec) -> None:
        await self.flows[ep.net.bridge].remove_remote_endpoint(ep)

    async def set_arp_mode(self, mode: str) -> None:
        for fp in self.flows.values():
            await fp.set_arp_mode(mode)

    async def set_fwd_mode(self, mode: str) -> None:
        """``bridge`` or ``routing``: rebuild the vxlan bridge's pipeline in that mode, live."""
        for fp in self.flows.values():
            await fp.set_fwd_mode(mode)

    # -- policy --------------------------------------------------------------------------------
    async def add_rule(self, fields: dict) -> str:
        """Install one policy rule on both bridges; returns "" or the validation error (bad rule data
        from the store must not block the other rules)."""
        from contivpy.common.errors import ValidationError

        for fp in self.flows.values():
            try:
                await fp.add_rule(fields)
            except ValidationError as e:
                return str(e)
        return ""

    async def remove_rule(self, rule_id: str) -> None:
        for fp in self.flows.values():
            await fp.remove_rule(rule_id)

    # -- service load balancers (docs/ovs-pipeline.md) --------------------------------------------
    def _svc_bridges(self, tenant: str) -> list[OfnetFlows]:
        """Where a tenant's services live: the vxlan bridge, and the vlan bridge while it routes
        (vlrouter) and has a network of the tenant; a tenant known on the routed vlan bridge only is
        not put on the vxlan bridge (which has no VRF for it)."""
        out = []
        vl = self.flows.get(VLAN_BRIDGE)
        on_vlan = vl is not None and vl.agent.vlrouting and vl.agent.knows_tenant(tenant)
        vx = self.flows.get(VXLAN_BRIDGE)
        if vx is not None and (vx.agent.knows_tenant(tenant) or not on_vlan):
            out.append(vx)
        if on_vlan:
            out.append(vl)
        return out

    async def add_service(self, svc) -> None:
        """Add/update an ``ofnet.types.Service`` (VIP, ports, provider IPs; VRF = tenant)."""
        for fp in self._svc_bridges(svc.vrf):
            await fp.add_service(svc)

    async def remove_service(self, vip: str, tenant: str) -> None:
        for br in (VXLAN_BRIDGE, VLAN_BRIDGE):
            if br in self.flows:
                await self.flows[br].remove_service(vip, tenant)

    def service_stats(self) -> list[dict]:
        return [
            st for br in (VXLAN_BRIDGE, VLAN_BRIDGE) if br in self.flows for st in self.flows[br].services()
        ]

    def inspect(self, bridge: str) -> dict[str, Any]:
        fp = self.flows.get(bridge)
        return fp.inspect() if fp else {}
