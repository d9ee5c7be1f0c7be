"""The agent's DNS server for containers (docs/original.md §6.6, the original's netplugin/nameserver).

Path of a query: table 0 of both bridges punts UDP/53 from container MACs (``02:02:*``) to the
OpenFlow controller; ``OfnetAgent`` hands the frame to the resolver installed by
``NameServer.attach(agent)`` together with the ingress port. The resolver finds the asking
endpoint's tenant (its VRF, from ``agent.local_endpoint(in_port)``) and answers from the name
table when the name is the tenant's; the reply frame (addresses and ports swapped, so it comes
from the server the container asked) is sent out of the ingress port. Every other query (unknown
name, another tenant's name, not a parsable query, not from a local endpoint) gets no answer from
us: the agent re-injects it with VLAN 4093 and it is forwarded like any other packet.

With Docker, containers on a user-defined network ask Docker's embedded resolver (127.0.0.11),
which answers the names of its own host and forwards the rest, from inside the container's
network namespace, to the daemon's DNS servers: out of eth0 towards the network's gateway, whose
ARP the vxlan bridge answers, into table 0. No per-container socket, no ``--dns`` on docker run.

Answers (the original's): A (and AAAA) records, TTL 120, authoritative, for
- endpoint / container names (``epCommonName`` of ``/contiv.io/state/eps/*``) and the
  container's other names (``aliases``: ``docker run --network-alias``, a contivpy addition;
  names and aliases are scoped to the tenant, as container names always were);
- endpoint-group names (``serviceName`` of the endpoints): the member addresses, at most 10;
- service-LB names (``/contiv.io/state/serviceLB/*``): the VIP.
A known name asked for another type (AAAA without v6 address, MX, ...) gets NOERROR without
data, so resolvers do not wait for a forwarded answer. Names are case-insensitive.

The name table is rebuilt from etcd lazily: watches on the three prefixes only mark it stale and
the next query rebuilds it (one read per prefix), so a busy endpoint prefix costs nothing until
someone asks a name. ``watched`` names the prefixes the table watches itself; the agent passes
only ``/contiv.io/state/eps/`` and calls ``mark_stale`` from its own watches of the group and
service-LB prefixes, so that etcd streams each of those changes to the agent once, not twice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import defaultdict

from contivpy.common.errors import StoreError
from contivpy.common.kv.base import KVStore
from contivpy.common.watch import list_and_watch
from contivpy.model import keys
from contivpy.model.state import EndpointState
from contivpy.ofnet import packets as P

__all__ = ["NameTable", "NameServer", "answer", "reply_frame", "TTL", "MAX_GROUP_RECORDS"]

log = logging.getLogger(__name__)

TTL = 120
MAX_GROUP_RECORDS = 10
PREFIXES = (keys.EPS, keys.EPGS, keys.SERVICE_LB)


class NameTable:
    """tenant -> name (lower case) -> [address], rebuilt from etcd when stale."""

    def __init__(self, kv: KVStore, watched: tuple[str, ...] = PREFIXES) -> None:
        self.kv = kv
        self.watched = watched
        self.names: dict[str, dict[str, list[str]]] = {}
        self.stale = True
        self.rebuilds = 0
        self._lock = asyncio.Lock()

    async def rebuild(self) -> None:
        self.stale = False  # a change seen during the reads marks it stale again
        names: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        eps, _ = await self.kv.get_prefix(keys.EPS)
        for kvp in eps:
            ep = EndpointState.parse(kvp.value)
            if ep is None:
                continue
            tenant = ep.netID.rpartition(".")[2]
            addrs = [a for a in (ep.ipAddress, ep.ipv6Address) if a]
            if not tenant or not addrs:
                continue
            if ep.epCommonName:
                names[tenant][ep.epCommonName.lower()].extend(addrs)
            for alias in ep.aliases if isinstance(ep.aliases, list) else ():
                if isinstance(alias, str) and alias:
                    names[tenant][alias.lower()].extend(addrs)
            if ep.serviceName:
                groups[(tenant, ep.serviceName.lower())].extend(addrs)
        for (tenant, group), addrs in groups.items():
            v4 = sorted(a for a in addrs if ":" not in a)[:MAX_GROUP_RECORDS]
            v6 = sorted(a for a in addrs if ":" in a)[:MAX_GROUP_RECORDS]
            names[tenant][group].extend(v4 + v6)
        svcs, _ = await self.kv.get_prefix(keys.SERVICE_LB)
        for kvp in svcs:
            try:
                svc = json.loads(kvp.value)
            except json.JSONDecodeError:
                continue
            if svc.get("servicename") and svc.get("ipaddress"):
                names[svc.get("tenantname") or "default"][svc["servicename"].lower()].append(svc["ipaddress"])
        self.names = {t: dict(v) for t, v in names.items()}
        self.rebuilds += 1

    async def refresh(self) -> None:
        if self.stale:
            async with self._lock:
                if self.stale:
                    await self.rebuild()

    def lookup(self, tenant: str, name: str) -> list[str]:
        return list(dict.fromkeys(self.names.get(tenant, {}).get(name.rstrip(".").lower(), [])))

    def mark_stale(self, *_change: object) -> None:
        """A change under a prefix the table reads, seen by someone else's watch."""
        self.stale = True

    async def _watch(self, prefix: str) -> None:
        """Every change (and every re-list after compaction or an etcd outage) marks the table stale."""
        async with list_and_watch(self.kv, prefix) as it:
            async for _item in it:
                self.stale = True

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for prefix in self.watched:
                tg.create_task(self._watch(prefix))


