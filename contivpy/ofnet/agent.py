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
prune leftovers.  VRF ids (metadata bits 32..39): a caller that persists them (netplugin, see
netplugin/vrf.py) passes each network's ``vrf_id``; from the first such network on the agent is *pinned*:
it never invents an id, an object of a tenant without a network yet is refused with ``NotFoundError``
(retried by the caller), and a tenant's id is forgotten with its last network.  Used stand-alone (no
``vrf_id``) it numbers tenants in first-use order (first -> 1), for tests and tools only.

ARP proxy (default mode): each endpoint owner (``lep:``/``rep:``) and each vxlan network owner
(its gateway) also carries an ``arp_responder`` flow that answers ARP for its address inside OVS,
so known addresses resolve while this process is down; they go and come with their owner, and
with the mode (``set_arp_mode`` re-applies every owner).

Packet-ins (ARP the responder flows do not answer, DNS punt, service first packets) are handled by
:class:`punt.PuntMixin`.

Forwarding mode (vxlan bridge only): ``bridge`` (L2 overlay, flood groups; builders.py) or ``routing``
(the original's vrouter: /32 routes in table ``ip``, every ARP for a known address answered with the
router MAC; routing.py). ``set_fwd_mode`` switches live: it re-applies every owner with the other mode's
builders, so the flow cache replaces exactly the flows that differ (no bridge re-creation, no restart).

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

from . import builders as B
from . import routing as R
from . import vlrouting as V
from .flowcache import FlowCache
from .hostaccess import HostAccess
from .infraroute import Hop, infra_route_flows
from .punt import PuntMixin
from .svcproxy import ServiceProxy
from .switch import OfController
from .types import LocalEndpoint, Network, RemoteEndpoint, Rule, Service, Vtep, _mac

__all__ = ["OfnetAgent", "DEFAULT_PORTS"]

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"vxlan": 6633, "vlan": 6634}
FWD_MODES = ("bridge", "routing")
DnsResolver = Callable[[int, bytes], Awaitable[bytes | None]]


