"""FencedStore: a KVStore view whose every write carries the leader fence.

netmaster hands this view (never the raw store) to everything that writes as the leader: CRUD
and its follow-up jobs, the ``/plugin/*`` Allocator and its service providers, the endpoint
clean-up route, reclaimers. Election and service-registry code keep the raw store (their own
keys are not leader-only data).

Design
- ``fence`` is a callable returning the current term's ``Compare`` (``LeaderElection.fence``:
  ``mod_revision(lock key) == revision of the txn that made me leader``); it raises
  ``NotLeaderError`` when this process is not the leader. It is called at the moment each write
  is sent, so a write is either refused before it leaves (not leader) or sent with the compare:
  a request that began as leader and commits after the lock was lost fails in etcd, whatever the
  local ``is_leader`` flag says by then. There is no path that sends a leader-only write without
  the compare.
- ``txn(compares, success, failure)`` becomes ``txn(compares + [fence], success, failure)``.
  When it does not succeed, the fence is checked with a read: if it no longer holds the call
  raises ``NotLeaderError`` (callers' conflict-retry loops end instead of spinning), otherwise
  the ordinary failed ``TxnResult`` is returned. A ``failure`` branch is refused (ValueError):
  etcd would run it when the *fence* fails, i.e. write as a deposed leader.
- ``put``/``delete``/``delete_prefix`` become one-op fenced txns (``delete`` adds
  ``version > 0`` to learn whether the key existed; ``delete_prefix`` counts the keys it read
  just before, so its count is advisory).
- Reads, watches and lease calls pass straight through to the inner store; so does any other
  attribute (``connect``, ``compact``...).

Invariants
- No write through this view reaches the store without the fence compare of the term current
  when it is sent.
- A write refused for leadership never wrote anything (the compare is evaluated by etcd in the
  same txn).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from contivpy.common.errors import NotLeaderError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, KVStore, Put, TxnResult

_FIELDS = {
    "value": "value",
    "version": "version",
    "create": "create_revision",
    "mod": "mod_revision",
    "lease": "lease",
}


class FencedStore:
    """``FencedStore(kv, election.fence)``: writes fenced on leadership, reads passed through."""

    def __init__(self, inner: KVStore, fence: Callable[[], Compare]) -> None:
        self.inner = inner
        self._fence = fence

    def __repr__(self) -> str:
        return f"FencedStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # ---- fence ---------------------------------------------------------------------------

    def fence(self) -> Compare:
        """The fence compare of the current term (raises NotLeaderError when not leader)."""
        return self._fence()

    async def fence_holds(self, fence: Compare) -> bool:
        kv = await self.inner.get(fence.key)
        if kv is None:
            return False
        return bool(getattr(kv, _FIELDS[fence.target]) == fence.value)

    async def _fenced(
        self, compares: Sequence[Compare], success: Sequence[Put | Delete], failure: Sequence[Put | Delete]
    ) -> TxnResult:
        if failure:
            raise ValueError("a fenced txn cannot have a failure branch")
        fence = self._fence()
        res = await self.inner.txn([*compares, fence], success, failure)
        if not res.succeeded and not await self.fence_holds(fence):
            raise NotLeaderError("netmaster is not the leader any more; the write was not applied")
        return res

    # ---- writes (fenced) -----------------------------------------------------------------

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult:
        return await self._fenced(compares, success, failure)

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        res = await self._fenced([], [Put(key, value, lease)], [])
        return res.revision

    async def delete(self, key: str) -> bool:
        res = await self._fenced([Compare(key, "version", ">", 0)], [Delete(key)], [])
        return res.succeeded

    async def delete_prefix(self, prefix: str) -> int:
        items, _ = await self.inner.get_prefix(prefix)
        await self._fenced([], [Delete(prefix, prefix=True)], [])
        return len(items)

    # ---- reads, leases, watches (passed through) -----------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        return await self.inner.get(key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        return await self.inner.get_prefix(prefix)

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        return await self.inner.get_many(keys)

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[KeyValue]:
        return await self.inner.get_range(start, end, limit)

    async def grant_lease(self, ttl: int) -> int:
        return await self.inner.grant_lease(ttl)

    async def keepalive(self, lease_id: int) -> None:
        await self.inner.keepalive(lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        await self.inner.revoke_lease(lease_id)

    def watch_prefix(
        self, prefix: str, start_revision: int = 0, *, prev_kv: bool = True
    ) -> AsyncIterator[Event]:
        return self.inner.watch_prefix(prefix, start_revision, prev_kv=prev_kv)

    async def close(self) -> None:
        await self.inner.close()


__all__ = ["FencedStore"]
