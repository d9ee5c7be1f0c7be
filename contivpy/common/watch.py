"""List-then-watch over a KVStore prefix, with re-list on compaction or store failure.

API
- ``list_and_watch(kv, prefix)`` -> async iterator of ``Snapshot | Event``. The first item is a
  ``Snapshot(items, revision)`` (every key under the prefix at ``revision``); then each later
  change as a ``contivpy.common.kv.Event`` in revision order, exactly once. If the watch start
  revision was compacted (``CompactedError``) or the store failed (``StoreError``), it re-lists
  (retrying with backoff while the store is down) and yields a fresh Snapshot: consumers must
  treat every Snapshot as "replace your whole view", e.g. with ``Mirror``.
- ``Mirror`` keeps the current ``dict[key, value]`` for a prefix and turns any item (Snapshot or
  Event) into the list of effective changes (synthetic puts/deletes for a Snapshot diff), so a
  consumer can handle a re-list like ordinary events. Its events carry the previous value from
  the mirror's own view, so the watch does not ask etcd for it: ``list_and_watch`` watches
  without ``prev_kv`` by default (every event is then delivered once instead of with two copies
  of the value; docs/benchmarks.md, "etcd requests per endpoint").
- The iterator is a ``common.pump.PumpedIterator``: a consumer may read it with a timeout
  without losing an item or its position.

Invariant: the Events following a Snapshot are exactly the changes with revision > snapshot
revision, so Snapshot + Events always reconstruct the store's state for the prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from contivpy.common.errors import CompactedError, StoreError
from contivpy.common.kv.base import Event, KeyValue, KVStore
from contivpy.common.pump import PumpedIterator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key under the prefix at ``revision``: ``items`` key -> value, ``kvs`` key -> KeyValue."""

    items: dict[str, str]
    revision: int
    kvs: dict[str, KeyValue] = field(default_factory=dict, compare=False, repr=False)


async def _list_and_watch(
    kv: KVStore, prefix: str, retry_delay: float, max_delay: float, prev_kv: bool
) -> AsyncIterator[Snapshot | Event]:
    delay = retry_delay
    while True:
        try:
            kvs, rev = await kv.get_prefix(prefix)
        except StoreError as err:
            log.warning("listing %r failed (%s); retrying in %.1fs", prefix, err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        delay = retry_delay
        yield Snapshot({k.key: k.value for k in kvs}, rev, {k.key: k for k in kvs})
        watch = kv.watch_prefix(prefix, rev + 1, prev_kv=prev_kv)
        try:
            async for ev in watch:
                yield ev
        except CompactedError as err:
            log.info("watch on %r compacted (%s); re-listing", prefix, err)
        except StoreError as err:
            log.warning("watch on %r failed (%s); re-listing in %.1fs", prefix, err, delay)
            await asyncio.sleep(delay)
        finally:
            aclose = getattr(watch, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


def list_and_watch(
    kv: KVStore, prefix: str, *, retry_delay: float = 0.2, max_delay: float = 5.0, prev_kv: bool = False
) -> PumpedIterator:
    """Snapshot, then Events, forever (a new Snapshot after a compaction/store failure).
    Events come without etcd's previous value unless ``prev_kv`` (``Mirror.apply`` fills it in).

    Use as ``async with list_and_watch(kv, p) as it: async for item in it: ...`` or call
    ``await it.aclose()`` when done.
    """
    return PumpedIterator(
        _list_and_watch(kv, prefix, retry_delay, max_delay, prev_kv), name=f"list-watch {prefix}"
    )


class Mirror:
    """The current view of a prefix; ``apply`` returns the effective changes of an item."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}
        self.revision = 0

    def apply(self, item: Snapshot | Event) -> list[Event]:
        if isinstance(item, Snapshot):
            changes: list[Event] = []
            for key in sorted(self.items.keys() - item.items.keys()):
                changes.append(Event("delete", key, "", item.revision, self.items[key]))
            for key in sorted(item.items):
                old = self.items.get(key)
                if old != item.items[key]:
                    changes.append(Event("put", key, item.items[key], item.revision, old))
            self.items = dict(item.items)
            self.revision = item.revision
            return changes
        self.revision = max(self.revision, item.mod_revision)
        old = self.items.get(item.key)
        if item.prev_value is None and old is not None:  # watched without prev_kv: ours is the same
            item = Event(item.type, item.key, item.value, item.mod_revision, old)
        if item.type == "delete":
            if item.key not in self.items:
                return []
            del self.items[item.key]
            return [item]
        self.items[item.key] = item.value
        return [item]


__all__ = ["Snapshot", "list_and_watch", "Mirror"]
