"""Endpoint lifecycle and address allocation behind /plugin/* (docs/original.md §2.4, §4.3).

Every operation is one etcd txn: it reads the records it changes (network state, EPG state,
endpoint state, allocation record), applies ``ipam``, and commits with compares on their mod
revisions (absent records: ``version == 0``). A lost race re-runs on fresh state, so concurrent
requests and several netmaster processes never hand out one address twice, and a request that
fails half-way leaves nothing allocated. A per-network ``asyncio.Lock`` keeps one process from
racing itself (no CAS storms under load); the reclaimer (``reclaim.py``) takes the same lock.

Invariant (checked by the tests and the fuzz suite's consistency check): every set bit of a
network's ``ipAllocMap`` or of a pool group's ``epgIpAllocMap`` is explained by exactly one of
- *reserved*: network, broadcast, gateway, outside a range subnet's range; in the network map
  also every address of a group ip-pool; in a group map every address outside its pool;
- an endpoint state (``/contiv.io/state/eps/``) of the network whose ``ipAddress`` it is;
- a service VIP (``/contiv.io/state/serviceLB/``, ``ipaddress``, same tenant and network);
- an allocation record ``/contiv.io/state/addrAlloc/<net>.<tenant>/<ip>`` (``AddrAllocRecord``:
  ``{"networkId","address","group","created","expires"}``), written by ``allocAddress`` in the
  txn that sets the bit.
A record explains the bit of its group's map when that group (of the record's network) has an
ip-pool holding the address, else the bit of the network map (``ipam.in_pool``: the group may have
been deleted and re-created with another pool, or none, since). A record whose bit is clear, or
reserved in that map, is *stale* (its group or network was deleted and re-created): it explains
nothing, ``allocAddress`` overwrites it, ``createEndpoint`` deletes it, the reclaimer
deletes it once expired. IPv6 (``ipv6AllocMap``): gateway or an endpoint's ``ipv6Address``.

Rules that keep it
- ``allocAddress`` sets the bit and creates the record in one txn (expiry: ``alloc_ttl()``,
  ``CONTIV_NETMASTER_ALLOC_TTL`` seconds, default 300).
- ``createEndpoint`` takes a *free* address (sets the bit) or *claims* an allocated one: bit set
  and a record of the same group (or of the plain network, for an endpoint without a pool group),
  deleted in the endpoint's txn. Everything else is refused before any write: malformed, outside
  the subnet/range/pool, network, broadcast, gateway, another endpoint's, a service VIP, or any
  other used address.
- ``releaseAddress`` frees only an address that has a record (and deletes it); without one the
  address is held by an endpoint or a VIP, was reserved, or was already freed: nothing to do.
- ``deleteEndpoint`` frees the endpoint's addresses unless another endpoint of the network holds
  the same address (state written before these rules): found through the address-holder index
  (``addridx.py``, one read of that address's keys, whose entries ``createEndpoint`` and
  ``deleteEndpoint`` write in their own txn), not by reading the network's endpoints. With ``KeepAddress`` (a contivpy field: the
  Docker plugin, whose ``ReleaseAddress`` follows) the IPv4 address is not freed but handed back:
  an allocation record of the endpoint's group replaces the endpoint in the same txn, so nobody
  else gets the address before Docker releases it, and a release that never comes (dockerd died
  in between) is reclaimed once the record expires.
- The reclaimer deletes expired records and frees their bits in one CAS txn (never an address an
  endpoint or VIP holds).

Identifiers: NetworkID ``<net>.<tenant>`` or ``<net>:<epg>.<tenant>`` (names may contain dots: the
split that names an existing network wins); endpoint state id ``<net>.<tenant>-<container>``, or
``<net>.<tenant>-<host>-native-intf`` without a container (the original used ``<host>-native-intf``,
one key shared by every network: decisions.md). An endpoint key found with another ``netID`` (names
with dots and dashes can spell one key twice) is never returned, overwritten nor deleted.

Fixes (decisions.md): a preferred address already in use is refused; ``releaseAddress`` accepts
the Docker PoolID form ``<NetworkID>|<pool>``; ``deleteEndpoint`` of an unknown endpoint succeeds
(idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contivpy.common import metrics, netaddr
from contivpy.common.errors import ConflictError, ContivError, NotFoundError, ValidationError
from contivpy.common.kv.base import Compare, Delete, KeyValue, KVStore, Put
from contivpy.model import keys
from contivpy.model.state import (
    AddrAllocRecord,
    EndpointGroupState,
    EndpointState,
    NetworkState,
    OperEndpoint,
    ServiceLBState,
)
from contivpy.netmaster import addridx, ipam
from contivpy.netmaster.providers import ProviderBook, check_request

log = logging.getLogger("netmaster.endpoints")

MAX_ATTEMPTS = 50
# allocAddress requests served by one txn. A batch of B requests touches at most B groups and creates
# B allocation records: its txn has 1 + B + B compares (network, groups, records) and 1 + B + B puts.
# etcd refuses a txn whose compares, or whose success ops, number more than --max-txn-ops (default
# 128; each list counts on its own), so 1 + 2B <= 128: B <= 63; 60 gives 121.
# Test: test_tbm_controlplane_scale.test_alloc_batch_of_one_request_per_pool_group_fits_etcd_txn.
MAX_BATCH = 60

# Network/group state records remembered as last written (``Allocator._read_many``); the oldest go first.
KNOWN_MAX = 512

ALLOC_TTL_ENV = "CONTIV_NETMASTER_ALLOC_TTL"
DEFAULT_ALLOC_TTL = 300.0


def alloc_ttl() -> float:
    """Seconds an allocAddress result stays reserved without an endpoint claiming it
    (``CONTIV_NETMASTER_ALLOC_TTL``, default 300; an unusable value keeps the default)."""
    raw = os.environ.get(ALLOC_TTL_ENV, "")
    if not raw:
        return DEFAULT_ALLOC_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not 0 <= ttl < 1e9:
        log.warning("ignoring %s=%r: using %.0f s", ALLOC_TTL_ENV, raw, DEFAULT_ALLOC_TTL)
        return DEFAULT_ALLOC_TTL
    return ttl


def _str(d: dict, name: str, label: str = "") -> str:
    """A request field that must be a string when present (absent/null: "")."""
    v = d.get(name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ValidationError(f"{label or name} must be a string")
    return v


#: The answer of allocAddress / releaseAddress for a NetworkID naming no network (or no group), in the
#: original's words (docs/decisions.md "allocAddress errors"), without its Go stack trace.
KEY_NOT_FOUND = "key not found"


@dataclass
class _Rec:
    """A record read for this attempt (None value = absent)."""

    key: str
    kv: KeyValue | None

    def compare(self) -> Compare:
        if self.kv is None:
            return Compare(self.key, "version", "==", 0)
        return Compare(self.key, "mod", "==", self.kv.mod_revision)


@dataclass
class _AllocReq:
    """One queued allocAddress request (served by whichever request holds the network lock)."""

    network_id: str
    group: str
    preferred: str
    fut: asyncio.Future


MAX_ALIASES = 64
_ALIAS = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")


def check_aliases(value: object) -> list[str]:
    """``Aliases`` of an updateEndpoint request: DNS names (letters, digits, ``-``, ``_``, ``.``;
    at most 253 characters), at most 64; duplicates dropped, order kept."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValidationError("Aliases must be a list of strings")
    if len(value) > MAX_ALIASES:
        raise ValidationError(f"too many Aliases ({len(value)}): at most {MAX_ALIASES}")
    for a in value:
        if not _ALIAS.fullmatch(a):
            raise ValidationError(f"invalid alias {a!r}: a DNS name is expected")
    return list(dict.fromkeys(value))


