"""Reconciler: a de-duplicating queue of keys, worked by a few asyncio workers, with per-key backoff.

Model (level-triggered, key-based): event handlers only record the desired state somewhere and call
``enqueue(key)``. A worker later calls ``reconcile(key)``, which reads the *current* desired state for
that key itself and makes the world match it (creating, updating or deleting). So a key queued ten times
is converged once, and a retry always works on the newest desired state, never on a stale event.

Invariants
- A key is in the ready queue at most once (``enqueue`` of a queued key is a no-op).
- A key is never processed by two workers at once: ``enqueue`` of a key being processed marks it dirty,
  and it is queued again (once) when its current run ends.
- ``reconcile(key)`` raising ``Exception`` schedules a retry of that key only, after
  ``min(max_delay, base_delay * 2**(attempts-1))`` with +-20 % jitter; other keys go on meanwhile.
  ``enqueue`` of a key waiting in backoff queues it at once (the desired state changed, so the next try
  may well succeed); its attempt count is kept, so a key that still fails keeps backing off.
  A success resets the attempt count and the error. An exception of a ``permanent`` class (bad data that
  no retry can fix) is not retried: the key shows ``failed`` until it is enqueued again.
- Workers start only after ``mark_synced()`` (the first full list has been loaded), so nothing is
  converged from a partial view. Keys enqueued earlier wait in the queue.
- ``run()`` runs the workers in one ``asyncio.TaskGroup`` until cancelled; on the way out the backoff
  timers are cancelled. ``CancelledError`` inside ``reconcile`` is never treated as a failure.
- ``failures`` / ``retries`` count failed runs and backoff retries since start; ``queue_depth()``
  and ``backing_off()`` count the keys waiting for a worker / for their timer (for metrics).
- ``status()`` reports every key seen: ``ok`` (last run succeeded), ``pending`` (queued or running),
  ``retrying`` (waiting for its backoff timer) or ``failed`` (permanent error), with attempts, lastError and nextRetryIn (seconds).
  When a ``desired`` predicate is given, a key that reconciled ok and is no longer desired (it was
  deleted) is dropped from the status, so the table does not grow with churn.

Leaf module: stdlib only (plus contivpy.common.errors for the log wording).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from contivpy.common.errors import ContivError

K = TypeVar("K")

log = logging.getLogger("contivpy.reconcile")


class _KeyState:
    __slots__ = ("attempts", "failed", "last_error", "retry_at", "timer")

    def __init__(self) -> None:
        self.attempts = 0
        self.failed = False
        self.last_error = ""
        self.retry_at: float | None = None
        self.timer: asyncio.TimerHandle | None = None


class Reconciler(Generic[K]):
    def __init__(
        self,
        name: str,
        reconcile: Callable[[K], Awaitable[None]],
        *,
        workers: int = 1,
        base_delay: float = 0.05,
        max_delay: float = 30.0,
        desired: Callable[[K], bool] | None = None,
        permanent: tuple[type[Exception], ...] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("a reconciler needs at least one worker")
        self.name = name
        self._reconcile = reconcile
        self._workers = workers
        self._base = base_delay
        self._max = max_delay
        self._desired = desired
        self._permanent = permanent
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._running: set[K] = set()
        self._dirty: set[K] = set()
        self._keys: dict[K, _KeyState] = {}
        self._synced = asyncio.Event()
        self._changed = asyncio.Event()
        self._rng = random.Random()
        # Totals since start (contiv_netplugin_reconcile_* metrics): failed runs, and retries run
        # after a backoff.
        self.failures = 0
        self.retries = 0

    # -- producers ---------------------------------------------------------------------------
    def enqueue(self, key: K) -> None:
        """Ask for ``key`` to be converged (dedup: queued once; dirty-requeue if it is running)."""
        st = self._keys.get(key)
        if st is None:
            st = self._keys[key] = _KeyState()
        if key in self._running:
            self._dirty.add(key)
            return
        if st.timer is not None:  # in backoff: the desired state changed, try it now
            st.timer.cancel()
            st.timer = None
            st.retry_at = None
        self._push(key)

    def mark_synced(self) -> None:
        """The first full sync is loaded: the workers may start."""
        self._synced.set()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    # -- workers -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the workers (after ``mark_synced``) until cancelled."""
        try:
            await self._synced.wait()
            async with asyncio.TaskGroup() as tg:
                for i in range(self._workers):
                    tg.create_task(self._worker(), name=f"{self.name}-worker-{i}")
        finally:
            for st in self._keys.values():
                if st.timer is not None:
                    st.timer.cancel()
                    st.timer = None

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._running.add(key)
            try:
                await self._reconcile(key)
            except asyncio.CancelledError:
                self._running.discard(key)
                self._dirty.discard(key)
                raise
            except Exception as e:  # noqa: BLE001 - any failure of one key is that key's retry
                self._running.discard(key)
                self._failed(key, e)
            else:
                self._running.discard(key)
                self._succeeded(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.enqueue(key)
            self._notify()

    def _push(self, key: K) -> None:
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.put_nowait(key)
        self._notify()

    def _succeeded(self, key: K) -> None:
        st = self._keys[key]
        st.attempts = 0
        st.failed = False
        st.last_error = ""
        st.retry_at = None
        if self._desired is not None and key not in self._dirty and not self._desired(key):
            del self._keys[key]

    def _failed(self, key: K, err: Exception) -> None:
        st = self._keys[key]
        self.failures += 1
        st.attempts += 1
        st.failed = False
        st.last_error = str(err) or type(err).__name__
        delay = self.backoff(st.attempts)
        if isinstance(err, self._permanent):
            log.error("%s: %s failed: %s; not retried until it changes", self.name, key, err)
        elif isinstance(err, ContivError):
            log.warning(
                "%s: %s failed (attempt %d): %s; retry in %.2fs", self.name, key, st.attempts, err, delay
            )
        else:  # not an expected failure: show where it came from, once
            log.error(
                "%s: %s failed (attempt %d): %s; retry in %.2fs",
                self.name,
                key,
                st.attempts,
                st.last_error,
                delay,
                exc_info=err if st.attempts == 1 else None,
            )
        if key in self._dirty:  # changed while it ran: the re-queue below tries the new state now
            return
        if isinstance(err, self._permanent):  # bad data: wait for the key to change
            st.failed = True
            return
        loop = asyncio.get_running_loop()
        st.retry_at = loop.time() + delay
        st.timer = loop.call_later(delay, self._retry, key)

    def _retry(self, key: K) -> None:
        st = self._keys.get(key)
        if st is None:
            return
        st.timer = None
        st.retry_at = None
        self.retries += 1
        self._push(key)

    def backoff(self, attempts: int) -> float:
        """Delay before retry number ``attempts`` (1-based): exponential, capped, +-20 % jitter."""
        delay = min(self._max, self._base * (2 ** min(attempts - 1, 62)))
        return float(min(self._max, delay * self._rng.uniform(0.8, 1.2)))

    def _notify(self) -> None:
        self._changed.set()

    # -- observers ---------------------------------------------------------------------------
    def idle(self) -> bool:
        """Nothing queued, running or waiting for a retry."""
        return (
            self._ready.empty()
            and not self._running
            and not any(st.timer is not None for st in self._keys.values())
        )

    def queue_depth(self) -> int:
        """Keys waiting for a worker (not those running or in backoff)."""
        return self._ready.qsize()

    def backing_off(self) -> int:
        """Keys waiting for their backoff timer."""
        return sum(1 for st in self._keys.values() if st.timer is not None)

    def settled(self) -> bool:
        """Nothing queued or running (keys in backoff allowed): every key has been tried."""
        return self._ready.empty() and not self._running

    def status(self) -> dict[str, dict[str, Any]]:
        now = asyncio.get_running_loop().time() if self._has_loop() else 0.0
        out: dict[str, dict[str, Any]] = {}
        for key, st in self._keys.items():
            if st.timer is not None:
                state = "retrying"
            elif key in self._queued or key in self._running:
                state = "pending"
            elif st.failed:
                state = "failed"
            else:
                state = "ok"
            nxt = None if st.retry_at is None else round(max(0.0, st.retry_at - now), 3)
            out[str(key)] = {
                "state": state,
                "attempts": st.attempts,
                "lastError": st.last_error,
                "nextRetryIn": nxt,
            }
        return out

    @staticmethod
    def _has_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until ``idle()``; False if ``timeout`` passed first (for tests)."""
        return await self._wait(self.idle, timeout)

    async def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait until ``settled()`` (the initial sync: every key tried once); False on timeout."""
        return await self._wait(self.settled, timeout)

    async def _wait(self, cond: Callable[[], bool], timeout: float | None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not cond():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True
