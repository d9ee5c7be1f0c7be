"""Service load balancer of the ofnet pipeline (tables svc_dnat 3 and svc_snat 6; docs/original.md §6.4).

A :class:`~contivpy.ofnet.types.Service` is a VIP in a tenant (VRF) with port mappings
``svc_port -> prov_port/proto`` and provider IPs.  As in the original ofnet, the first packet of a
client to the VIP hits a per-service *watch* flow (svc_dnat, priority 10, one per protocol) and
is punted; the controller chooses a provider, installs the client's NAT flows and re-injects the
packet (VLAN tag stripped, ``in_port`` = the client's port) to OFPP_TABLE, where it now takes the
new DNAT flow.  The NAT is stateful (conntrack zone ``SVC_CT_ZONE``): svc_dnat p100 sets the
provider's MAC and does ``ct(commit,nat(dst=provider:provPort))``, recirculating into dst_group
(metadata survives the recirculation); svc_snat p100 sends provider:provPort -> client through
``ct(nat)`` into mac_dest, which restores VIP:svcPort only on connections committed through the
VIP, so the client's direct connections to the provider pass unchanged.  Replies are un-NATed on
the client's host, the one that committed the connection: a local provider's reply passes
svc_snat, a remote one's enters from the VTEP and goes vlan -> svc_snat.  ARP for a VIP from a local
endpoint of its tenant is answered with ``02:02:<vip bytes>``: in proxy mode by an arp_responder flow
of the service's owner (so existing clients re-resolve it while the agent is down), else by the
agent's ``_arp``, which asks :meth:`ServiceProxy.vip_mac`. In routing mode (routing.py) the VIP is
answered with the router MAC like every address, and replies leave svc_snat for table ip instead.

Differences from the original (on purpose):

* **Deterministic choice**: rendezvous (highest-random-weight) hashing of (client IP, provider IP)
  over the *known* providers (an IP whose endpoint, local or remote of the same VRF, gives its MAC)
  instead of "fewest clients".  A restarted agent recomputes the same choice; a provider set
  change moves only the clients whose winner changed (their flows are removed, so their next
  packet re-punts), others keep their connections.
* **Owned, converging flows**: the watch flows belong to owner ``svc:<vip>:<vrf>``; a client's NAT
  flows to ``svcc:<vip>:<vrf>:<client>`` (cookie categories SERVICE / SVC_CLIENT), rebuilt and
  diffed by the flow cache like every other owner.  A client owner goes when its provider loses,
  when the client stops being a local endpoint, or with the service.  After a restart, per-client
  flows read back from the switch are re-adopted (:meth:`recover`) when their service and client
  are known again and the hash still picks the same provider, so ``sync_complete`` keeps them.

The host as a client: with the infra network ``contivh1`` (bridge mode) the host routes the VIPs of its
tenant's subnets through its contivh1 port, a local endpoint like any other; its client flows set the
router MAC on the DNAT (so the contivh1 route of infraroute.py carries it to the provider's network) and
route the un-NATed reply back to the port (``service_client_flows(routed_client=...)``). This is also the
path of node ports (netplugin/iptables.py: the host DNATs a node port to the VIP).

Invariants: no service -> no flow here (the pipeline is byte-identical to one without this
module); every client owner has a service and a local client endpoint in the service's VRF.
Clients are local endpoints only (traffic from a VTEP never visits svc_dnat).
"""

from __future__ import annotations

import hashlib
import logging

from . import builders as B
from . import packets as P
from . import routing as R
from .cookies import Category, category_of
from .flows import OFPP_TABLE, Ct, Output
from .pipeline import SVC_DNAT, Prio
from .types import Service, _ip

vip_mac = B.vip_mac  # re-exported: the proxy MAC of a VIP

__all__ = ["ServiceProxy", "vip_mac", "hrw_choice"]

log = logging.getLogger(__name__)


