"""KV stores that misbehave on purpose around watches, wrapping a real store (MemoryKV or etcd).

``CompactBeforeFirstWatch(inner, changes)``: before the first watch starts, ``await changes(inner)``
writes to the store and returns a revision, and the store is compacted at that revision, so the
watch's start revision is really gone (a slow consumer after a compaction): the watcher must
re-list. Every other call goes to ``inner``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class CompactBeforeFirstWatch:
    def __init__(self, inner: Any, changes: Callable[[Any], Awaitable[int]]) -> None:
        self.inner, self.changes = inner, changes
        self.watches = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def watch_prefix(self, prefix, start_revision=0, **kw):
        self.watches += 1
        first = self.watches == 1

        async def gen():
            if first:
                await self.inner.compact(await self.changes(self.inner))
            async for ev in self.inner.watch_prefix(prefix, start_revision):
                yield ev

        return gen()