class OfnetAgent(PuntMixin):
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
        fwd_mode: str = "bridge",
    ) -> None:
        if datapath not in DEFAULT_PORTS:
            raise ValidationError(f"Unknown Datapath {datapath}")
        if arp_mode not in ("proxy", "flood"):
            raise ValidationError(f"invalid arp mode {arp_mode!r}")
        self._check_fwd_mode(datapath, fwd_mode)
        self.fwd_mode = fwd_mode
        self.bridge, self.datapath, self.dns = bridge, datapath, dns
        self.arp_mode = arp_mode
        self.controller = OfController(
            bridge, host=host, port=DEFAULT_PORTS[datapath] if port is None else port, sock=sock,
            echo_interval=echo_interval, echo_timeout=2 * echo_interval,
        )  # fmt: skip
        self.controller.on_packet_in = self._packet_in
        self.cache = FlowCache(self.controller)
        self.svc = ServiceProxy(self)
        # contivh0 (vxlan bridge) or contivh0v (vlan bridge, both forwarding modes): hostaccess.py
        self.host = HostAccess(vlan=datapath == "vlan")
        self.host.routing = self.routing
        self.controller.on_connect.append(lambda _sw: self.svc.recover())  # after the cache's read-back
        self.dns_resolver: DnsResolver | None = None
        self._vrf_ids: dict[str, int] = {}
        self._vrf_pinned = False  # ids come only from add_network(vrf_id=...)
        self._networks: dict[int, Network] = {}
        self._local: dict[int, LocalEndpoint] = {}
        self._vteps: dict[str, Vtep] = {}
        self._remote: dict[str, RemoteEndpoint] = {}
        self._rules: dict[str, Rule] = {}
        self._uplinks: set[int] = set()
        self._iroute: int | None = None  # ofport of the contivh1 infra port (infraroute.py)
        self._router_port: int | None = None  # vlrouter: inb01, the BGP speaker's port (vlrouting.py)
        self._routes: dict[tuple[str, str], str] = {}  # vlrouter: (prefix, vrf) -> next hop MAC
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
        await self._apply(self._base_owner(), self._arp_owner())

    def _base_owner(self):
        if self.vlrouting:
            return ("base", V.base_flows(self.dns), [])
        flows = R.base_flows(self.dns) if self.routing else B.base_flows(self.datapath, self.dns)
        return ("base", flows, [])

    def _arp_owner(self):
        return ("arp", B.arp_punt_flows("proxy" if self._arp_proxy else self.arp_mode), [])

    # ---- forwarding mode -------------------------------------------------------------------------
    @staticmethod
    def _check_fwd_mode(datapath: str, mode: str) -> None:
        if mode not in FWD_MODES:
            raise ValidationError(f"invalid forwarding mode {mode!r} (bridge or routing)")

    @property
    def routing(self) -> bool:
        """True in routing mode: the original's ``vrouter`` (vxlan bridge) or ``vlrouter`` (vlan bridge)."""
        return self.fwd_mode == "routing"

    @property
    def vlrouting(self) -> bool:
        """The vlan bridge in routing mode (vlrouting.py: BGP-learned routes out of the uplink)."""
        return self.routing and self.datapath == "vlan"

    async def set_fwd_mode(self, mode: str) -> None:
        """Switch the pipeline between ``bridge`` and ``routing`` live: every owner is rebuilt with
        the new mode's builders and the flow cache sends only the difference (the bridge's flood
        groups go, table ``ip`` fills, or the reverse). Local/remote endpoints, VTEPs, rules and
        services are kept."""
        self._check_fwd_mode(self.datapath, mode)
        if mode == self.fwd_mode:
            return
        self.fwd_mode = mode
        self.host.routing = self.routing
        await self._apply(
            self._base_owner(),
            self._arp_owner(),
            *[self._net_owner(v) for v in self._networks],
            *[self._lep_owner(ep) for ep in self._local.values()],
            *[self._hep_owner(ep) for ep in self._local.values()],
            *[self._rep_owner(k) for k in self._remote],
            self._host_port_owner(),
            *self.svc.all_owners(),
            *[self._uplink_owner(p) for p in self._uplinks],
            self._router_owner(),
            *[self._route_owner(k) for k in self._routes],
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
            if self._vrf_pinned:
                raise NotFoundError(f"tenant {vrf} has no VRF id on this host yet (no network)")
            used = set(self._vrf_ids.values())
            free = next((i for i in range(1, 256) if i not in used), None)
            if free is None:
                raise ValidationError("no free VRF id (max 255 tenants per agent)")
            self._vrf_ids[vrf] = free
        return self._vrf_ids[vrf]

    def knows_tenant(self, vrf: str) -> bool:
        """True once the tenant has a VRF id on this bridge (one of its networks is programmed)."""
        return vrf in self._vrf_ids

    def _vlan_of_vni(self, vni: int) -> int | None:
        return next((n.vlan for n in self._networks.values() if n.vni == vni and vni), None)

    def _pin_vrf(self, vrf: str, vrf_id: int) -> None:
        """Check that ``vrf`` may take ``vrf_id`` (raises, changing nothing, if not) and record it."""
        if not 1 <= vrf_id <= 255:
            raise ValidationError(f"VRF id {vrf_id} out of range 1..255")
        cur = self._vrf_ids.get(vrf)
        if cur is not None and cur != vrf_id:
            raise ConflictError(f"tenant {vrf} already has VRF id {cur}, not {vrf_id}")
        owner = next((n for n, i in self._vrf_ids.items() if i == vrf_id and n != vrf), None)
        if owner is not None:
            raise ConflictError(f"VRF id {vrf_id} already belongs to tenant {owner}")
        if not self._vrf_pinned and self._vrf_ids:
            raise ConflictError("VRF ids were given in first-use order before; cannot pin them now")
        self._vrf_pinned = True
        self._vrf_ids[vrf] = vrf_id

    async def add_network(
        self,
        vlan: int,
        vni: int = 0,
        gateway: str = "",
        vrf: str = "default",
        subnet: str = "",
        *,
        vrf_id: int = 0,
    ) -> None:
        net = Network(vlan, vni, gateway, vrf, subnet)
        if self.datapath == "vxlan" and not vni:
            raise ValidationError("a vxlan network needs a VNI")
        other = next((n for n in self._networks.values() if n.vni == vni and vni and n.vlan != vlan), None)
        if other is not None:
            raise ConflictError(f"VNI {vni} already mapped to vlan {other.vlan}")
        if vrf_id:
            self._pin_vrf(vrf, vrf_id)
        self._vrf_id(vrf)
        self._networks[vlan] = net
        owners = [self._net_owner(vlan)]
        owners += [self._rep_owner(k) for k, r in self._remote.items() if r.vni == vni and vni]
        owners += [self._route_owner(k) for k in self._routes if k[1] == vrf]
        if self.datapath == "vlan":  # the gateway's ARP answer of vlan host access (hostaccess.py)
            owners += [self._hep_owner(ep) for ep in self._local.values() if ep.vlan == vlan]
        await self._apply(*owners)

    async def remove_network(self, vlan: int, expect: Network | None = None) -> None:
        """Remove the network on ``vlan``; with ``expect``, only if that is still the network there (a
        late removal of a deleted network must not take a new network that reuses its VLAN)."""
        if vlan not in self._networks or (expect is not None and self._networks[vlan] != expect):
            return
        if any(ep.vlan == vlan for ep in self._local.values()):
            raise ConflictError(f"vlan {vlan} still has local endpoints")
        net = self._networks.pop(vlan)
        await self._apply(
            self._net_owner(vlan), *[self._rep_owner(k) for k, r in self._remote.items() if r.vni == net.vni]
        )
        if (
            self._vrf_pinned
            and not any(n.vrf == net.vrf for n in self._networks.values())
            and not any(s.vrf == net.vrf for s in self.svc.services.values())
        ):
            self._vrf_ids.pop(net.vrf, None)  # the caller releases its persisted id the same way
            await self._apply(*[self._route_owner(k) for k in self._routes if k[1] == net.vrf])

    def _net_owner(self, vlan: int):
        net = self._networks.get(vlan)
        if net is not None and self.vlrouting:
            return (f"net:{vlan}", V.network_flows(net, self._vrf_id(net.vrf)), [])
        if net is None or self.datapath != "vxlan":
            return (f"net:{vlan}", [], [])
        vteps = list(self._vteps.values())
        if self.routing:  # no flooding: VTEP classification and the gateway's ARP answer only
            return (f"net:{vlan}", R.network_flows(net, self._vrf_id(net.vrf), vteps), [])
        ports = [ep.ofport for ep in self._local.values() if ep.vlan == vlan]
        flows = B.network_flows(net, self._vrf_id(net.vrf), vteps, self._arp_proxy, flood_router=True)
        return (f"net:{vlan}", flows, B.flood_groups(net, ports, vteps))

    # ---- local endpoints ---------------------------------------------------------------------
    async def add_local_endpoint(self, ep: LocalEndpoint) -> None:
        await self.add_local_endpoints([ep])

    async def add_local_endpoints(self, eps: list[LocalEndpoint]) -> None:
        """Add (or update) local endpoints together: each network's flows and flood groups are
        rebuilt once for all of them (a restart re-binds every local endpoint this way)."""
        if not all(isinstance(ep, LocalEndpoint) for ep in eps):
            raise ValidationError("add_local_endpoint needs a LocalEndpoint")
        owners, vlans = [], set()
        for ep in eps:
            clash = next((o for o in self._local.values() if o.key == ep.key and o.ofport != ep.ofport), None)
            if clash is not None:  # same ip:vrf moved to another port: the old port's flows go
                del self._local[clash.ofport]
                owners += [(f"lep:{clash.ofport}", [], []), (f"hep:{clash.ofport}", [], [])]
                vlans.add(clash.vlan)
            self._vrf_id(ep.vrf)
            old = self._local.get(ep.ofport)
            self._local[ep.ofport] = ep
            vlans.add(ep.vlan)
            if old is not None:
                vlans.add(old.vlan)
        for ep in eps:
            if self._local.get(ep.ofport) is ep:
                owners.append(self._lep_owner(ep))
                owners.append(self._hep_owner(ep))
        owners += [self._net_owner(v) for v in sorted(vlans)]
        await self._apply(*owners)
        await self.svc.refresh()

    async def remove_local_endpoint(self, ofport: int) -> None:
        ep = self._local.pop(ofport, None)
        if ep is None:
            return
        await self._apply((f"lep:{ofport}", [], []), (f"hep:{ofport}", [], []), self._net_owner(ep.vlan))
        await self.svc.refresh()

    def _lep_owner(self, ep: LocalEndpoint):
        if self.vlrouting:
            return (f"lep:{ep.ofport}", V.local_endpoint_flows(ep, self._vrf_id(ep.vrf)), [])
        if self.routing:
            return (f"lep:{ep.ofport}", R.local_endpoint_flows(ep, self._vrf_id(ep.vrf)), [])
        flows = B.local_endpoint_flows(ep, self._vrf_id(ep.vrf), self.datapath, self._arp_proxy)
        return (f"lep:{ep.ofport}", flows, [])

    def _hep_owner(self, ep: LocalEndpoint):
        if self.datapath != "vxlan" and not self.routing:  # vlan bridge mode: the gateway's ARP answer
            net = self._networks.get(ep.vlan)
            return self.host.endpoint_owner(ep, self._vrf_id(ep.vrf), net.gateway if net else "")
        return self.host.endpoint_owner(ep, self._vrf_id(ep.vrf))

    def _host_port_owner(self):
        return self.host.port_owner()

    # ---- host access (contivh0; hostaccess.py) ------------------------------------------------
    async def set_host_port(self, ofport: int | None, pvt_subnet: str = "") -> None:
        """Install (or, with ``None``, remove) the host port's flows and every local endpoint's
        private-address NAT flows; a changed ``pvt_subnet`` rewrites them all."""
        self.host.set(ofport, pvt_subnet)
        await self._apply(self._host_port_owner(), *[self._hep_owner(ep) for ep in self._local.values()])

    # ---- contivh1 host routes (infraroute.py) ------------------------------------------------------
    async def set_infra_router(self, ofport: int | None) -> None:
        """Route between the contivh1 infra port (a local endpoint on ``ofport``) and the endpoints of
        its VRF; ``None`` removes the routing flows. The flows follow every later endpoint change."""
        if self.datapath != "vxlan":
            raise ValidationError("infra routing exists only on the vxlan bridge")
        if ofport is not None and ofport not in self._local:
            raise NotFoundError(f"no local endpoint on port {ofport}")
        old, self._iroute = self._iroute, ofport
        owners = [self._iroute_owner()]
        if old is not None and old != ofport:
            owners.append((f"iroute:{old}", [], []))
        await self._apply(*owners)
        await self.svc.refresh()  # the contivh1 port's service clients are routed (svcproxy._routed)

    def _iroute_owner(self):
        port = self._iroute
        ep = self._local.get(port) if port is not None else None
        if ep is None or self.routing:  # routing mode routes every /32 of the VRF in table ip already
            return (f"iroute:{port}", [], [])
        infra_vni = self._networks[ep.vlan].vni if ep.vlan in self._networks else 0
        eps, infra = [], [Hop(ep.ip, ep.mac, ep.vlan)]
        for o in self._local.values():
            if o.vrf == ep.vrf and o.vlan != ep.vlan:
                eps.append(Hop(o.ip, o.mac, o.vlan))
        for r in self._remote.values():
            vlan = self._vlan_of_vni(r.vni)
            if r.vrf != ep.vrf or vlan is None or r.vtep_ip not in self._vteps:
                continue
            (infra if r.vni == infra_vni else eps).append(Hop(r.ip, r.mac, vlan))
        return (f"iroute:{port}", infra_route_flows(port, ep.ip, self._vrf_id(ep.vrf), eps, infra), [])

    def private_ip(self, ofport: int) -> str:
        """The private (host access) address of the local endpoint on ``ofport``, or ""."""
        return self.host.private_ip(ofport) if ofport in self._local else ""

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
            if self.routing:
                return (f"rep:{key}", R.remote_endpoint_flows(ep, self._vrf_id(ep.vrf), vt.ofport), [])
            flows = B.remote_endpoint_flows(
                ep, self._vrf_id(ep.vrf), vlan, vt.ofport, "vxlan", self._arp_proxy
            )
        elif self.vlrouting:
            flows = V.remote_endpoint_flows(ep, self._vrf_id(ep.vrf))
        else:
            flows = B.remote_endpoint_flows(ep, self._vrf_id(ep.vrf), ep.vlan, None, "vlan", self._arp_proxy)
        return (f"rep:{key}", flows, [])

    # ---- vlan bridge uplinks ---------------------------------------------------------------------
    async def add_uplink(self, ofport: int) -> None:
        if self.datapath != "vlan":
            raise ValidationError("uplinks exist only on the vlan bridge")
        self._uplinks.add(ofport)
        await self._apply(self._uplink_owner(ofport), *[self._route_owner(k) for k in self._routes])

    def uplinks(self) -> set[int]:
        return set(self._uplinks)

    async def remove_uplink(self, ofport: int) -> None:
        self._uplinks.discard(ofport)
        await self._apply((f"uplink:{ofport}", [], []), *[self._route_owner(k) for k in self._routes])

    def _uplink_owner(self, ofport: int):
        if ofport not in self._uplinks:
            return (f"uplink:{ofport}", [], [])
        if self.vlrouting:
            return (f"uplink:{ofport}", V.uplink_flows(ofport, self.dns), [])
        return (f"uplink:{ofport}", B.uplink_flows(ofport, self.dns), [])

    # ---- vlrouter: the BGP speaker's port and learned routes (vlrouting.py) ------------------------
    async def set_router_port(self, ofport: int | None) -> None:
        """The OpenFlow port of ``inb01`` (bridged to the uplink), or ``None`` to remove its flows."""
        if self.datapath != "vlan":
            raise ValidationError("the router port exists only on the vlan bridge")
        old, self._router_port = self._router_port, ofport
        owners = [self._router_owner()]
        if old is not None and old != ofport:
            owners.append((f"rport:{old}", [], []))
        await self._apply(*owners)

    def _router_owner(self):
        port = self._router_port
        flows = V.router_port_flows(port) if port is not None and self.vlrouting else []
        return (f"rport:{port}", flows, [])

    async def set_routes(self, routes: dict[tuple[str, str], str]) -> None:
        """Replace the learned routes: ``{(prefix, vrf): next hop MAC}``. A route of a tenant without a
        network on this host is kept but installs nothing until the tenant has its VRF id."""
        if self.datapath != "vlan":
            raise ValidationError("learned routes exist only on the vlan bridge")
        want: dict[tuple[str, str], str] = {}
        for (prefix, vrf), mac in routes.items():
            try:
                net = ipaddress.IPv4Network(prefix, strict=False)
            except ValueError:
                raise ValidationError(f"invalid route prefix {prefix!r}") from None
            want[(str(net), vrf)] = _mac(mac)
        gone = [k for k in self._routes if k not in want]
        changed = [k for k, m in want.items() if self._routes.get(k) != m]
        self._routes = want
        await self._apply(*[self._route_owner(k) for k in gone + changed])

    def routes(self) -> dict[tuple[str, str], str]:
        return dict(self._routes)

    def _route_owner(self, key: tuple[str, str]):
        name = f"route:{key[0]}:{key[1]}"
        mac = self._routes.get(key)
        if mac is None or not self.vlrouting or not self._uplinks or key[1] not in self._vrf_ids:
            return (name, [], [])
        return (name, V.route_flows(key[0], self._vrf_ids[key[1]], mac, min(self._uplinks)), [])

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
        if self.routing:  # routing answers ARP in any mode (nothing floods); applied on the switch back
            return
        # the divert/punt flows, then every owner with responder flows (endpoints, gateways)
        await self._apply(
            self._arp_owner(),
            *[self._lep_owner(ep) for ep in self._local.values()],
            *[self._rep_owner(k) for k in self._remote],
            *[self._net_owner(v) for v in self._networks],
            *self.svc.watch_owners(),
        )

    @property
    def _arp_proxy(self) -> bool:
        return self.arp_mode == "proxy" or self.routing

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
            "datapath": ("vrouter" if self.datapath == "vxlan" else "vlrouter")
            if self.routing
            else self.datapath,
            "fwd_mode": self.fwd_mode,
            "connected": self.controller.connected,
            "connects": self.controller.connects,
            "dpid": f"{sw.dpid:016x}" if sw else "",
            "networks": len(self._networks),
            "local_endpoints": len(self._local),
            "remote_endpoints": len(self._remote),
            "vteps": len(self._vteps),
            "rules": len(self._rules),
            "services": len(self.svc.services),
            "routes": len(self._routes),
            "host_port": self.host.port or 0,
            "pvt_subnet": self.host.pvt_subnet,
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
        follow = self._iroute is not None and not any(o[0].startswith("iroute:") for o in owners)
        if follow:  # the contivh1 routes follow every change, without failing the change itself
            owners = (*owners, self._iroute_owner())
        results = await asyncio.gather(
            *(self.cache.apply(name, flows, groups) for name, flows, groups in owners), return_exceptions=True
        )
        if follow and isinstance(results[-1], BaseException):
            log.error("contivh1 routing flows not updated: %s", results.pop())
        for r in results:
            if isinstance(r, BaseException):
                raise r