class Allocator:
    """Address and endpoint allocation for one netmaster (shared by all /plugin/* requests)."""

    def __init__(
        self,
        kv: KVStore,
        cluster_mode: str = "docker",
        provider_update: Callable[[dict], Awaitable[None]] | None = None,
        alloc_ttl_s: float | None = None,
    ) -> None:
        self.kv = kv
        self.alloc_ttl = alloc_ttl() if alloc_ttl_s is None else alloc_ttl_s
        self.cluster_mode = cluster_mode
        self.provider_update = provider_update  # daemon wires ``self.providers.update``
        self.providers = ProviderBook(kv, self.resolve, self._index_built)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, list[_AllocReq]] = {}
        # Network and group state records as this process's last txn wrote them (see _known_read)
        self._known: dict[str, KeyValue] = {}
        self._indexed = False  # the address index (addridx.py) was built: seen once, true for good

    def _lock(self, net_id: str) -> asyncio.Lock:
        lock = self._locks.get(net_id)
        if lock is None:
            lock = self._locks[net_id] = asyncio.Lock()
        return lock

    lock = _lock  # (public: the reclaimer serialises with the requests of this process)

    async def _read(self, key: str) -> _Rec:
        return _Rec(key, await self.kv.get(key))

    async def _read_many(self, wanted: list[str], trust: bool) -> dict[str, _Rec]:
        """The records of ``wanted`` in ONE request. ``trust``: a network or group state record
        that this process's last txn wrote is taken as written, without a read: the txn compares
        its mod revision, so a record changed since (by CRUD, another netmaster, a deletion) fails
        the txn, and the retry reads everything (``trust=False``)."""
        out: dict[str, _Rec] = {}
        read = []
        for k in dict.fromkeys(wanted):
            kv = self._known.get(k) if trust else None
            if kv is not None:
                out[k] = _Rec(k, kv)
            else:
                read.append(k)
        if len(read) == 1:  # (a plain range costs etcd less than a one-key txn)
            out[read[0]] = await self._read(read[0])
            return out
        for i in range(0, len(read), 100):
            chunk = read[i : i + 100]
            for k, kv in zip(chunk, await self.kv.get_many(chunk), strict=True):
                out[k] = _Rec(k, kv)
        return out

    async def _commit(self, recs: list[_Rec], ops: list[Put | Delete]) -> bool:
        """The txn of one attempt (compares on ``recs``); remembers the network and group state
        records it wrote (``_read_many``), forgets those of a failed attempt."""
        ok = False
        try:
            res = await self.kv.txn([r.compare() for r in recs], ops)
            ok = res.succeeded
        finally:
            if not ok:
                for r in recs:
                    self._known.pop(r.key, None)
        if not ok:
            return False
        for op in ops:
            if not op.key.startswith((keys.NETS, keys.EPGS)):
                continue
            self._known.pop(op.key, None)
            if isinstance(op, Put):
                self._known[op.key] = KeyValue(op.key, op.value, 0, res.revision, 0)
        while len(self._known) > KNOWN_MAX:  # oldest first
            del self._known[next(iter(self._known))]
        return True

    # --- id resolution ----------------------------------------------------------------------
    async def resolve(self, network_id: str) -> tuple[str, str, str]:
        """NetworkID -> (network, group, tenant) of an existing network; else ``key not found``
        (the original's answer: its read of the missing state record failed with that text)."""
        net_part, group = network_id, ""
        if ":" in network_id:
            head, _, rest = network_id.partition(":")
            group, _, tenant = rest.rpartition(".")
            if not group:
                raise NotFoundError(KEY_NOT_FOUND)
            if await self.kv.get(keys.net_state(keys.network_id(head, tenant))) is None:
                raise NotFoundError(KEY_NOT_FOUND)
            return head, group, tenant
        idx = len(net_part)
        while True:
            idx = net_part.rfind(".", 0, idx)
            if idx <= 0:
                raise NotFoundError(KEY_NOT_FOUND)
            net, tenant = net_part[:idx], net_part[idx + 1 :]
            if await self.kv.get(keys.net_state(keys.network_id(net, tenant))) is not None:
                return net, group, tenant

    async def _find_by_pool(self, address_pool: str) -> str | None:
        pool, _, tenant = address_pool.partition(":")
        subnet_ip, _, length = pool.partition("/")
        items, _ = await self.kv.get_prefix(keys.NETS)
        for item in items:
            st = NetworkState.from_json(item.value)
            if tenant and st.tenant != tenant:
                continue
            if str(st.subnetLen) == length and netaddr.is_ipv4(subnet_ip):
                mask = netaddr.mask(st.subnetLen)
                if netaddr.ip_to_int(subnet_ip) & mask == netaddr.ip_to_int(st.subnetIP):
                    return st.id
        return None

    # --- allocAddress / releaseAddress ------------------------------------------------------------
    async def alloc_address(self, network_id: str, address_pool: str = "", preferred: str = "") -> dict:
        if not network_id:
            found = await self._find_by_pool(address_pool) if address_pool else None
            if found is None:
                if self.cluster_mode == "swarm-mode" and address_pool:
                    pool = address_pool.partition(":")[0]
                    ip, _, length = pool.partition("/")
                    first = netaddr.int_to_ip((netaddr.ip_to_int(ip) & netaddr.mask(int(length))) + 1)
                    return {"NetworkID": network_id, "IPv4Address": f"{first}/{length}"}
                raise NotFoundError("network not found")  # the original's words (no network has that subnet)
            network_id = found
        try:
            out = await self._alloc_address(network_id, preferred)
        except Exception:  # refused (a cancelled request is not counted)
            metrics.ADDR_ALLOCS.inc("allocAddress", "failed")
            raise
        metrics.ADDR_ALLOCS.inc("allocAddress", "ok")
        return out

    async def _alloc_address(self, network_id: str, preferred: str) -> dict:
        net, group, tenant = await self.resolve(network_id)
        net_id = keys.network_id(net, tenant)
        # Group commit: queue the request, then take the network lock; whoever gets it serves
        # every queued request of the network in ONE read + txn (a waiter finding its own
        # request already served just returns). Same compares and retries as one request.
        req = _AllocReq(network_id, group, preferred, asyncio.get_running_loop().create_future())
        pending = self._pending.setdefault(net_id, [])
        pending.append(req)
        try:
            await self._lock(net_id).acquire()
        except asyncio.CancelledError:
            if req in pending:
                pending.remove(req)
            raise
        try:
            while not req.fut.done():  # (ours may lie beyond the first batch)
                # at most MAX_BATCH per txn: each distinct EPG adds a compare (etcd: <= 128 ops)
                batch, pending[:] = pending[:MAX_BATCH], pending[MAX_BATCH:]
                try:
                    await self._alloc_batch(net_id, tenant, batch)
                finally:
                    for r in batch:  # cancelled half-way: nobody is left waiting forever
                        if not r.fut.done():
                            r.fut.set_exception(ConflictError("concurrent update, please retry"))
        finally:
            self._lock(net_id).release()
        return req.fut.result()

    async def _alloc_batch(self, net_id: str, tenant: str, batch: list[_AllocReq]) -> None:
        stale: dict[str, KeyValue] | None = None  # allocation records read after a lost txn
        for _ in range(MAX_ATTEMPTS):
            nrec = await self._read(keys.net_state(net_id))
            if nrec.kv is None:  # deleted since resolve()
                for r in batch:
                    r.fut.set_exception(NotFoundError(KEY_NOT_FOUND))
                return
            st = NetworkState.from_json(nrec.kv.value)
            epgs: dict[str, tuple[_Rec, EndpointGroupState | None]] = {}
            done: list[tuple[_AllocReq, str]] = []
            failed: list[tuple[_AllocReq, Exception]] = []
            for r in batch:
                epg = None
                if r.group:
                    if r.group not in epgs:
                        erec = await self._read(keys.epg_state(keys.epg_id(r.group, tenant)))
                        ev = None if erec.kv is None else EndpointGroupState.from_json(erec.kv.value)
                        epgs[r.group] = (erec, ev)
                    epg = epgs[r.group][1]
                    if epg is None:  # "<net>:<group>.<tenant>" naming no group: the original's words
                        failed.append((r, NotFoundError(KEY_NOT_FOUND)))
                        continue
                    if (epg.networkName, epg.tenantName) != (st.networkName, st.tenant):
                        # "<net>:<group>.<tenant>" naming a group of ANOTHER network: its pool map is
                        # not this network's (the address would be set there and counted here)
                        msg = f"endpoint group {r.group} belongs to network {epg.networkName}, not {st.networkName}"
                        failed.append((r, ValidationError(msg)))
                        continue
                try:
                    ip = ipam.allocate(st, epg, r.preferred)  # mutates only on success
                except (ContivError, ValueError) as exc:
                    failed.append((r, exc))
                    continue
                done.append((r, ip))
            if done:
                recs = [nrec] + [erec for erec, _ in epgs.values()]
                ops: list[Put | Delete] = [Put(nrec.key, st.to_json())]
                ops += [
                    Put(erec.key, ev.to_json()) for erec, ev in epgs.values() if ev is not None and ev.ipPool
                ]
                # one allocation record per address, created with the bit (a stale record left by a
                # deleted group or network is replaced: compare on what was read after a lost txn)
                now = time.time()
                for r, ip in done:
                    rkey = keys.addr_alloc(net_id, ip)
                    recs.append(_Rec(rkey, (stale or {}).get(rkey)))
                    rec = AddrAllocRecord(net_id, ip, r.group, now, now + self.alloc_ttl)
                    ops.append(Put(rkey, rec.to_json()))
                if not await self._commit(recs, ops):
                    items, _ = await self.kv.get_prefix(keys.addr_alloc_prefix(net_id))
                    stale = {i.key: i for i in items}
                    continue
            for r, ip in done:
                r.fut.set_result({"NetworkID": r.network_id, "IPv4Address": f"{ip}/{st.subnetLen}"})
            for r, exc in failed:
                r.fut.set_exception(exc)
            return
        for r in batch:
            r.fut.set_exception(ConflictError("concurrent update, please retry"))

    async def release_address(self, network_id: str, address: str) -> None:
        """Free an address allocAddress handed out and no endpoint claimed (its record goes in the
        same txn). Without a record there is nothing to release: the address is held by an
        endpoint or a service VIP, is reserved, or was already freed (idempotent)."""
        network_id = network_id.split("|", 1)[0]
        ip = address.split("/", 1)[0]
        if not netaddr.is_ipv4(ip):
            raise ValidationError(f"invalid ip address {address}")
        net, group, tenant = await self.resolve(network_id)
        net_id = keys.network_id(net, tenant)
        async with self._lock(net_id):
            for _ in range(MAX_ATTEMPTS):
                rrec = await self._read(keys.addr_alloc(net_id, ip))
                if rrec.kv is None:
                    return
                rec = AddrAllocRecord.parse(rrec.kv.value) or AddrAllocRecord()
                nrec = await self._read(keys.net_state(net_id))
                recs, ops = [rrec], [Delete(rrec.key)]
                if nrec.kv is not None:
                    st = NetworkState.from_json(nrec.kv.value)
                    held = await self.holders(st, ip)
                    epg, erec = await self._owner_epg(st, rec.group or group, tenant, ip)
                    recs.append(nrec)
                    if erec is not None:
                        recs.append(erec)
                    if not held and ipam.release(st, epg, ip):
                        ops.append(Put(nrec.key, st.to_json()))
                        if erec is not None and epg is not None:
                            ops.append(Put(erec.key, epg.to_json()))
                if await self._commit(recs, ops):
                    metrics.ADDR_RELEASES.inc("releaseAddress")
                    return
        raise ConflictError("concurrent update, please retry")

    async def _index_built(self) -> bool:
        if not self._indexed:
            self._indexed = await self.kv.get(addridx.BUILT) is not None
        return self._indexed

    async def holders(self, st: NetworkState, ip: str, v6: bool = False, skip: str = "") -> list[str]:
        """Who else explains ``ip`` in network ``st``: ids of endpoint states holding it (but
        the one stored as ``skip``) and ``service <name>`` for a service VIP (v4 only). Endpoints:
        one read of the address's keys in the address index (addridx.py), whatever the number of
        endpoints; a scan of the network's endpoint states until the index is built."""
        if await self._index_built():
            out = await addridx.holders(self.kv, st.id, ip, v6, skip)
        else:
            out = []
            items, _ = await self.kv.get_prefix(keys.EPS + st.id + "-")
            for item in items:
                ep = EndpointState.parse(item.value)
                ep_id = item.key[len(keys.EPS) :]
                if ep is None or ep.netID != st.id or ep_id == skip:
                    continue
                if (ep.ipv6Address if v6 else ep.ipAddress) == ip:
                    out.append(ep_id)
        if not v6:
            items, _ = await self.kv.get_prefix(keys.SERVICE_LB)
            for item in items:
                svc = ServiceLBState.parse(item.value)
                if svc is None or (svc.tenantname, svc.subnet) != (st.tenant, st.networkName):
                    continue
                if svc.ipaddress == ip:
                    out.append(f"service {svc.servicename}")
        return out

    async def _owner_epg(
        self, st: NetworkState, group: str, tenant: str, ip: str
    ) -> tuple[EndpointGroupState | None, _Rec | None]:
        """The EPG whose pool holds ``ip`` (named group first, else any EPG of the network). A named
        group whose pool does not hold ``ip`` is not its owner (a record written before the group
        was re-created with another pool: the address is in the network's map)."""
        if group:
            erec = await self._read(keys.epg_state(keys.epg_id(group, tenant)))
            if erec.kv is not None:
                epg = EndpointGroupState.from_json(erec.kv.value)
                if ipam.in_pool(st, epg, ip):
                    return epg, erec
        items, _ = await self.kv.get_prefix(keys.EPGS)
        epgs = [EndpointGroupState.from_json(i.value) for i in items]
        mine = [e for e in epgs if e.networkName == st.networkName and e.tenantName == st.tenant and e.ipPool]
        owner = ipam.owner_of(st, mine, ip)
        if owner is None:
            return None, None
        erec = await self._read(keys.epg_state(owner.id))
        if erec.kv is None:
            return None, None
        return EndpointGroupState.from_json(erec.kv.value), erec

    # --- endpoints ---------------------------------------------------------------------------------
    @staticmethod
    def endpoint_id(net_id: str, ident: str, host: str) -> str:
        """Endpoint state id: ``<net>.<tenant>-<container or EndpointID>``, else (an infra port
        without container) ``<net>.<tenant>-<host>-native-intf``."""
        if ident:
            return f"{net_id}-{ident}"
        if host:
            return f"{net_id}-{host}-native-intf"
        raise ValidationError("EndpointID, ConfigEP.Container or ConfigEP.Host is required")

    async def _network(self, net: str, tenant: str) -> tuple[_Rec, NetworkState]:
        """The network's state record; NotFoundError unless it is exactly (net, tenant)."""
        return self._network_of(await self._read(keys.net_state(keys.network_id(net, tenant))), net, tenant)

    @staticmethod
    def _network_of(nrec: _Rec, net: str, tenant: str) -> tuple[_Rec, NetworkState]:
        st = None if nrec.kv is None else NetworkState.parse(nrec.kv.value)
        if st is None or (st.networkName, st.tenant) != (net, tenant):
            raise NotFoundError(f"network {keys.network_id(net, tenant)} not found")
        return nrec, st

    async def create_endpoint(self, req: dict) -> EndpointState:
        tenant, net = _str(req, "TenantName"), _str(req, "NetworkName")
        if not tenant or not net:
            raise ValidationError("TenantName and NetworkName are required")
        cfg = req.get("ConfigEP")
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ValidationError("ConfigEP must be an object")
        group = _str(req, "ServiceName") or _str(cfg, "ServiceName", "ConfigEP.ServiceName")
        epid, name = _str(req, "EndpointID"), _str(req, "EPCommonName")
        container, host = _str(cfg, "Container", "ConfigEP.Container"), _str(cfg, "Host", "ConfigEP.Host")
        want_ip = _str(cfg, "IPAddress", "ConfigEP.IPAddress")
        want_ip6 = _str(cfg, "IPv6Address", "ConfigEP.IPv6Address")
        net_id = keys.network_id(net, tenant)
        ep_key = keys.ep_state(self.endpoint_id(net_id, container or epid, host))
        nkey = keys.net_state(net_id)
        ekey = keys.epg_state(keys.epg_id(group, tenant)) if group else ""
        rkey = keys.addr_alloc(net_id, want_ip) if want_ip else ""
        async with self._lock(net_id):
            # First attempt: the endpoint key is not read (the txn compares it absent: an existing
            # endpoint fails it), records this process wrote last are trusted (compared), and a
            # new address's allocation record is compared absent (a stale one fails the txn). A
            # failed txn, or a refusal decided on trusted records, re-runs reading everything.
            # Whatever is read is read in one request (get_many).
            trust = True
            for _ in range(MAX_ATTEMPTS):
                got = await self._read_many(
                    [k for k in (ep_key, nkey, ekey, rkey) if k and (k != ep_key or not trust)], trust
                )
                eprec = got.get(ep_key) or _Rec(ep_key, None)
                if eprec.kv is not None:
                    cur = EndpointState.parse(eprec.kv.value)
                    if cur is None or cur.netID != net_id:
                        raise ConflictError(f"endpoint {ep_key[len(keys.EPS) :]} exists in another network")
                    return cur
                try:
                    nrec, st = self._network_of(got[nkey], net, tenant)
                    epg, erec = None, None
                    if group:
                        erec = got[ekey]
                        epg = None if erec.kv is None else EndpointGroupState.parse(erec.kv.value)
                        if epg is None or epg.networkName != net:
                            raise NotFoundError(f"endpoint group {group} not found")
                    taken = st.epAddrCount
                    ip, rrec = await self._take_v4(st, epg, group, want_ip, got.get(rkey), trust)
                    fresh = st.epAddrCount > taken  # a free bit taken, not an allocAddress claimed
                    ip6 = await self._take_v6(st, want_ip6)
                    st.epCount += 1
                    ep = EndpointState(
                        id=ep_key[len(keys.EPS) :],
                        netID=net_id,
                        endpointID=epid or container or f"{host}-native-intf",
                        serviceName=group,
                        endpointGroupId=epg.endpointGroupId if epg else 0,
                        endpointGroupKey=epg.id if epg else "",
                        ipAddress=ip,
                        ipv6Address=ip6,
                        macAddress=netaddr.mac_from_ip(ip),
                        homingHost=host,
                        epCommonName=name,
                    )
                    recs = [eprec, nrec, rrec]
                    ops: list[Put | Delete] = [Put(ep_key, ep.to_json()), Put(nrec.key, st.to_json())]
                    ops += addridx.put_ops(ep, ep.id)  # its address index entries, same txn
                    if rrec.kv is not None:  # claimed (or stale): from now on the endpoint explains the bit
                        ops.append(Delete(rrec.key))
                    if epg is not None and erec is not None:
                        epg.epCount += 1
                        recs.append(erec)
                        ops.append(Put(erec.key, epg.to_json()))
                except (ContivError, ValueError):
                    if not trust:
                        raise
                    trust = False  # decided on records trusted as written: confirm with a read
                    continue
                if await self._commit(recs, ops):
                    if fresh:
                        metrics.ADDR_ALLOCS.inc("createEndpoint", "ok")
                    return ep
                trust = False
        raise ConflictError("concurrent update, please retry")

    async def _take_v4(
        self,
        st: NetworkState,
        epg: EndpointGroupState | None,
        group: str,
        want: str,
        rrec: _Rec | None = None,
        trust: bool = False,
    ) -> tuple[str, _Rec]:
        """The endpoint's IPv4 address (mutating ``st``/``epg`` when a free bit is taken) and the
        allocation record to delete with it (compared even when absent). ``rrec``: the record of
        ``want``, read already; ``trust``: a free bit's record is compared absent without a read."""
        if not want:
            ip = ipam.allocate(st, epg)
            key = keys.addr_alloc(st.id, ip)
            return ip, (_Rec(key, None) if trust else await self._read(key))
        ipam.check_endpoint_address(st, epg, want)
        if rrec is None:
            rrec = await self._read(keys.addr_alloc(st.id, want))
        if not ipam.is_used(st, epg, want):
            ipam.reserve(st, epg, want)
            return want, rrec
        rec = None if rrec.kv is None else AddrAllocRecord.parse(rrec.kv.value)
        if rec is not None and rec.group == group:
            return want, rrec  # allocated by /plugin/allocAddress for this endpoint's group
        if rec is not None and not rec.group and not (epg is not None and epg.ipPool):
            return want, rrec  # allocated in the plain network, same map
        if rec is not None:
            raise ValidationError(f"ip address {want} was allocated for group {rec.group or '(none)'}")
        held = await self.holders(st, want)
        if held and held[0].startswith("service "):
            raise ValidationError(f"ip address {want} is the ip address of {held[0]}")
        if held:
            raise ValidationError(f"ip address {want} is in use by endpoint {held[0]}")
        raise ValidationError(f"ip address {want} is not available")

    async def _take_v6(self, st: NetworkState, want: str) -> str:
        if not want:
            return ipam.allocate_v6(st) if st.ipv6SubnetIP else ""
        ipam.check_endpoint_address_v6(st, want)
        if ipam.is_used_v6(st, want):
            held = await self.holders(st, want, v6=True)
            if held:
                raise ValidationError(f"ip address {want} is in use by endpoint {held[0]}")
            raise ValidationError(f"ip address {want} is not available")
        ipam.reserve_v6(st, want)
        return want

    async def delete_endpoint(self, req: dict) -> EndpointState:
        tenant, net = _str(req, "TenantName"), _str(req, "NetworkName")
        if not tenant or not net:
            raise ValidationError("TenantName and NetworkName are required")
        net_id = keys.network_id(net, tenant)
        epid, host = _str(req, "EndpointID"), _str(req, "Host")
        keep = req.get("KeepAddress") is True
        ep_key = keys.ep_state(self.endpoint_id(net_id, epid, host))
        nkey = keys.net_state(net_id)
        async with self._lock(net_id):
            trust = True  # the network/group records this process wrote last (as create_endpoint)
            for _ in range(MAX_ATTEMPTS):
                got = await self._read_many([ep_key, nkey], trust)
                eprec = got[ep_key]
                if eprec.kv is None and not epid:  # stored by an older version under <host>-native-intf
                    legacy = await self._read(keys.ep_state(f"{host}-native-intf"))
                    old = None if legacy.kv is None else EndpointState.parse(legacy.kv.value)
                    if old is not None and old.netID == net_id:
                        ep_key, eprec = legacy.key, legacy
                ep = None if eprec.kv is None else EndpointState.parse(eprec.kv.value)
                if ep is not None and ep.netID != net_id:
                    ep = None  # another network's key (never deleted from here)
                elif eprec.kv is not None and ep is None:
                    ep = EndpointState(id=ep_key[len(keys.EPS) :], netID=net_id)  # unreadable: drop it
                if ep is None:
                    await self._network(net, tenant)  # an unknown network is an error, not a no-op
                    if eprec.kv is None:  # (a retried delete still drops a provider left behind)
                        await self.providers.remove(tenant, ep_key[len(keys.EPS) :], ep_gone=True)
                    return EndpointState()
                nrec = got[nkey]
                ep_sid = ep_key[len(keys.EPS) :]  # the id it is stored (and indexed) under
                recs, ops = [eprec], [Delete(ep_key), *addridx.delete_ops(ep, ep_sid)]
                if nrec.kv is not None:
                    st = NetworkState.from_json(nrec.kv.value)
                    epg, erec = None, None
                    if ep.endpointGroupKey:
                        ekey = keys.epg_state(ep.endpointGroupKey)
                        erec = (await self._read_many([ekey], trust))[ekey]
                        if erec.kv is not None:
                            epg = EndpointGroupState.from_json(erec.kv.value)
                            epg.epCount = max(0, epg.epCount - 1)
                    # another endpoint holding the same address (state older than the address
                    # rule) keeps it: its bit stays set
                    freed = False
                    if ep.ipAddress and not await self.holders(st, ep.ipAddress, skip=ep_sid):
                        if not keep:
                            freed = ipam.release(st, epg, ep.ipAddress)
                        elif ipam.releasable(st, epg, ep.ipAddress):
                            # handed back to the caller's IPAM: an allocation record explains the
                            # bit until its releaseAddress (or the reclaimer, once it expires)
                            rrec = await self._read(keys.addr_alloc(net_id, ep.ipAddress))
                            now = time.time()
                            back = AddrAllocRecord(
                                net_id, ep.ipAddress, ep.serviceName, now, now + self.alloc_ttl
                            )
                            recs.append(rrec)
                            ops.append(Put(rrec.key, back.to_json()))
                    if ep.ipv6Address and not await self.holders(st, ep.ipv6Address, v6=True, skip=ep_sid):
                        ipam.release_v6(st, ep.ipv6Address)
                    st.epCount = max(0, st.epCount - 1)
                    recs.append(nrec)
                    ops.append(Put(nrec.key, st.to_json()))
                    if epg is not None and erec is not None:
                        recs.append(erec)
                        ops.append(Put(erec.key, epg.to_json()))
                if await self._commit(recs, ops):
                    if nrec.kv is not None and freed:
                        metrics.ADDR_RELEASES.inc("deleteEndpoint")
                    await self.providers.remove(tenant, ep.id, ep_gone=True)  # no longer a provider
                    return ep
                trust = False
        raise ConflictError("concurrent update, please retry")

    async def update_endpoint(self, req: dict) -> dict:
        """Container start/die: the container's id and name go into the endpoint state (what the
        name servers of every host answer from), with its labels on ``start``; service-provider
        bookkeeping (providers.py) is delegated to ``provider_update``. ``EndpointID`` is the
        endpoint state id ``<net>.<tenant>-<epid>``. contivpy's ``Aliases`` (the container's
        ``--network-alias`` names) are stored with the endpoint, so every host's name server answers
        them too. Every field is checked before any write."""
        ep_id, name, cid = (req.get(f) or "" for f in ("EndpointID", "EPCommonName", "ContainerID"))
        for field, v in (("EndpointID", ep_id), ("EPCommonName", name), ("ContainerID", cid)):
            if not isinstance(v, str):
                raise ValidationError(f"{field} must be a string")
        aliases = check_aliases(req.get("Aliases"))
        event, labels = check_request(req)
        if event == "start" and labels:
            await self.providers.check_start(req)
        if ep_id and event != "die" and (name or cid or labels or aliases):
            await self._set_container(ep_id, name, cid, labels, aliases)
        if self.provider_update is not None:
            await self.provider_update(req)
        return {"IPAddress": req.get("IPAddress", "")}

    async def _set_container(
        self, ep_id: str, name: str, cid: str, labels: dict | None = None, aliases: list | None = None
    ) -> None:
        key = keys.ep_state(ep_id)
        for _ in range(MAX_ATTEMPTS):
            rec = await self._read(key)
            if rec.kv is None:
                raise NotFoundError(f"endpoint {ep_id} not found")
            ep = EndpointState.from_json(rec.kv.value)
            want = (
                name or ep.epCommonName,
                cid or ep.containerId,
                labels or ep.labels,
                aliases or ep.aliases,
            )
            if (ep.epCommonName, ep.containerId, ep.labels, ep.aliases) == want:
                return
            ep.epCommonName, ep.containerId, ep.labels, ep.aliases = want
            if (await self.kv.txn([rec.compare()], [Put(key, ep.to_json())])).succeeded:
                return
        raise ConflictError("concurrent update, please retry")


