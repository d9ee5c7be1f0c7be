"""FakeDatapath: an in-memory, recording implementation of the ``dpapi.Datapath`` protocol.

For manager unit tests that run in milliseconds without root, OVS or a switch. It keeps what is
programmed (networks, VTEPs with their ofports and ports, remote/local endpoints, rules, services,
ARP mode, port policing) and records every call as ``(method, key)`` in ``calls``. It validates its
inputs with the same ofnet value types the real datapath uses (``contivpy.ofnet.types``), so bad data
fails the same way, and it passes the same contract suite as the real one
(``tests/contract/test_datapath_contract.py``).

Failure injection: ``fail(method, key, err)`` makes every call of ``method`` for ``key`` raise ``err``
(an ``ExternalServiceError`` by default) until ``heal(method, key)``; the key is the one recorded in
``calls`` (network id, VTEP IP, endpoint id, rule id, ``vip:tenant``). Like OVS, an ``add_vtep`` whose
peer is not an IPv4 address leaves a port behind (``vtep_ports``) and raises ``ExternalServiceError``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from contivpy.common.errors import ConflictError, ExternalServiceError, ValidationError
from contivpy.netplugin.datapath import EpSpec, NetSpec, vtep_port_name
from contivpy.ofnet.types import RemoteEndpoint, Rule


class FakeDatapath:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.networks: dict[str, NetSpec] = {}
        self.vteps: dict[str, int] = {}
        self.ports: set[str] = set()  # VXLAN ports on the VXLAN bridge
        self.infra: dict[str, tuple[str, str, int]] = {}  # infra port name -> (bridge, net id, ofport)
        self.infra_router: int | None = None
        self.remote: dict[str, EpSpec] = {}
        self.local: dict[str, EpSpec] = {}
        self.policing: dict[str, tuple[int, int]] = {}
        self.rules: dict[str, dict] = {}
        self.services: dict[str, Any] = {}
        self.arp_mode = "proxy"
        self.fwd_mode = "bridge"
        self.node_ports: list[tuple[str, int, str, int]] = []
        self.router_port: tuple[int, str] | None = None  # vlan routing mode's inb01: (ofport, cidr)
        self.bgp_routes: dict[tuple[str, str], str] = {}
        self.host_port: tuple[int, str] | None = None  # (ofport, pvtSubnet) of contivh0
        self._failures: dict[tuple[str, str], Exception] = {}
        self._next_ofport = 100

    # -- failure injection -------------------------------------------------------------------
    def fail(self, method: str, key: str, err: Exception | None = None) -> None:
        self._failures[(method, key)] = err or ExternalServiceError(f"{method} {key}: refused by the switch")

    def heal(self, method: str, key: str) -> None:
        self._failures.pop((method, key), None)

    def _call(self, method: str, key: str) -> None:
        self.calls.append((method, key))
        err = self._failures.get((method, key))
        if err is not None:
            raise err

    def calls_of(self, method: str) -> list[str]:
        return [k for m, k in self.calls if m == method]

    # -- networks ------------------------------------------------------------------------------
    async def add_network(self, net: NetSpec) -> None:
        self._call("add_network", net.id)
        if net.encap == "vxlan" and not net.vni:
            raise ValidationError("a vxlan network needs a VNI")
        other = next(
            (n for n in self.networks.values() if n.encap == net.encap and n.vni == net.vni and net.vni),
            None,
        )
        if other is not None and other.vlan != net.vlan:
            raise ConflictError(f"VNI {net.vni} already mapped to vlan {other.vlan}")
        self.networks[net.id] = net

    async def remove_network(self, net: NetSpec) -> None:
        self._call("remove_network", net.id)
        if any(ep.net.id == net.id for ep in self.local.values()):
            raise ConflictError(f"vlan {net.vlan} still has local endpoints")
        self.networks.pop(net.id, None)

    # -- VTEPs ---------------------------------------------------------------------------------
    async def add_vtep(self, ip: str, existing: Any = None) -> int:
        self._call("add_vtep", ip)
        name = vtep_port_name(ip)
        self.ports.add(name)
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise ExternalServiceError(f"OVS could not add interface {name}: bad remote_ip") from None
        if ip not in self.vteps:
            self.vteps[ip] = self._next_ofport
            self._next_ofport += 1
        return self.vteps[ip]

    async def remove_vtep(self, ip: str) -> None:
        self._call("remove_vtep", ip)
        self.vteps.pop(ip, None)
        self.ports.discard(vtep_port_name(ip))

    async def vtep_ports(self) -> list[str]:
        return sorted(self.ports)

    async def remove_port(self, bridge: str, name: str) -> bool:
        self._call("remove_port", name)
        if name in self.ports:
            self.ports.discard(name)
            return True
        return self.infra.pop(name, None) is not None

    # -- endpoints -----------------------------------------------------------------------------
    async def add_remote_endpoint(self, ep: EpSpec) -> None:
        self._call("add_remote_endpoint", ep.id)
        vxlan = ep.net.encap == "vxlan"
        RemoteEndpoint(
            ep.mac, ep.ip, ep.vtep_ip, vni=ep.net.vni if vxlan else 0, epg=ep.epg_id,
            vlan=0 if vxlan else ep.net.vlan,
        )  # fmt: skip
        self.remote[ep.id] = ep

    async def remove_remote_endpoint(self, ep: EpSpec) -> None:
        self._call("remove_remote_endpoint", ep.id)
        self.remote.pop(ep.id, None)

    async def add_local_endpoint(self, ep: EpSpec) -> None:
        self._call("add_local_endpoint", ep.id)
        self.local[ep.id] = ep

    async def add_local_endpoints(self, eps: list[EpSpec]) -> None:
        for ep in eps:
            await self.add_local_endpoint(ep)

    async def remove_local_endpoint(self, ep: EpSpec, ovs_port: str) -> None:
        self._call("remove_local_endpoint", ep.id)
        self.local.pop(ep.id, None)
        await self.remove_port(ep.net.bridge, ovs_port)

    # -- infra networks ------------------------------------------------------------------------
    async def ensure_infra_port(self, net: NetSpec, ep_id: str, mac: str, cidr: str, mtu: int | None) -> int:
        self._call("ensure_infra_port", net.id)
        if net.name not in self.infra:
            self._next_ofport += 1
            self.infra[net.name] = (net.bridge, net.id, self._next_ofport)
        return self.infra[net.name][2]

    async def infra_ports(self) -> dict[str, tuple[str, str]]:
        return {n: (br, nid) for n, (br, nid, _) in self.infra.items()}

    async def set_infra_router(self, ofport: int | None) -> None:
        self._call("set_infra_router", str(ofport))
        self.infra_router = ofport

    async def set_port_policing(self, ovs_port: str, rate_kbps: int, burst_kb: int) -> None:
        self._call("set_port_policing", ovs_port)
        self.policing[ovs_port] = (rate_kbps, burst_kb)

    # -- policy, services, ARP -----------------------------------------------------------------
    async def add_rule(self, fields: dict) -> str:
        rid = str(fields.get("rule_id", ""))
        self._call("add_rule", rid)
        try:
            Rule(**fields)
        except ValidationError as e:
            return str(e)
        self.rules[rid] = dict(fields)
        return ""

    async def remove_rule(self, rule_id: str) -> None:
        self._call("remove_rule", rule_id)
        self.rules.pop(rule_id, None)

    async def add_service(self, svc: Any) -> None:
        self._call("add_service", f"{svc.vip}:{svc.vrf}")
        self.services[f"{svc.vip}:{svc.vrf}"] = svc

    async def remove_service(self, vip: str, tenant: str) -> None:
        self._call("remove_service", f"{vip}:{tenant}")
        self.services.pop(f"{vip}:{tenant or 'default'}", None)

    def service_stats(self) -> list[dict]:
        return [{"vip": s.vip, "tenant": s.vrf} for s in self.services.values()]

    async def set_arp_mode(self, mode: str) -> None:
        self._call("set_arp_mode", mode)
        self.arp_mode = mode

    async def set_fwd_mode(self, mode: str) -> None:
        if mode not in ("bridge", "routing"):
            raise ValidationError(f"invalid forwarding mode {mode!r} (bridge or routing)")
        self._call("set_fwd_mode", mode)
        self.fwd_mode = mode

    # -- vlan routing mode (managers/bgp.py) -------------------------------------------------------
    async def ensure_router_port(self, cidr: str, mac: str, mtu: int | None = None) -> int:
        self._call("ensure_router_port", cidr)
        ipaddress.IPv4Interface(cidr)
        if self.router_port is None:
            self._next_ofport += 1
            self.router_port = (self._next_ofport, cidr)
        self.router_port = (self.router_port[0], cidr)
        return self.router_port[0]

    async def remove_router_port(self) -> None:
        self._call("remove_router_port", "")
        self.router_port, self.bgp_routes = None, {}

    async def set_bgp_routes(self, routes: dict[tuple[str, str], str]) -> None:
        from contivpy.ofnet.types import _mac

        self._call("set_bgp_routes", str(len(routes)))
        try:
            want = {(str(ipaddress.IPv4Network(p, strict=False)), t): _mac(m) for (p, t), m in routes.items()}
        except ValueError:
            raise ValidationError(f"invalid routes {routes!r}") from None
        self.bgp_routes = want

    def vlan_endpoints(self) -> list[tuple[str, str]]:
        return sorted((e.ip, e.net.tenant or "default") for e in self.local.values() if e.net.encap == "vlan")

    def vlan_networks(self) -> list[tuple[str, str]]:
        return sorted((n.subnet, n.tenant or "default") for n in self.networks.values() if n.encap == "vlan")

    # -- host access ---------------------------------------------------------------------------
    async def set_node_ports(self, ports: list[tuple[str, int, str, int]]) -> None:
        self._call("set_node_ports", len(ports))
        self.node_ports = sorted(set(ports))

    async def ensure_host_port(self, pvt_subnet: str, mtu: int | None = None) -> int:
        from contivpy.ofnet.hostaccess import host_port_address

        self._call("ensure_host_port", pvt_subnet)
        host_port_address(pvt_subnet)  # ValidationError unless a /16
        if self.host_port is None:
            self._next_ofport += 1
            self.host_port = (self._next_ofport, pvt_subnet)
        self.host_port = (self.host_port[0], pvt_subnet)
        return self.host_port[0]

    async def remove_host_port(self) -> None:
        self._call("remove_host_port", "")
        self.host_port = None