def answer(table: NameTable, tenant: str, wire: bytes) -> bytes | None:
    """The DNS reply to one query when the name is ``tenant``'s; None = not ours (forward it).
    dnspython is imported here, on the first query: most agents never answer one, and importing
    it at start-up cost ~50 ms of CPU and 2.5 MiB."""
    import dns.flags
    import dns.message
    import dns.opcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    try:
        q = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - anything unparsable is not ours to answer
        return None
    if q.flags & dns.flags.QR or q.opcode() != dns.opcode.QUERY or len(q.question) != 1:
        return None
    qs = q.question[0]
    addrs = table.lookup(tenant, qs.name.to_text())
    if not addrs:
        return None
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    for rdtype, fam in ((dns.rdatatype.A, 4), (dns.rdatatype.AAAA, 6)):
        want = [a for a in addrs if ipaddress.ip_address(a).version == fam]
        if want and qs.rdtype in (rdtype, dns.rdatatype.ANY):
            r.answer.append(dns.rrset.from_text_list(qs.name, TTL, dns.rdataclass.IN, rdtype, want))
    return r.to_wire()


def parse_query_frame(frame: bytes) -> tuple[P.Ethernet, P.IPv4, P.Udp, bytes] | None:
    pkt = P.parse(frame)
    if pkt is None or pkt.ip is None or pkt.udp is None or pkt.udp.dst_port != 53:
        return None
    return pkt.eth, pkt.ip, pkt.udp, pkt.payload


def reply_frame(eth: P.Ethernet, ip4: P.IPv4, u: P.Udp, dns_reply: bytes) -> bytes:
    """The query's frame turned around: from the server the container asked, back to it."""
    return P.build_udp(
        P.Ethernet(dst=eth.src, src=eth.dst, ethertype=eth.ethertype, vlan_tci=eth.vlan_tci),
        P.IPv4(src=ip4.dst, dst=ip4.src, proto=ip4.proto, ttl=64, identification=ip4.identification),
        P.Udp(src_port=u.dst_port, dst_port=u.src_port),
        dns_reply,
    )


class NameServer:
    """One per agent: the name table plus a resolver per OpenFlow agent (bridge)."""

    def __init__(self, kv: KVStore, watched: tuple[str, ...] = PREFIXES) -> None:
        self.table = NameTable(kv, watched)
        self.stats = {"queries": 0, "answered": 0, "forwarded": 0}

    def attach(self, agent) -> None:
        """Install the resolver on an ``OfnetAgent`` (anything with ``local_endpoint(ofport)``
        returning an object with ``vrf``, and a ``dns_resolver`` attribute)."""

        async def resolve(in_port: int, frame: bytes) -> bytes | None:
            return await self.resolve(agent, in_port, frame)

        agent.dns_resolver = resolve

    async def resolve(self, agent, in_port: int, frame: bytes) -> bytes | None:
        self.stats["queries"] += 1
        lep = agent.local_endpoint(in_port)
        parsed = parse_query_frame(frame)
        reply = None
        if lep is not None and parsed is not None:
            try:
                await self.table.refresh()
            except StoreError as e:  # etcd unreachable: answer from what we have
                log.warning("name table not refreshed: %s", e)
            reply = answer(self.table, lep.vrf, parsed[3])
        if reply is None:
            self.stats["forwarded"] += 1
            return None
        self.stats["answered"] += 1
        return reply_frame(*parsed[:3], reply)

    async def run(self) -> None:
        await self.table.run()
