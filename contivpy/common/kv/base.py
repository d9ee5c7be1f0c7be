"""KVStore: the one storage interface of contivpy (etcd v3 semantics).

Two implementations pass the same contract suite (tests/contract/test_kv_contract.py):
``contivpy.common.kv.etcd.EtcdKV`` (a real etcd server, through our JSON-gateway client) and
``contivpy.common.kv.memory.MemoryKV`` (in-process, for unit tests and single-node use).

Design and invariants
- Keys and values are ``str`` (values are JSON text in practice). Keys follow the
  original Contiv layout under ``/contiv.io/`` (see ``contivpy.model.keys``).
- Every write that allocates or depends on what it read is a ``txn`` with compares
  (create-if-absent: ``Compare(key, "version", "==", 0)``; CAS: ``Compare(key, "mod", "==", rev)``).
  Blind ``put`` is only for keys with a single owner.
- ``get_many(keys)`` reads up to 100 keys in one request (one snapshot), for callers that know
  what they will read (netmaster's CRUD hooks prefetch their records with it).
- ``get_range(start, end, limit)`` reads the first ``limit`` keys of ``[start, end)`` in key
  order: what ordered indexes in etcd use for O(log n) look-ups.
- ``get_prefix`` returns the store revision it read at; ``watch_prefix(prefix, start_revision=rev+1)``
  then delivers every later change exactly once, in revision order, and survives a restart of
  the etcd server (the implementation re-watches from the last delivered revision + 1). If that
  revision was compacted it raises ``CompactedError`` and the caller re-lists.
- Leases: ``grant_lease(ttl)`` returns an id; keys put with ``lease=id`` vanish when the lease
  expires or is revoked; ``keepalive`` refreshes it (callers run it in a task every ttl/3).
- ``watch_prefix(..., prev_kv=False)`` asks for events without the previous value (what the
  watchers that keep a ``Mirror`` use: it knows the previous value itself).
- All methods raise ``contivpy.common.errors.StoreError`` on transport failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

CompareTarget = Literal["value", "version", "create", "mod", "lease"]
CompareOp = Literal["==", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by a watch. ``type`` is "put" or "delete"; ``value`` is "" for deletes."""

    type: Literal["put", "delete"]
    key: str
    value: str
    mod_revision: int
    prev_value: str | None = None


@dataclass(frozen=True, slots=True)
class Compare:
    key: str
    target: CompareTarget
    op: CompareOp
    value: str | int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: str
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    # For a failed txn, callers usually re-read; nothing else is returned.
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class KVStore(Protocol):
    async def get(self, key: str) -> KeyValue | None: ...

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under ``prefix`` sorted by key, and the store revision of the read."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        """Point reads of several keys in ONE request, at one revision (etcd: a read-only txn;
        at most 100 keys). ``None`` for an absent key."""
        ...

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[KeyValue]:
        """The first ``limit`` keys (0 = all) of ``[start, end)`` in key order: a bounded read
        for ordered indexes ("first key >= x"). etcd stops after ``limit`` keys only for this
        ascending, unsorted request (with any sort order it reads the whole range first)."""
        ...

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        """Blind write; returns the new store revision."""
        ...

    async def delete(self, key: str) -> bool:
        """True if the key existed."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Number of keys deleted."""
        ...

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult: ...

    async def grant_lease(self, ttl: int) -> int: ...

    async def keepalive(self, lease_id: int) -> None:
        """Refresh the lease once; raises StoreError if it has expired."""
        ...

    async def revoke_lease(self, lease_id: int) -> None: ...

    def watch_prefix(
        self, prefix: str, start_revision: int = 0, *, prev_kv: bool = True
    ) -> AsyncIterator[Event]:
        """Changes under ``prefix`` from ``start_revision`` (0 = from now) on; never ends by itself.
        ``prev_kv=False``: etcd does not send the previous value with each event (``prev_value``
        may then be None), which halves what a put event costs to deliver; ``common.watch.Mirror``
        supplies the previous value from its own view instead."""
        ...

    async def close(self) -> None: ...


__all__ = ["KVStore", "KeyValue", "Event", "Compare", "Put", "Delete", "TxnResult"]
