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
Not done: bits set in a bitmap that nothing explains (no record, endpoint, VIP or reservation:
allocations made before records existed) are left alone and only logged; see decisions.md.

Period: ``min(60, max(0.5, ttl / 4))`` seconds (ttl = ``CONTIV_NETMASTER_ALLOC_TTL``, default 300).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from contivpy.common.errors import ContivError
from contivpy.common.kv.base import Compare, Delete, Put
from contivpy.model import keys
from contivpy.model.state import AddrAllocRecord, EndpointGroupState, NetworkState
from contivpy.netmaster import ipam
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
                    if epg is None or not epg.ipPool or epg.networkName != st.networkName:
                        epg, ekv = None, None
                if ekv is not None:
                    compares.append(Compare(ekv.key, "mod", "==", ekv.mod_revision))
                try:
                    held = await alloc.holders(st, ip)
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


async def run(alloc: Allocator, is_leader: Callable[[], bool]) -> None:
    """The leader's reclaim loop: returns as soon as this process is no longer the leader."""
    every = period(alloc.alloc_ttl)
    while is_leader():
        try:
            await scan_once(alloc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # store trouble: the next pass retries
            log.warning("allocation reclaim pass failed: %s", exc)
        await asyncio.sleep(every)


__all__ = ["run", "scan_once", "reclaim_record", "period"]