async def endpoint_inspect(kv: KVStore, key: str) -> dict:
    """``/api/v1/inspect/endpoints/<key>/``: the first endpoint whose endpoint id, container id or
    name contains ``key`` -> ``{"Oper": {...}}`` (virtualPort from the host's oper record)."""
    from contivpy.netmaster.hooks.network import endpoint_oper

    items, _ = await kv.get_prefix(keys.EPS)
    for item in items:
        ep = EndpointState.from_json(item.value)
        if key in ep.endpointID or key in ep.containerId or key in ep.epCommonName:
            oper = await read_oper_endpoint(kv, ep.id)
            port = oper.portName if oper is not None else ""
            return {"Oper": endpoint_oper(ep, "v" + port if port else "", key=key).to_dict()}
    raise NotFoundError("endpoint not found")


async def read_oper_endpoint(kv: KVStore, ep_id: str) -> OperEndpoint | None:
    """The owning host's ``/contiv.io/oper/eps/<id>`` record; None when absent or unreadable."""
    item = await kv.get(keys.ep_oper(ep_id))
    if item is None:
        return None
    try:
        return OperEndpoint.from_json(item.value)
    except ValueError:
        log.warning("ignoring malformed oper record of endpoint %s", ep_id)
        return None


__all__ = ["Allocator", "endpoint_inspect", "read_oper_endpoint", "MAX_ATTEMPTS"]
