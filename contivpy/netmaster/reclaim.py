"""Reclaim of leaked address allocations (run by the leader only).

``/plugin/allocAddress`` sets an address's bit and creates its allocation record
``/contiv.io/state/addrAlloc/<net>.<tenant>/<ip>`` (``AddrAllocRecord``, with ``expires``) in one
txn; an endpoint claiming the address deletes the record in its own txn. A record still there after
``expires`` belongs to a reply that was lost (client or netmaster crash) or to a container that
never started: this module deletes it and frees its bit in ONE CAS txn.

Safety (see the invariant in ``endpoints.py``)
- The txn compares the record's and the network's (and the pool group's) mod revisions as read, so
  anything that touched them in between (a claim deletes the record; every endpoint create/delete
  and every VIP change writes the network record) makes it re-run on fresh state.
- Before freeing, the endpoints and service VIPs of the network are re-checked: an address one of
  them holds is never freed (only the record is dropped).
- A record whose network is gone, or whose bit is already clear (stale), is just deleted.
- It takes the Allocator's per-network lock, so it never races this process's own requests.
Unexplained bits (no record, endpoint, VIP or reservation: allocAddress results from before the
records existed) are freed only when one bit stays unexplained for ``ttl`` seconds, seen in at
least two passes (first sighting kept in memory: a new leader starts over), and then by a txn that
re-reads the bitmap FIRST and the explanations after it, and compares the bitmap's mod revision.
That is safe because every change of an explanation (endpoint create/delete, VIP create/delete,
record create by allocAddress, claim) rewrites the network record in the same txn: one that
happened after the bitmap was read fails the compare. Reserved here: network, broadcast,
gateway, outside the range, and, in the network map, every group ip-pool address.

Period: ``min(60, max(0.5, ttl / 4))`` seconds (ttl = ``CONTIV_NETMASTER_ALLOC_TTL``, default 300).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from contivpy.common import netaddr
from contivpy.common.errors import ContivError
from contivpy.common.kv.base import Compare, Delete, Put
from contivpy.model import keys
from contivpy.model.state import (
    AddrAllocRecord,
    EndpointGroupState,
    EndpointState,
    NetworkState,
    ServiceLBState,
)
from contivpy.netmaster import ipam
from contivpy.netmaster.bitset import Bitset
from contivpy.netmaster.endpoints import MAX_ATTEMPTS, Allocator

log = logging.getLogger("netmaster.reclaim")


def period(ttl: float) -> float:
    return min(60.0, max(0.5, ttl / 4))


def _expires(value: str) -> float:
    rec = AddrAllocRecord.parse(value)
    try:
        return float(rec.expires) if rec is not None else 0.0
    except (TypeError, ValueError):
        return 0.0  # unreadable record: treated as expired


async def reclaim_record(alloc: Allocator, key: str, now: float | None = None) -> bool:
    """Delete the allocation record ``key`` if it has expired, freeing its bit unless an endpoint
    or a service VIP holds the address. True if a bit was freed."""
    net_id, _, ip = key[len(keys.ADDR_ALLOC) :].rpartition("/")
    kv = alloc.kv
    async with alloc.lock(net_id):
        for _ in range(MAX_ATTEMPTS):
            rkv = await kv.get(key)
            if rkv is None or _expires(rkv.value) > (time.time() if now is None else now):
                return False
            compares = [Compare(key, "mod", "==", rkv.mod_revision)]
            ops: list[Put | Delete] = [Delete(key)]
            nkv = await kv.get(keys.net_state(net_id))
            st = None if nkv is None else NetworkState.parse(nkv.value)
            freed = False
            if nkv is not None and st is not None and st.subnetIP:
                compares.append(Compare(nkv.key, "mod", "==", nkv.mod_revision))
                rec = AddrAllocRecord.parse(rkv.value) or AddrAllocRecord()
                epg, ekv = None, None
                if rec.group:
                    ekv = await kv.get(keys.epg_state(keys.epg_id(rec.group, st.tenant)))
                    epg = None if ekv is None else EndpointGroupState.parse(ekv.value)
                    if not ipam.in_pool(st, epg, ip):  # (re-created group: the address is in the network map)
                        epg, ekv = None, None
                if ekv is not None:
                    compares.append(Compare(ekv.key, "mod", "==", ekv.mod_revision))
                try:
                    held = await alloc.holders(st, ip)
                    if epg is None and not held:  # a stale record inside a group's pool: not ours to free
                        owner, _ = await alloc._owner_epg(st, "", st.tenant, ip)
                        held = [f"the ip pool of group {owner.groupName}"] if owner is not None else []
                    if held:
                        log.warning("allocation %s: address held by %s; dropping the record", key, held[0])
                    else:
                        freed = ipam.release(st, epg, ip)
                except (ContivError, ValueError) as exc:  # an address outside the subnet: nothing to free
                    log.warning("allocation %s: %s", key, exc)
                if freed:
                    ops.append(Put(nkv.key, st.to_json()))
                    if ekv is not None and epg is not None:
                        ops.append(Put(ekv.key, epg.to_json()))
            if (await kv.txn(compares, ops)).succeeded:
                if freed:
                    log.info("reclaimed address %s of %s (allocated, never claimed)", ip, net_id)
                return freed
    return False


async def scan_once(alloc: Allocator, now: float | None = None) -> int:
    """One pass over every allocation record; returns the number of addresses freed."""
    items, _ = await alloc.kv.get_prefix(keys.ADDR_ALLOC)
    t = time.time() if now is None else now
    n = 0
    for item in items:
        if _expires(item.value) <= t and await reclaim_record(alloc, item.key, now):
            n += 1
    return n


# --- unexplained bits --------------------------------------------------------------------------


async def _explanations(kv, st: NetworkState) -> set[str]:
    """Addresses of network ``st`` held by an endpoint, a service VIP or an allocation record."""
    out: set[str] = set()
    items, _ = await kv.get_prefix(keys.EPS + st.id + "-")
    for i in items:
        ep = EndpointState.parse(i.value)
        if ep is not None and ep.netID == st.id:
            out.add(ep.ipAddress)
    items, _ = await kv.get_prefix(keys.SERVICE_LB)
    for i in items:
        svc = ServiceLBState.parse(i.value)
        if svc is not None and (svc.tenantname, svc.subnet) == (st.tenant, st.networkName):
            out.add(svc.ipaddress)
    items, _ = await kv.get_prefix(keys.addr_alloc_prefix(st.id))
    out.update(i.key.rpartition("/")[2] for i in items)
    return out


def _unexplained(st: NetworkState, pools: list[EndpointGroupState], owner: str, held: set[str]) -> set[int]:
    """Set bits of the network map (``owner`` "") or of pool group ``owner``'s map that nothing
    explains."""
    sn = ipam.subnet_of(st)
    epg = next((g for g in pools if g.groupName == owner), None) if owner else None
    bm = Bitset.decode(epg.epgIpAllocMap if epg is not None else st.ipAllocMap)
    ranges = [] if owner else [netaddr.parse_ip_pool(g.ipPool, sn) for g in pools]
    out = set()
    for hid in bm.iter_set():
        if hid >= sn.size or ipam._is_reserved(st, epg, hid) or any(lo <= hid <= hi for lo, hi in ranges):
            continue
        if netaddr.host_ip(sn.subnet_ip, hid) not in held:
            out.add(hid)
    return out


async def _network_view(kv, net_id: str):
    """Bitmaps first (network record, then its pool groups), explanations after them."""
    nkv = await kv.get(keys.net_state(net_id))
    st = None if nkv is None else NetworkState.parse(nkv.value)
    if st is None or not st.subnetIP:
        return None
    items, _ = await kv.get_prefix(keys.EPGS)
    groups = [(i, EndpointGroupState.parse(i.value)) for i in items]
    pools = [
        (i, g)
        for i, g in groups
        if g is not None and g.ipPool and (g.networkName, g.tenantName) == (st.networkName, st.tenant)
    ]
    return nkv, st, pools, await _explanations(kv, st)


async def _free_unexplained(alloc: Allocator, net_id: str, owner: str, hids: set[int]) -> int:
    """Free those of ``hids`` still unexplained, in one txn comparing the bitmap records."""
    kv = alloc.kv
    async with alloc.lock(net_id):
        for _ in range(5):
            view = await _network_view(kv, net_id)
            if view is None:
                return 0
            nkv, st, pools, held = view
            gkv = next((i for i, g in pools if g.groupName == owner), None) if owner else None
            if owner and gkv is None:
                return 0
            epg = EndpointGroupState.parse(gkv.value) if gkv is not None else None
            todo = hids & _unexplained(st, [g for _, g in pools], owner, held)
            sn = ipam.subnet_of(st)
            freed = [hid for hid in sorted(todo) if ipam.release(st, epg, netaddr.host_ip(sn.subnet_ip, hid))]
            if not freed:
                return 0
            compares = [Compare(nkv.key, "mod", "==", nkv.mod_revision)]
            ops: list[Put | Delete] = [Put(nkv.key, st.to_json())]
            if gkv is not None and epg is not None:
                compares.append(Compare(gkv.key, "mod", "==", gkv.mod_revision))
                ops.append(Put(gkv.key, epg.to_json()))
            if (await kv.txn(compares, ops)).succeeded:
                ips = ", ".join(netaddr.host_ip(sn.subnet_ip, h) for h in freed)
                log.warning(
                    "freed addresses of %s%s that nothing held: %s",
                    net_id,
                    f" ({owner})" if owner else "",
                    ips,
                )
                return len(freed)
    return 0


class Reclaimer:
    """Expired allocation records, then unexplained bits (first sightings kept in memory)."""

    def __init__(self, alloc: Allocator) -> None:
        self.alloc = alloc
        self.first_seen: dict[tuple[str, str], dict[int, float]] = {}

    async def scan(self, now: float | None = None) -> int:
        t = time.time() if now is None else now
        n = await scan_once(self.alloc, t)
        items, _ = await self.alloc.kv.get_prefix(keys.NETS)
        seen: dict[tuple[str, str], dict[int, float]] = {}
        for item in items:
            net_id = item.key[len(keys.NETS) :]
            view = await _network_view(self.alloc.kv, net_id)
            if view is None:
                continue
            _, st, pools, held = view
            for owner in [""] + [g.groupName for _, g in pools]:
                key = (net_id, owner)
                prev = self.first_seen.get(key, {})
                cur = {h: prev.get(h, t) for h in _unexplained(st, [g for _, g in pools], owner, held)}
                ripe = {h for h, first in cur.items() if first < t and first <= t - self.alloc.alloc_ttl}
                if ripe:
                    n += await _free_unexplained(self.alloc, net_id, owner, ripe)
                    cur = {h: f for h, f in cur.items() if h not in ripe}
                if cur:
                    seen[key] = cur
        self.first_seen = seen
        return n


async def run(alloc: Allocator, is_leader: Callable[[], bool]) -> None:
    """The leader's reclaim loop: returns as soon as this process is no longer the leader."""
    every = period(alloc.alloc_ttl)
    reclaimer = Reclaimer(alloc)
    while is_leader():
        try:
            await reclaimer.scan()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # store trouble: the next pass retries
            log.warning("allocation reclaim pass failed: %s", exc)
        await asyncio.sleep(every)


__all__ = ["run", "scan_once", "reclaim_record", "period", "Reclaimer"]