def _weight(client: str, provider: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{client}|{provider}".encode(), digest_size=8).digest(), "big")


def hrw_choice(client: str, providers) -> str | None:
    """Rendezvous hash: the provider with the highest weight for this client (ties by IP text)."""
    return max(providers, key=lambda p: (_weight(client, p), p), default=None)


def _svc_owner(key: str) -> str:
    return f"svc:{key}"


def _client_owner(key: str, client: str) -> str:
    return f"svcc:{key}:{client}"


class ServiceProxy:
    def __init__(self, agent) -> None:
        self.agent = agent
        self.services: dict[str, Service] = {}
        self.clients: dict[str, dict[str, str]] = {}  # service key -> {client ip: provider ip}
        self.counters = dict.fromkeys(("svc_punts", "svc_reinjects", "svc_dropped"), 0)

    # ---- state ---------------------------------------------------------------------------------
    def known_providers(self, svc: Service) -> dict[str, str]:
        """Provider IP -> MAC, for providers whose endpoint this agent knows (local or remote)."""
        out = {}
        for ip in svc.providers:
            loc, rem = self.agent._endpoint(ip, svc.vrf)
            ep = loc or rem
            if ep is not None:
                out[ip] = ep.mac
        return out

    def _is_local(self, ip: str, vrf: str) -> bool:
        return self.agent._endpoint(ip, vrf)[0] is not None

    def _watch_owner(self, svc: Service):
        vrf_id, routing = self.agent._vrf_id(svc.vrf), self.agent.routing
        flows = B.service_watch_flows(svc, vrf_id, self.agent.arp_mode == "proxy" and not routing)
        if routing:  # the VIP resolves to the router MAC like every address (routing.py)
            flows.append(R.arp_responder_flow(svc.vip, vrf_id, Prio.ARP_VIP))
        return (_svc_owner(svc.key), flows, [])

    def watch_owners(self) -> list:
        """Every service's watch owner (its flows follow the ARP mode)."""
        return [self._watch_owner(svc) for svc in self.services.values()]

    def all_owners(self) -> list:
        """Every service's watch owner and every client's flows (forwarding mode switch)."""
        owners = self.watch_owners()
        for key in list(self.clients):
            owners += self._converge(key)
        return owners

    def _routed(self, client: str) -> tuple[str, int] | None:
        """(MAC, VLAN) when ``client`` is the contivh1 port of the vxlan bridge in bridge mode: the host
        itself, on another network than the providers (infraroute.py routes it across)."""
        if self.agent.routing or self.agent._iroute is None:
            return None
        ep = self.agent._local.get(self.agent._iroute)
        return (ep.mac, ep.vlan) if ep is not None and ep.ip == client else None

    def _client_owner(self, svc: Service, client: str, provider: str, mac: str):
        flows = B.service_client_flows(
            svc, self.agent._vrf_id(svc.vrf), client, provider, mac, self.agent.routing, self._routed(client)
        )
        return (_client_owner(svc.key, client), flows, [])

    def _converge(self, key: str) -> list:
        """Owners to apply so the clients of service ``key`` match the current state (drop losers)."""
        svc = self.services.get(key)
        clients = self.clients.get(key, {})
        owners = []
        known = self.known_providers(svc) if svc else {}
        for client, prov in sorted(clients.items()):
            best = hrw_choice(client, known) if svc and self._is_local(client, svc.vrf) else None
            if best is None or best != prov:
                del clients[client]
                owners.append((_client_owner(key, client), [], []))
            else:
                owners.append(self._client_owner(svc, client, prov, known[prov]))
        if not clients:
            self.clients.pop(key, None)
        return owners

    # ---- API (called by OfnetAgent) ------------------------------------------------------------
    async def add(self, svc: Service) -> None:
        self.agent._vrf_id(svc.vrf)  # raises (state untouched) while the tenant has no VRF id
        old = self.services.get(svc.key)
        self.services[svc.key] = svc
        owners = [self._watch_owner(svc)]
        if old is not None and old.ports != svc.ports:  # port mapping changed: every client re-punts
            owners += [(_client_owner(svc.key, c), [], []) for c in self.clients.pop(svc.key, {})]
        owners += self._converge(svc.key)
        await self.agent._apply(*owners)
        await self.recover()

    async def remove(self, vip: str, vrf: str) -> bool:
        key = f"{_ip(vip, 'service')}:{vrf}"
        if self.services.pop(key, None) is None:
            return False
        owners = [(_svc_owner(key), [], [])]
        owners += [(_client_owner(key, c), [], []) for c in self.clients.pop(key, {})]
        await self.agent._apply(*owners)
        return True

    async def refresh(self) -> None:
        """Endpoints changed: re-check every client's choice (provider appeared/went, client went)."""
        if not self.services:
            return
        owners = []
        for key in list(self.clients):
            owners += self._converge(key)
        if owners:
            await self.agent._apply(*owners)
        await self.recover()

    async def recover(self) -> None:
        """Re-adopt per-client flows found in the switch (read back after a restart) whose service and
        local client are known and whose provider is still the hash's choice."""
        if not self.services:
            return
        vrf_names = {i: n for n, i in self.agent._vrf_ids.items()}
        owners = []
        flows = self.agent.cache.installed_flows(lambda c: category_of(c) == Category.SVC_CLIENT)
        # the provider is the DNAT address of the svc_dnat flow's ct action
        for f in flows:
            if f.table.id != SVC_DNAT.id or f.priority != Prio.MATCH:
                continue
            md = f.match.get("metadata")
            vrf = vrf_names.get((md[0] if isinstance(md, tuple) else md or 0) >> 32)
            client, vip = f.match.get("ipv4_src"), f.match.get("ipv4_dst")
            svc = self.services.get(f"{vip}:{vrf}")
            if svc is None or client in self.clients.get(svc.key, {}) or not self._is_local(client, vrf):
                continue
            prov = next((a.nat.ip for a in f.actions if isinstance(a, Ct) and a.nat is not None), None)
            known = self.known_providers(svc)
            if prov is None or hrw_choice(client, known) != prov:
                continue
            self.clients.setdefault(svc.key, {})[client] = prov
            owners.append(self._client_owner(svc, client, prov, known[prov]))
        if owners:
            await self.agent._apply(*owners)

    def vip_mac(self, ip: str, vrf: str) -> str | None:
        return vip_mac(ip) if f"{ip}:{vrf}" in self.services else None

    def stats(self) -> list[dict]:
        """Per service: VIP, tenant, ports, providers (known ones marked) and client -> provider."""
        out = []
        for key, svc in sorted(self.services.items()):
            known = self.known_providers(svc)
            out.append(
                {
                    "ServiceIP": svc.vip,
                    "Tenant": svc.vrf,
                    "Ports": [f"{s}:{p}:{proto.upper()}" for s, p, proto in svc.ports],
                    "Providers": list(svc.providers),
                    "KnownProviders": sorted(known),
                    "Clients": dict(sorted(self.clients.get(key, {}).items())),
                }
            )
        return out

    # ---- packet-in -----------------------------------------------------------------------------
    async def packet_in(self, sw, in_port: int, data: bytes) -> None:
        """A first packet to a VIP (punted by a watch flow): choose, install, re-inject."""
        self.counters["svc_punts"] += 1
        lep = self.agent._local.get(in_port)
        frame = _strip_vlan(data)
        pkt = _parse(frame)
        if lep is None or pkt is None:
            self.counters["svc_dropped"] += 1
            return
        src, dst, proto, dport = pkt
        svc = self.services.get(f"{dst}:{lep.vrf}")
        if svc is None or src != lep.ip or not any(s == dport and p == proto for s, _, p in svc.ports):
            self.counters["svc_dropped"] += 1
            return
        known = self.known_providers(svc)
        prov = hrw_choice(src, known)
        if prov is None:
            self.counters["svc_dropped"] += 1
            return
        self.clients.setdefault(svc.key, {})[src] = prov
        await self.agent._apply(self._client_owner(svc, src, prov, known[prov]))
        await sw.packet_out(in_port, [Output(OFPP_TABLE)], frame)
        self.counters["svc_reinjects"] += 1


def _strip_vlan(data: bytes) -> bytes:
    """The frame as the client sent it (the vxlan bridge pushed the network's VLAN tag in table vlan)."""
    if len(data) >= 18 and data[12:14] == b"\x81\x00":
        return data[:12] + data[16:]
    return data


def _parse(frame: bytes) -> tuple[str, str, str, int] | None:
    pkt = P.parse(frame)
    if pkt is None or pkt.ip is None or (pkt.tcp is None and pkt.udp is None):
        return None
    l4 = pkt.tcp or pkt.udp
    return pkt.ip.src, pkt.ip.dst, "tcp" if pkt.tcp is not None else "udp", l4.dst_port
