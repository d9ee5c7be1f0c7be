"""MemoryKV: an in-process KVStore with etcd v3 semantics (asyncio only, no I/O).

Design
- ``_data`` maps key -> KeyValue; ``_rev`` is the single store revision (starts at 1, as an
  empty etcd). Every mutating call that changes something bumps the revision exactly once,
  whatever the number of keys it touches (a txn, a delete_prefix, a lease expiry).
- Every change is appended to an event log ``_log`` (one Event per key, in revision order).
  ``watch_prefix(prefix, start_revision)`` replays the log from ``start_revision`` and then
  follows live changes through a per-watcher ``asyncio.Queue``. Replay and registration happen
  without an ``await`` in between, so no change is lost or duplicated.
- The log keeps at most ``history_limit`` events; ``compact(rev)`` trims it explicitly. A watch
  asking for a trimmed revision raises ``CompactedError`` (as etcd does after compaction).
- Leases: id -> (ttl, deadline, keys). Expiry is checked lazily at the start of every call and by
  a reaper task (started with the first lease); an expired lease deletes its keys in one revision.

Invariants
- No method awaits while holding a partially applied change: every mutation is synchronous
  between two awaits, which makes each call atomic with respect to other tasks.
- ``close()`` ends the reaper and every open watch iterator (they finish with StoreError).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from contivpy.common.errors import CompactedError, StoreError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, Put, TxnResult

_CLOSED = object()


def _cmp(actual: str | int, op: str, expected: str | int) -> bool:
    if op == "==":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "<":
        return actual < expected  # type: ignore[operator]
    if op == ">":
        return actual > expected  # type: ignore[operator]
    raise StoreError(f"invalid compare operator {op!r}")


class MemoryKV:
    """In-process KVStore. Create it inside a running event loop or before one; it binds lazily."""

    def __init__(self, history_limit: int = 100_000) -> None:
        self._data: dict[str, KeyValue] = {}
        self._rev = 1
        self._log: list[Event] = []
        self._compacted = 0  # every revision <= this is gone from the log
        self._history_limit = history_limit
        self._leases: dict[int, list[Any]] = {}  # id -> [ttl, deadline, set(keys)]
        self._lease_ids = itertools.count(0x1A2B0000)
        self._watchers: list[tuple[str, asyncio.Queue[Any]]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # ---- helpers -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")
        self._expire()

    def _commit(self, events: list[Event]) -> None:
        """Record the events of one revision (already applied to _data) and notify watchers."""
        if not events:
            return
        self._log.extend(events)
        overflow = len(self._log) - self._history_limit
        if overflow > 0:
            self._compacted = self._log[overflow - 1].mod_revision
            # Never split a revision: drop all events up to and including that revision.
            self._log = [e for e in self._log if e.mod_revision > self._compacted]
        for prefix, queue in self._watchers:
            for ev in events:
                if ev.key.startswith(prefix):
                    queue.put_nowait(ev)

    def _apply_put(self, rev: int, key: str, value: str, lease: int) -> Event:
        if lease and lease not in self._leases:
            raise StoreError("etcdserver: requested lease not found")
        old = self._data.get(key)
        if old is not None and old.lease and old.lease in self._leases:
            self._leases[old.lease][2].discard(key)
        if lease:
            self._leases[lease][2].add(key)
        create = old.create_revision if old else rev
        version = old.version + 1 if old else 1
        self._data[key] = KeyValue(key, value, create, rev, version, lease)
        return Event("put", key, value, rev, old.value if old else None)

    def _apply_delete(self, rev: int, key: str) -> Event | None:
        old = self._data.pop(key, None)
        if old is None:
            return None
        if old.lease and old.lease in self._leases:
            self._leases[old.lease][2].discard(key)
        return Event("delete", key, "", rev, old.value)

    def _keys_under(self, prefix: str) -> list[str]:
        return sorted(k for k in self._data if k.startswith(prefix))

    def _expire(self) -> None:
        now = time.monotonic()
        for lease_id in [i for i, v in self._leases.items() if v[1] <= now]:
            self._drop_lease(lease_id)

    def _drop_lease(self, lease_id: int) -> None:
        _, _, keys = self._leases.pop(lease_id)
        rev = self._rev + 1
        events = [e for k in sorted(keys) if (e := self._apply_delete(rev, k)) is not None]
        if events:
            self._rev = rev
            self._commit(events)

    async def _reap(self) -> None:
        while self._leases:
            nearest = min(v[1] for v in self._leases.values())
            await asyncio.sleep(max(0.0, min(nearest - time.monotonic(), 0.5)) + 0.01)
            self._expire()
        self._reaper = None

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="memorykv-lease-reaper")

    # ---- KVStore -------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        return self._data.get(key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        return [self._data[k] for k in self._keys_under(prefix)], self._rev

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        self._check_open()
        if len(keys) > 100:
            raise StoreError("get_many: at most 100 keys per request")
        return [self._data.get(k) for k in keys]

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[KeyValue]:
        self._check_open()
        ks = sorted(k for k in self._data if start <= k < end)
        return [self._data[k] for k in (ks[:limit] if limit else ks)]

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        self._check_open()
        ev = self._apply_put(self._rev + 1, key, value, lease)
        self._rev += 1
        self._commit([ev])
        return self._rev

    async def delete(self, key: str) -> bool:
        self._check_open()
        ev = self._apply_delete(self._rev + 1, key)
        if ev is None:
            return False
        self._rev += 1
        self._commit([ev])
        return True

    async def delete_prefix(self, prefix: str) -> int:
        self._check_open()
        rev = self._rev + 1
        events = [e for k in self._keys_under(prefix) if (e := self._apply_delete(rev, k)) is not None]
        if events:
            self._rev = rev
            self._commit(events)
        return len(events)

    def _compare(self, c: Compare) -> bool:
        kv = self._data.get(c.key)
        if c.target == "value":
            return kv is not None and _cmp(kv.value, c.op, str(c.value))
        if c.target == "version":
            return _cmp(kv.version if kv else 0, c.op, int(c.value))
        if c.target == "create":
            return _cmp(kv.create_revision if kv else 0, c.op, int(c.value))
        if c.target == "mod":
            return _cmp(kv.mod_revision if kv else 0, c.op, int(c.value))
        if c.target == "lease":
            return _cmp(kv.lease if kv else 0, c.op, int(c.value))
        raise StoreError(f"invalid compare target {c.target!r}")

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult:
        self._check_open()
        ok = all(self._compare(c) for c in compares)
        ops = success if ok else failure
        for op in ops:  # validate before touching anything: a txn is all or nothing
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise StoreError("etcdserver: requested lease not found")
            if not isinstance(op, Put | Delete):
                raise StoreError(f"invalid txn operation {op!r}")
        rev = self._rev + 1
        events: list[Event] = []
        for op in ops:
            if isinstance(op, Put):
                events.append(self._apply_put(rev, op.key, op.value, op.lease))
            else:
                keys = self._keys_under(op.key) if op.prefix else [op.key]
                events.extend(e for k in keys if (e := self._apply_delete(rev, k)) is not None)
        if events:
            self._rev = rev
            self._commit(events)
        return TxnResult(ok, self._rev)

    async def grant_lease(self, ttl: int) -> int:
        self._check_open()
        if ttl <= 0:
            raise StoreError("lease TTL must be positive")
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = [ttl, time.monotonic() + ttl, set()]
        self._ensure_reaper()
        return lease_id

    async def keepalive(self, lease_id: int) -> None:
        self._check_open()
        entry = self._leases.get(lease_id)
        if entry is None:
            raise StoreError(f"lease {lease_id:x} not found (expired or revoked)")
        entry[1] = time.monotonic() + entry[0]

    async def revoke_lease(self, lease_id: int) -> None:
        self._check_open()
        if lease_id not in self._leases:
            raise StoreError("etcdserver: requested lease not found")
        self._drop_lease(lease_id)

    def watch_prefix(
        self, prefix: str, start_revision: int = 0, *, prev_kv: bool = True
    ) -> AsyncIterator[Event]:
        # (prev_kv: the previous value costs nothing here; it is always given)
        # "from now" is fixed when watch_prefix is called, not when iteration starts.
        return _MemoryWatch(self, prefix, start_revision if start_revision > 0 else self._rev + 1)

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for _, queue in self._watchers:
            queue.put_nowait(_CLOSED)

    # ---- extras (not in the protocol) ----------------------------------------------------

    @property
    def revision(self) -> int:
        return self._rev

    async def compact(self, revision: int) -> None:
        """Forget the history of every revision < ``revision`` (as ``etcdctl compact``)."""
        self._compacted = max(self._compacted, revision - 1)
        self._log = [e for e in self._log if e.mod_revision > self._compacted]


class _MemoryWatch:
    """Watch iterator; cancelling a pending ``__anext__`` (e.g. a timeout) does not end it."""

    def __init__(self, store: MemoryKV, prefix: str, start_revision: int) -> None:
        self._store = store
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._entry = (prefix, self._queue)
        self._error: Exception | None = None
        self._closed = False
        if store._closed:
            self._error = StoreError("store is closed")
        elif 0 < start_revision <= store._compacted:
            self._error = CompactedError(
                f"required revision {start_revision} has been compacted (compacted at {store._compacted})",
                store._compacted,
            )
        else:
            for ev in store._log:
                if ev.mod_revision >= start_revision and ev.key.startswith(prefix):
                    self._queue.put_nowait(ev)
            store._watchers.append(self._entry)

    def __aiter__(self) -> _MemoryWatch:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._error is not None:
            await self.aclose()
            raise self._error
        ev = await self._queue.get()
        if ev is _CLOSED:
            await self.aclose()
            raise StoreError("store is closed")
        assert isinstance(ev, Event)
        return ev

    async def aclose(self) -> None:
        self._unregister()

    def _unregister(self) -> None:
        self._closed = True
        with contextlib.suppress(ValueError):
            self._store._watchers.remove(self._entry)

    def __del__(self) -> None:  # dropped without aclose(): stop feeding our queue
        self._unregister()

    async def __aenter__(self) -> _MemoryWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["MemoryKV"]
