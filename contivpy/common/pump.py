"""PumpedIterator: an async iterator fed by a source (an async generator) running in a task of its own.

Why: a watch consumer often reads with a timeout (``asyncio.timeout`` around ``__anext__``).
Cancelling a plain async generator there would close it and lose its position; here the
cancellation only cancels a queue read, so no item is lost and the iteration goes on.

Contract
- The pump task starts on the first ``__anext__`` and copies the source into an unbounded queue.
- The source ending ends the iteration (``StopAsyncIteration``); an exception of the source is
  raised by the ``__anext__`` that reaches it, and the iteration is over afterwards.
- ``aclose()`` stops the pump (and closes the source); so does dropping the iterator
  (``__del__``), e.g. after ``break`` out of ``async for``. The pump holds no reference to the
  iterator, so dropping it really frees it.
- ``fail(err)`` stops the pump and makes the next ``__anext__`` raise ``err`` (a store being
  closed under its watches).

Leaf module: asyncio only; used by common.watch (list_and_watch, registry) and common.kv.etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


async def _copy(source: AsyncIterator[Any], queue: asyncio.Queue[Any]) -> None:
    """Copy ``source`` into ``queue``, then _END or a _Failure."""
    try:
        async for item in source:
            queue.put_nowait(item)
        queue.put_nowait(_END)
    except asyncio.CancelledError:
        raise
    except Exception as err:
        queue.put_nowait(_Failure(err))
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class PumpedIterator:
    """Async iterator fed by ``source`` (an async iterable) running in a task of its own."""

    def __init__(self, source: AsyncIterator[Any], name: str = "pumped-iterator") -> None:
        self._source = source
        self._name = name
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._started = False  # the pump runs at most once
        self._closed = False

    def __del__(self) -> None:  # dropped without aclose(): stop the pump
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                task.cancel()

    def __aiter__(self) -> PumpedIterator:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            self._started = True
            self._task = asyncio.get_running_loop().create_task(
                _copy(self._source, self._queue), name=self._name
            )
        item = await self._queue.get()  # cancel-safe: a cancelled get removes nothing
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            await self.aclose()
            raise item.error
        return item

    async def _stop_pump(self) -> None:
        self._started = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        elif task is None:
            # never started: close the source ourselves (an unstarted async generator)
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def fail(self, err: BaseException) -> None:
        """Stop the pump and make the next ``__anext__`` raise ``err``."""
        await self._stop_pump()
        if not self._closed:
            self._queue.put_nowait(_Failure(err))

    async def aclose(self) -> None:
        self._closed = True
        await self._stop_pump()

    async def __aenter__(self) -> PumpedIterator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
