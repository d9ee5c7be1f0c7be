"""Per-host VRF ids: the tenant number carried in OpenFlow metadata bits 32..39 (docs/ovs-pipeline.md).

Every flow of a tenant's networks, endpoints and services carries its VRF id, so the id of a tenant must
not change while the host runs, nor across an agent restart: a restart replays the networks in etcd key
order, which need not be the order they were first seen in, and ids given in replay order would rewrite
every flow of both tenants (docs/decisions.md, "VRF ids").

Design and invariants:
- the map ``tenant -> id`` (1..255) lives in the host's ``/contiv.io/oper/ovs-driver/<host>`` record
  (field ``vrfIds``, next to the port counter); only this host's agent writes it, always by
  compare-and-swap on the record's mod revision (the port allocator writes the same record the same way,
  so neither loses the other's update);
- ``ensure(tenant)`` returns the recorded id, or allocates the lowest free one and commits it *before*
  any flow uses it (side effects after the commit); two tenants never share an id;
- ``release(tenant)`` removes the entry once the tenant's last network has left this host; an id is
  never reused while a network of its tenant is programmed;
- ``known`` caches what this process read or wrote (the record is the truth; nobody else writes these
  entries, so the cache cannot diverge from it).
"""

from __future__ import annotations

import logging

from contivpy.common.errors import ResourceExhaustedError
from contivpy.common.kv.base import Compare, KVStore, Put
from contivpy.model import keys
from contivpy.model.state import OvsDriverOper

log = logging.getLogger(__name__)
MAX_VRF = 255


class VrfAllocator:
    def __init__(self, kv: KVStore, host: str) -> None:
        self.kv = kv
        self.host = host
        self.key = keys.ovs_driver_oper(host)
        self.known: dict[str, int] = {}

    async def _read(self):
        kv = await self.kv.get(self.key)
        rec = OvsDriverOper.from_json(kv.value) if kv else OvsDriverOper(id=self.host)
        return kv, rec

    async def _commit(self, kv, rec: OvsDriverOper) -> bool:
        cmp = Compare(self.key, "mod", "==", kv.mod_revision) if kv else Compare(self.key, "version", "==", 0)
        return (await self.kv.txn([cmp], [Put(self.key, rec.to_json())])).succeeded

    async def ensure(self, tenant: str) -> int:
        """The tenant's VRF id on this host, allocated and persisted on first use."""
        if tenant in self.known:
            return self.known[tenant]
        while True:
            kv, rec = await self._read()
            vid = rec.vrfIds.get(tenant)
            if vid is None:
                used = set(rec.vrfIds.values())
                vid = next((i for i in range(1, MAX_VRF + 1) if i not in used), None)
                if vid is None:
                    raise ResourceExhaustedError(f"no free VRF id (max {MAX_VRF} tenants per host)")
                rec.vrfIds[tenant] = vid
                if not await self._commit(kv, rec):
                    continue
                log.info("tenant %s: VRF id %d", tenant, vid)
            self.known[tenant] = vid
            return vid

    async def release(self, tenant: str) -> None:
        """Forget the tenant's id (its last network left this host); absent is a no-op."""
        self.known.pop(tenant, None)
        while True:
            kv, rec = await self._read()
            if kv is None or rec.vrfIds.pop(tenant, None) is None:
                return
            if await self._commit(kv, rec):
                log.info("tenant %s: VRF id released", tenant)
                return

    async def prune(self, keep: set[str]) -> list[str]:
        """After a restart's full sync: release the ids of tenants without a network any more."""
        _kv, rec = await self._read()
        gone = sorted(t for t in rec.vrfIds if t not in keep)
        for t in gone:
            await self.release(t)
        return gone
