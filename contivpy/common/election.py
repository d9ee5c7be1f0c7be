"""Leader election on a KVStore key (the original's etcd lock, on v3 leases).

Mechanics (docs/original.md §1.3, objdb/etcdLock.go): the lock key (default
``/contiv.io/lock/netmaster/leader``) holds the holder id ``"<ip>:<port>"``. Campaign = grant a
lease of ``ttl`` seconds + one txn:
- key absent: ``txn(version == 0 -> put key=holder_id with the lease)``;
- key present with value == my holder id (my own lock from a previous life, e.g. after kill -9 and
  restart, or after an etcd outage made me step down): ``txn(value == holder_id -> put
  key=holder_id with the new lease)``, i.e. the lock is retaken at once instead of waiting up to
  ``ttl`` seconds for the old lease to expire (as the original does: a lock holding our own id is
  ours). The old lease is left to expire (or revoked if it was granted by this instance).
The leader refreshes its lease every ttl/3 and re-reads the key to check that it still owns it
(same mod revision). Everybody watches the key (``list_and_watch``) so ``leader()`` always knows
the current holder; followers campaign as soon as the key disappears (lease expiry, resign,
revoke).

API
- ``LeaderElection(kv, key=keys.LEADER_LOCK, holder_id="ip:port", ttl=30)``
- ``await run()``: campaign/lead until cancelled or ``resign()``; on exit a leader deletes its key
  and revokes its lease so a follower takes over at once. Put it in the daemon's TaskGroup, or use
  ``start()``/``stop()``.
- ``is_leader``, ``leader() -> str | None`` (holder id seen in the store), ``await wait_leader()``.
- ``add_callback(cb)``: ``cb(is_leader: bool)`` on each transition (a returned coroutine is run
  as a task); ``changes()``: async iterator of ``"leader"`` / ``"follower"`` transitions.
- ``fence() -> Compare``: ``mod_revision == <the revision of the txn that made me leader>``;
  adding it to a txn makes the write fail once this process is no longer the leader (raises
  NotLeaderError now if it is not the leader).

Invariants
- A leadership term is identified by the key's **mod revision** written by the winning campaign
  txn (for a fresh key it equals the create revision). Nobody writes the key during a term (lease
  keepalives do not change it), and every new term - a re-created key, or a takeover of my own id,
  which keeps the create revision but not the mod revision - writes it. So the fence and the
  "still mine" check compare the mod revision: a previous life's fence (same holder id, old
  term) fails after a takeover, exactly like another holder's.
- Holder ids must be unique among live instances (netmaster uses its control URL, which only one
  live process can listen on): two live instances with one id would take the lock from each other.
- ``is_leader`` is True only between a successful campaign txn and the first sign of loss: the key
  gone or rewritten, a failed refresh followed by a read showing the key is not ours, or no
  successful refresh for ``ttl - ttl/3`` seconds (the lease may be about to expire server-side).
- Transitions are reported in order, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from contivpy.common.errors import NotLeaderError, StoreError
from contivpy.common.kv.base import Compare, Delete, KeyValue, KVStore, Put
from contivpy.common.watch import Snapshot, list_and_watch
from contivpy.model import keys

log = logging.getLogger(__name__)


class _Changes:
    """Subscriber queue of transitions; cancel-safe ``__anext__``."""

    def __init__(self, owner: LeaderElection) -> None:
        self._owner = owner
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def __aiter__(self) -> _Changes:
        return self

    async def __anext__(self) -> str:
        if self not in self._owner._subscribers:
            raise StopAsyncIteration
        return await self.queue.get()

    async def aclose(self) -> None:
        with contextlib.suppress(ValueError):
            self._owner._subscribers.remove(self)


class LeaderElection:
    def __init__(self, kv: KVStore, key: str = keys.LEADER_LOCK, holder_id: str = "", ttl: int = 30) -> None:
        if not holder_id:
            raise ValueError("holder_id is required (the '<ip>:<port>' of this instance)")
        self.kv = kv
        self.key = key
        self.holder_id = holder_id
        self.ttl = max(int(ttl), 2)
        self._leader = False
        self._my_rev = 0
        self._lease = 0
        self._holder: str | None = None
        self._holder_seen = asyncio.Event()
        self._changed = asyncio.Event()
        self._resigned = False
        self._callbacks: list[Callable[[bool], object]] = []
        self._subscribers: list[_Changes] = []
        self._bg: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[None] | None = None

    # ---- observation -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leader

    def leader(self) -> str | None:
        """The holder id currently stored at the key (None if nobody holds the lock)."""
        return self._holder

    async def wait_leader(self, timeout: float | None = None) -> str:
        """Wait until some instance holds the lock; return its holder id."""
        async with asyncio.timeout(timeout):
            while self._holder is None:
                self._holder_seen.clear()
                await self._holder_seen.wait()
        return self._holder

    def fence(self) -> Compare:
        if not self._leader:
            raise NotLeaderError(f"{self.holder_id} is not the leader (leader: {self._holder or 'none'})")
        return Compare(self.key, "mod", "==", self._my_rev)

    def add_callback(self, cb: Callable[[bool], object]) -> None:
        self._callbacks.append(cb)

    def changes(self) -> AsyncIterator[str]:
        sub = _Changes(self)
        self._subscribers.append(sub)
        return sub

    def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        state = "leader" if leader else "follower"
        log.info("%s: %s for %s", self.holder_id, "became leader" if leader else "lost leadership", self.key)
        for sub in self._subscribers:
            sub.queue.put_nowait(state)
        for cb in self._callbacks:
            try:
                res = cb(leader)
                if inspect.isawaitable(res):
                    task = asyncio.ensure_future(res)
                    self._bg.add(task)
                    task.add_done_callback(self._bg.discard)
            except Exception:
                log.exception("leader election callback failed")

    async def _observe(self) -> None:
        async with list_and_watch(self.kv, self.key) as it:
            async for item in it:
                if isinstance(item, Snapshot):
                    self._holder = item.items.get(self.key)
                elif item.key == self.key:
                    self._holder = item.value if item.type == "put" else None
                else:
                    continue
                if self._holder is not None:
                    self._holder_seen.set()
                self._changed.set()

    # ---- campaign / lead ---------------------------------------------------------------

    async def _campaign(self, cur: KeyValue | None) -> bool:
        """One attempt: create the key if absent, or retake it if it holds my own id."""
        if cur is not None and cur.value != self.holder_id:
            return False
        lease = await self.kv.grant_lease(self.ttl)
        guard = (
            Compare(self.key, "version", "==", 0)
            if cur is None
            else Compare(self.key, "value", "==", self.holder_id)
        )
        try:
            res = await self.kv.txn([guard], [Put(self.key, self.holder_id, lease)])
        except BaseException:
            with contextlib.suppress(Exception):
                await self.kv.revoke_lease(lease)
            raise
        if not res.succeeded:
            with contextlib.suppress(StoreError):
                await self.kv.revoke_lease(lease)
            return False
        old_lease, self._lease, self._my_rev = self._lease, lease, res.revision
        if cur is not None:
            log.info("%s: retook my own lock %s (previous lease %x)", self.holder_id, self.key, cur.lease)
        if old_lease and old_lease != lease:  # a lease of an earlier term of this instance
            with contextlib.suppress(StoreError):
                await self.kv.revoke_lease(old_lease)
        self._holder = self.holder_id
        self._holder_seen.set()
        self._set_leader(True)
        return True

    async def _still_mine(self) -> bool:
        cur = await self.kv.get(self.key)
        return cur is not None and cur.mod_revision == self._my_rev

    async def _wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        self._changed.clear()

    async def _lead(self) -> None:
        """Stay leader until loss is detected; returns as a follower."""
        period = self.ttl / 3
        last_ok = time.monotonic()
        next_refresh = last_ok + period
        while self._leader and not self._resigned:
            await self._wait_change(max(0.0, next_refresh - time.monotonic()))
            if self._resigned:
                return
            now = time.monotonic()
            try:
                if now >= next_refresh:
                    try:
                        await self.kv.keepalive(self._lease)
                    except StoreError as err:
                        log.warning("%s: lease refresh failed: %s", self.holder_id, err)
                if await self._still_mine():
                    if now >= next_refresh:
                        last_ok, next_refresh = now, now + period
                else:
                    self._set_leader(False)
            except StoreError as err:
                log.warning("%s: cannot verify leadership: %s", self.holder_id, err)
                next_refresh = now + 1.0
            if self._leader and time.monotonic() - last_ok >= self.ttl - period:
                log.warning(
                    "%s: no lease refresh for %.0fs, stepping down", self.holder_id, self.ttl - period
                )
                self._set_leader(False)

    async def _release(self) -> None:
        if not self._leader:
            return
        self._set_leader(False)
        with contextlib.suppress(StoreError, TimeoutError):
            async with asyncio.timeout(5):
                await self.kv.txn([Compare(self.key, "mod", "==", self._my_rev)], [Delete(self.key)])
                await self.kv.revoke_lease(self._lease)

    async def run(self) -> None:
        """Campaign, lead, re-campaign, ... until cancelled or resign()."""
        self._resigned = False
        observer = asyncio.get_running_loop().create_task(
            self._observe(), name=f"election-observe {self.key}"
        )
        try:
            while not self._resigned:
                if observer.done():
                    observer.result()  # re-raise an observer crash
                try:
                    if self._holder is None or self._holder == self.holder_id:
                        await self._campaign(await self.kv.get(self.key))
                except StoreError as err:
                    log.warning("%s: campaign failed: %s", self.holder_id, err)
                if self._leader:
                    await self._lead()
                else:
                    await self._wait_change(min(self.ttl / 3, 5.0))
        finally:
            observer.cancel()
            with contextlib.suppress(BaseException):
                await observer
            self._holder = None  # no longer observed: unknown rather than stale
            await asyncio.shield(self._release())

    async def resign(self) -> None:
        """Give up leadership (delete the key, revoke the lease) and stop campaigning."""
        self._resigned = True
        self._changed.set()
        await self._release()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"election {self.key}")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self._release()


__all__ = ["LeaderElection"]
