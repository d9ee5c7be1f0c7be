"""contivpy.common.reconcile.Reconciler: dedup, dirty re-queue, per-key backoff, status, sync gate,
one worker per key, cancellation. Pure asyncio, milliseconds."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from contivpy.common.errors import ExternalServiceError
from contivpy.common.reconcile import Reconciler


class World:
    """A reconcile function over a desired-state dict: records calls, can be told to fail a key."""

    def __init__(self) -> None:
        self.desired: dict[str, str] = {}
        self.actual: dict[str, str] = {}
        self.calls: list[str] = []
        self.failing: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.active: set[str] = set()
        self.overlap = False

    async def reconcile(self, key: str) -> None:
        self.calls.append(key)
        if key in self.active:
            self.overlap = True
        self.active.add(key)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if key in self.failing:
                raise ExternalServiceError(f"switch rejected {key}")
            if key in self.desired:
                self.actual[key] = self.desired[key]
            else:
                self.actual.pop(key, None)
        finally:
            self.active.discard(key)


@contextlib.asynccontextmanager
async def running(rec: Reconciler):
    task = asyncio.create_task(rec.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_dedup_queued_key_runs_once():
    w = World()
    rec = Reconciler("t", w.reconcile)
    w.desired["a"] = "1"
    for _ in range(5):
        rec.enqueue("a")
    rec.enqueue("b")
    rec.mark_synced()
    async with running(rec):
        assert await rec.wait_idle(5)
    assert sorted(w.calls) == ["a", "b"]
    assert w.actual == {"a": "1"}


async def test_key_enqueued_while_running_is_requeued_once_never_concurrently():
    w = World()
    w.gate = asyncio.Event()
    rec = Reconciler("t", w.reconcile, workers=4)
    w.desired["a"] = "1"
    rec.enqueue("a")
    rec.mark_synced()
    async with running(rec):
        while "a" not in w.active:
            await asyncio.sleep(0.001)
        w.desired["a"] = "2"  # changed while the first run is in flight
        for _ in range(3):
            rec.enqueue("a")
        await asyncio.sleep(0.02)
        assert w.calls == ["a"]  # not started on a second worker
        assert rec.status()["a"]["state"] == "pending"
        w.gate.set()
        assert await rec.wait_idle(5)
    assert w.calls == ["a", "a"]  # exactly one re-run, with the new desired state
    assert w.actual == {"a": "2"}
    assert not w.overlap


async def test_failing_key_backs_off_while_other_keys_proceed():
    w = World()
    rec = Reconciler("t", w.reconcile, base_delay=0.01, max_delay=0.08)
    w.failing.add("bad")
    rec.enqueue("bad")
    rec.mark_synced()
    async with running(rec):
        await asyncio.sleep(0.05)
        # keys enqueued after the failing one are served at once, in spite of it
        for k in ("x", "y"):
            w.desired[k] = k
            rec.enqueue(k)
        async with asyncio.timeout(5):
            while w.actual != {"x": "x", "y": "y"}:
                await asyncio.sleep(0.002)
        await asyncio.sleep(0.4)
        st = rec.status()["bad"]
        n = w.calls.count("bad")
        # exponential and capped: 0.01,0.02,0.04,0.08,0.08... (+-20 %) -> ~7-9 tries in 0.45 s, not 45
        assert 3 <= n <= 15, n
        assert st["state"] in ("retrying", "pending")
        assert st["attempts"] >= 3
        assert st["lastError"] == "switch rejected bad"
        assert rec.status()["x"] == {"state": "ok", "attempts": 0, "lastError": "", "nextRetryIn": None}
        assert not await rec.wait_idle(0.05)  # a key in backoff is not idle
        w.failing.clear()
        assert await rec.wait_idle(5)
    assert rec.status()["bad"]["state"] == "ok"
    assert rec.status()["bad"]["attempts"] == 0


async def test_enqueue_during_backoff_retries_promptly():
    w = World()
    rec = Reconciler("t", w.reconcile, base_delay=30.0, max_delay=30.0)
    w.failing.add("k")
    w.desired["k"] = "old"
    rec.enqueue("k")
    rec.mark_synced()
    async with running(rec):
        async with asyncio.timeout(5):
            while rec.status()["k"]["state"] != "retrying":
                await asyncio.sleep(0.002)
        st = rec.status()["k"]
        assert st["attempts"] == 1 and 20 <= st["nextRetryIn"] <= 36
        w.failing.clear()
        w.desired["k"] = "new"  # e.g. the delete that clears the bad state
        rec.enqueue("k")
        assert await rec.wait_idle(2)  # long before the 30 s backoff
    assert w.actual == {"k": "new"}


async def test_backoff_is_exponential_capped_with_jitter():
    rec = Reconciler("t", World().reconcile, base_delay=0.05, max_delay=1.0)
    for attempt, nominal in ((1, 0.05), (2, 0.1), (3, 0.2), (5, 0.8)):
        for _ in range(20):
            assert nominal * 0.8 <= rec.backoff(attempt) <= nominal * 1.2
    assert all(rec.backoff(n) <= 1.0 for n in (6, 10, 100, 10_000))


async def test_sync_gate_holds_workers_until_marked():
    w = World()
    rec = Reconciler("t", w.reconcile)
    rec.enqueue("a")
    async with running(rec):
        await asyncio.sleep(0.05)
        assert w.calls == []
        assert rec.status()["a"]["state"] == "pending"
        rec.mark_synced()
        assert await rec.wait_idle(5)
    assert w.calls == ["a"]


async def test_desired_predicate_drops_deleted_keys_from_status():
    w = World()
    rec = Reconciler("t", w.reconcile, desired=lambda k: k in w.desired)
    w.desired["keep"] = "1"
    rec.enqueue("keep")
    rec.enqueue("gone")
    rec.mark_synced()
    async with running(rec):
        assert await rec.wait_idle(5)
    assert set(rec.status()) == {"keep"}


async def test_cancellation_stops_workers_and_timers():
    w = World()
    rec = Reconciler("t", w.reconcile, base_delay=0.01, max_delay=0.01)
    w.failing.add("bad")
    w.gate = asyncio.Event()
    rec.enqueue("bad")
    rec.enqueue("slow")
    rec.mark_synced()
    task = asyncio.create_task(rec.run())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    n = len(w.calls)
    w.gate.set()
    await asyncio.sleep(0.05)
    assert len(w.calls) == n  # nothing runs after cancellation, no timer fires into the queue later
    assert all(s["state"] != "retrying" for s in rec.status().values())


async def test_unexpected_exception_is_a_retry_not_a_crash():
    calls = []

    async def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise KeyError("boom")

    rec = Reconciler("t", reconcile, base_delay=0.01)
    rec.enqueue("a")
    rec.mark_synced()
    async with running(rec) as task:
        assert await rec.wait_idle(5)
        assert not task.done()
    assert calls == ["a", "a"]


async def test_permanent_error_is_failed_until_enqueued_again():
    w = World()
    rec = Reconciler("t", w.reconcile, base_delay=0.001, permanent=(ExternalServiceError,))
    w.failing.add("k")
    rec.enqueue("k")
    rec.mark_synced()
    async with running(rec):
        assert await rec.wait_idle(5)  # a failed key has no retry timer
        await asyncio.sleep(0.05)
        assert w.calls == ["k"]
        assert rec.status()["k"]["state"] == "failed" and rec.status()["k"]["attempts"] == 1
        w.failing.clear()
        rec.enqueue("k")  # the key changed: tried again
        assert await rec.wait_idle(5)
    assert w.calls == ["k", "k"] and rec.status()["k"]["state"] == "ok"


async def test_settled_allows_keys_in_backoff():
    w = World()
    rec = Reconciler("t", w.reconcile, base_delay=30, max_delay=30)
    w.failing.add("bad")
    rec.enqueue("bad")
    rec.enqueue("good")
    rec.mark_synced()
    async with running(rec):
        assert await rec.wait_settled(5)  # every key tried once; "bad" waits for its retry
        assert rec.settled() and not rec.idle()
        assert sorted(w.calls) == ["bad", "good"]


async def test_counters_for_metrics_failures_retries_queue_depth():
    w = World()
    rec = Reconciler("t", w.reconcile, base_delay=0.001, max_delay=0.002)
    for k in ("a", "b", "c"):
        w.desired[k] = "1"
        rec.enqueue(k)
    assert (rec.queue_depth(), rec.failures, rec.retries) == (3, 0, 0)  # workers wait for the sync
    w.failing.add("b")
    rec.mark_synced()
    async with running(rec):
        while rec.failures < 3:
            await asyncio.sleep(0.001)
        assert rec.retries >= 2  # each failure after the first was a retry after its backoff
        w.failing.clear()
        assert await rec.wait_idle(5)
    assert rec.queue_depth() == 0 and rec.backing_off() == 0
    assert rec.failures >= 3 and rec.retries == rec.failures  # every failure was retried once
    assert w.actual == {"a": "1", "b": "1", "c": "1"}
