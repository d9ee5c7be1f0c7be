"""common/groupcommit.py: concurrent requests go out together, each caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.groupcommit import GroupCommit


class Sink:
    """A batch function that records its batches; ``gate`` holds a batch in flight."""

    def __init__(self, bad: set = frozenset(), atomic: bool = False) -> None:
        self.batches: list[list] = []
        self.singles: list = []
        self.bad, self.atomic = set(bad), atomic
        self.gate = asyncio.Event()
        self.gate.set()

    async def batch(self, items: list) -> list:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.atomic and self.bad & set(items):  # like an OVSDB/etcd txn: one bad op fails all
            raise RuntimeError(f"batch {items} refused")
        return [ValueError(f"bad {i}") if i in self.bad else i * 10 for i in items]

    async def one(self, item):
        self.singles.append(item)
        if item in self.bad:
            raise ValueError(f"bad {item}")
        return item * 10


async def test_a_lone_caller_goes_at_once_and_late_comers_join_the_next_batch_in_order():
    s = Sink()
    gc = GroupCommit(s.batch, s.one)
    assert await gc.submit(1) == 10
    assert s.batches == [[1]]
    s.gate.clear()
    first = asyncio.create_task(gc.submit(2))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert s.batches[-1] == [2]  # in flight
    rest = [asyncio.create_task(gc.submit(i)) for i in (3, 4, 5)]
    await asyncio.sleep(0)
    s.gate.set()
    assert await first == 20
    assert [await t for t in rest] == [30, 40, 50]
    assert s.batches == [[1], [2], [3, 4, 5]]  # the three waited for the one in flight, in order
    assert gc.batches == 3 and gc.items == 5


async def test_max_batch_splits_a_long_queue():
    s = Sink()
    s.gate.clear()
    gc = GroupCommit(s.batch, max_batch=2)
    tasks = [asyncio.create_task(gc.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    s.gate.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    assert s.batches == [[0, 1], [2, 3], [4]]  # (all five queued before the first batch started)


async def test_a_per_item_error_reaches_that_caller_only():
    s = Sink(bad={3})
    s.gate.clear()
    gc = GroupCommit(s.batch, s.one)
    tasks = [asyncio.create_task(gc.submit(i)) for i in (1, 2, 3, 4)]
    await asyncio.sleep(0)
    s.gate.set()
    res = await asyncio.gather(*tasks, return_exceptions=True)
    assert res[:2] == [10, 20] and res[3] == 40
    assert isinstance(res[2], ValueError) and "bad 3" in str(res[2])
    assert s.singles == []  # no fallback needed


async def test_a_failed_batch_is_retried_item_by_item():
    s = Sink(bad={3}, atomic=True)
    s.gate.clear()
    gc = GroupCommit(s.batch, s.one)
    tasks = [asyncio.create_task(gc.submit(i)) for i in (1, 2, 3, 4)]
    await asyncio.sleep(0)
    s.gate.set()
    res = await asyncio.gather(*tasks, return_exceptions=True)
    assert s.batches == [[1, 2, 3, 4]]  # refused as a whole because of 3 ...
    assert s.singles == [1, 2, 3, 4]  # ... so each went alone
    assert res[0] == 10 and res[1] == 20 and res[3] == 40
    assert isinstance(res[2], ValueError)


async def test_without_one_the_fallback_uses_batches_of_one_and_a_lone_failure_is_raised():
    s = Sink(bad={7}, atomic=True)
    gc = GroupCommit(s.batch)
    with pytest.raises(RuntimeError, match="refused"):
        await gc.submit(7)
    s.gate.clear()
    tasks = [asyncio.create_task(gc.submit(i)) for i in (1, 7, 2)]
    await asyncio.sleep(0)
    s.gate.set()
    res = await asyncio.gather(*tasks, return_exceptions=True)
    assert res[0] == 10 and res[2] == 20 and isinstance(res[1], RuntimeError)
    assert [7] in s.batches[2:] and [2] in s.batches[2:]


async def test_cancelled_while_queued_leaves_the_queue_and_in_flight_waits_for_the_write():
    s = Sink()
    s.gate.clear()
    gc = GroupCommit(s.batch)
    inflight = asyncio.create_task(gc.submit(1))
    await asyncio.sleep(0)
    queued = asyncio.create_task(gc.submit(2))
    other = asyncio.create_task(gc.submit(3))
    await asyncio.sleep(0)
    queued.cancel()
    inflight.cancel()
    await asyncio.sleep(0.01)
    assert not inflight.done()  # its batch is still writing: the cancellation waits for it
    s.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await inflight
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await other == 30
    assert s.batches == [[1], [3]]  # 2 never went out
