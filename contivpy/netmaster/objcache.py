"""Read cache of the model objects, derived from etcd by list-then-watch (never ahead of it).

``ObjCache.run()`` mirrors ``/contiv.io/obj/`` (``common.watch.list_and_watch``): the model
objects ``/contiv.io/obj/modeldb/`` into ``type -> {key: json text}`` and the link keys of the
indexed link sets ``/contiv.io/obj/links/`` into ``type -> {owner key: {set: {member: type}}}``,
both at the same revision. Reads use it only when it is provably fresh for this process:
``fresh(min_rev)`` is true once the mirror has applied every change up to ``min_rev``, the
revision of the last txn of this process that touched model objects (read-your-writes). Until
then (start-up, store outage, a lagging watch) callers fall back to reading etcd directly, so a
cache miss costs speed, never correctness. Writes of other processes (a previous leader) arrive
through the watch like any other change.
"""

from __future__ import annotations

import asyncio
import logging

from contivpy.common.kv.base import KVStore
from contivpy.model import keys

log = logging.getLogger("netmaster.objcache")


class ObjCache:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self.by_type: dict[str, dict[str, str]] = {}
        self.links: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
        self.revision = 0
        self.synced = False
        self._changed = asyncio.Event()

    def _put(self, ek: str, value: str | None) -> None:
        if ek.startswith(keys.LINKS):
            self._put_link(ek, value)
            return
        if not ek.startswith(keys.OBJ):
            return
        rest = ek[len(keys.OBJ) :]
        if "/" not in rest:
            return
        obj_type, key = rest.split("/", 1)
        bucket = self.by_type.setdefault(obj_type, {})
        if value is None:
            bucket.pop(key, None)
        else:
            bucket[key] = value

    def _put_link(self, ek: str, value: str | None) -> None:
        parts = keys.parse_link_key(ek)
        if parts is None:
            return
        otype, okey, name, member = parts
        owners = self.links.setdefault(otype, {})
        if value is not None:
            owners.setdefault(okey, {}).setdefault(name, {})[member] = value
            return
        sets = owners.get(okey)
        if sets is not None and name in sets:
            sets[name].pop(member, None)
            if not sets[name]:
                del sets[name]
            if not sets:
                del owners[okey]

    async def run(self) -> None:
        from contivpy.common.watch import Snapshot, list_and_watch

        async with list_and_watch(self.kv, keys.OBJ_ROOT) as it:
            async for item in it:
                if isinstance(item, Snapshot):
                    self.by_type = {}
                    self.links = {}
                    for ek, value in item.items.items():
                        self._put(ek, value)
                    self.revision = item.revision
                    self.synced = True
                else:
                    self._put(item.key, None if item.type == "delete" else item.value)
                    self.revision = max(self.revision, item.mod_revision)
                self._changed.set()
                self._changed = asyncio.Event()

    def fresh(self, min_rev: int) -> bool:
        return self.synced and self.revision >= min_rev

    async def wait_fresh(self, min_rev: int, timeout: float = 0.2) -> bool:
        """Wait a little for the watch to catch up with our own last write."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.fresh(min_rev):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def list_raw(self, obj_type: str) -> list[str]:
        bucket = self.by_type.get(obj_type, {})
        return [bucket[k] for k in sorted(bucket)]

    def keys_with_prefix(self, obj_type: str, prefix: str) -> list[str]:
        """Keys of ``obj_type`` starting with ``prefix`` (a tenant's derived link sets)."""
        return [k for k in self.by_type.get(obj_type, {}) if k.startswith(prefix)]

    def has_links(self, obj_type: str) -> bool:
        return bool(self.links.get(obj_type))

    def links_of(self, obj_type: str, key: str) -> dict[str, dict[str, str]]:
        """The owner's link keys: set -> {member key: member type} (do not modify)."""
        return self.links.get(obj_type, {}).get(key, {})

    def get_raw(self, obj_type: str, key: str) -> str | None:
        return self.by_type.get(obj_type, {}).get(key)


__all__ = ["ObjCache"]
