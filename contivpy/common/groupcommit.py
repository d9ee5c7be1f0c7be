"""Group commit: concurrent callers' requests to one external system go out together.

Why: some of the agent's writes cost the other side much more per request than per item: every
OVSDB transaction that changes a bridge makes ovs-vswitchd reconfigure all its bridges (work that
grows with the number of ports), every OpenFlow update of a network rewrites its flood group
(O(ports)), every etcd txn on the host's port record rewrites the whole record. With N clients
creating endpoints at once, N such requests become one or a few.

How: ``submit(item)`` queues the item and waits for its own answer. When nothing is in flight the
item starts a batch at once (a lone caller waits for no one: no timer, no added latency); items
that arrive while a batch is in flight wait and all go in the next one (up to ``max_batch``).
The batch function gets the items in arrival order and returns one result per item; a result that
is an exception is raised to that item's caller only.

Failure isolation: if the batch function raises (one bad item can fail a whole OVSDB or etcd
transaction: they are atomic), every item of a batch of more than one is retried alone with
``one``; so a caller gets either its own result or its own error, never another caller's.

Cancellation: a caller cancelled while its item is queued takes it out of the queue; cancelled
while its batch is in flight, it waits (uncancellably) for the batch to finish before the
cancellation propagates, so its rollback never overtakes the write it is undoing.

Invariants: at most one batch per instance is in flight; the drain task never dies with an
exception (every error goes to the futures); items are never reordered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        batch: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        one: Callable[[T], Awaitable[R]] | None = None,
        *,
        max_batch: int = 32,
        name: str = "",
    ) -> None:
        self._batch, self._one = batch, one
        self.max_batch, self.name = max_batch, name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches run (a fallback to single items counts as one): for tests, metrics
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        entry = (item, fut)
        self._queue.append(entry)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if entry in self._queue:  # not started: just leave
                self._queue.remove(entry)
                fut.cancel()
            elif not fut.done():  # in flight: let the write finish before the caller undoes it
                while not fut.done():
                    try:
                        await asyncio.wait([fut])
                    except asyncio.CancelledError:
                        continue
            raise

    async def _drain(self) -> None:
        taken: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                items = [i for i, _ in taken]
                self.batches += 1
                self.items += len(items)
                try:
                    results = list(await self._batch(items))
                    if len(results) != len(items):
                        raise RuntimeError(f"{len(results)} results for {len(items)} items")
                except Exception as e:  # the whole batch failed: each item alone, its own answer
                    if len(items) == 1:
                        results = [e]
                    else:
                        log.debug(
                            "group commit %s: batch of %d failed (%s), one by one", self.name, len(items), e
                        )
                        results = [await self._single(i) for i in items]
                for (_, fut), res in zip(taken, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:  # cancelled (the loop is stopping): nobody waits forever
            for _, fut in taken + self._queue:
                if not fut.done():
                    fut.cancel()

    async def _single(self, item: T) -> R | BaseException:
        try:
            if self._one is not None:
                return await self._one(item)
            return list(await self._batch([item]))[0]
        except Exception as e:  # (cancellation stops the drain: see its finally)
            return e
