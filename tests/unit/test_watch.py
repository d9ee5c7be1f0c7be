"""list_and_watch / Mirror / PumpedIterator against both KV stores (real etcd for the etcd param)."""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.errors import StoreError
from contivpy.common.kv import Event
from contivpy.common.pump import PumpedIterator
from contivpy.common.watch import Mirror, Snapshot, list_and_watch
from tests.support import kvfaults

P = "/tkv/lw/"


async def nxt(it, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        return await anext(it)


async def _b_a_c(inner) -> int:
    """Before the first watch: b written, a deleted, c written (the revision to compact at)."""
    await inner.put(P + "b", "2")
    await inner.delete(P + "a")
    return await inner.put(P + "c", "3")


class CompactBeforeFirstWatch(kvfaults.CompactBeforeFirstWatch):
    def __init__(self, inner) -> None:
        super().__init__(inner, _b_a_c)


class FailFirstWatch(CompactBeforeFirstWatch):
    def watch_prefix(self, prefix, start_revision=0, **kw):
        self.watches += 1
        if self.watches == 1:

            async def broken():
                raise StoreError("connection lost")
                yield  # pragma: no cover

            return broken()
        return self.inner.watch_prefix(prefix, start_revision)


async def test_snapshot_then_events(kv):
    await kv.put(P + "a", "1")
    rev = await kv.put(P + "b", "2")
    await kv.put("/tkv/other", "x")
    async with list_and_watch(kv, P) as it:
        snap = await nxt(it)
        assert isinstance(snap, Snapshot)
        assert snap.items == {P + "a": "1", P + "b": "2"} and snap.revision >= rev
        assert snap.kvs[P + "a"].value == "1"
        await kv.put(P + "c", "3")
        await kv.delete(P + "a")
        e1, e2 = await nxt(it), await nxt(it)
        assert (e1.type, e1.key, e1.value) == ("put", P + "c", "3")
        assert (e2.type, e2.key) == ("delete", P + "a")
        assert e1.mod_revision > snap.revision


async def test_relists_after_compaction(kv):
    await kv.put(P + "a", "1")
    store = CompactBeforeFirstWatch(kv)
    mirror = Mirror()
    async with list_and_watch(store, P, retry_delay=0.05) as it:
        first = await nxt(it)
        assert first.items == {P + "a": "1"}
        assert mirror.apply(first) == [Event("put", P + "a", "1", first.revision, None)]
        second = await nxt(it)  # the watch hit CompactedError: a fresh listing
        assert isinstance(second, Snapshot)
        assert second.items == {P + "b": "2", P + "c": "3"}
        changes = mirror.apply(second)
        assert [(c.type, c.key, c.value) for c in changes] == [
            ("delete", P + "a", ""),
            ("put", P + "b", "2"),
            ("put", P + "c", "3"),
        ]
        await kv.put(P + "d", "4")
        ev = await nxt(it)
        assert (ev.type, ev.key) == ("put", P + "d")
        assert mirror.apply(ev) == [ev] and mirror.items[P + "d"] == "4"
    assert store.watches == 2


async def test_relists_after_store_error(memory_kv):
    await memory_kv.put(P + "a", "1")
    store = FailFirstWatch(memory_kv)
    async with list_and_watch(store, P, retry_delay=0.05) as it:
        assert isinstance(await nxt(it), Snapshot)
        await memory_kv.put(P + "z", "9")
        again = await nxt(it)
        assert isinstance(again, Snapshot) and again.items == {P + "a": "1", P + "z": "9"}


async def test_mirror_ignores_delete_of_unknown_key():
    m = Mirror()
    m.apply(Snapshot({"/k": "v"}, 5))
    assert m.apply(Event("delete", "/nope", "", 6)) == []
    assert m.apply(Snapshot({"/k": "v"}, 7)) == []  # unchanged snapshot: no synthetic events
    assert m.revision == 7


async def test_pumped_iterator_survives_cancelled_next():
    async def slow():
        for i in range(3):
            await asyncio.sleep(0.2)
            yield i

    it = PumpedIterator(slow())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(it)
    assert [x async for x in it] == [0, 1, 2]  # nothing lost, ends normally


async def test_pumped_iterator_raises_source_error():
    async def bad():
        yield 1
        raise StoreError("boom")

    it = PumpedIterator(bad())
    assert await anext(it) == 1
    with pytest.raises(StoreError, match="boom"):
        await anext(it)
    with pytest.raises(StopAsyncIteration):
        await anext(it)


async def test_pumped_iterator_fail_wakes_pending_reader_and_stops_source():
    stopped = asyncio.Event()

    async def forever():
        try:
            yield 1
            await asyncio.Event().wait()
            yield 2  # never reached
        finally:
            stopped.set()

    it = PumpedIterator(forever())
    assert await anext(it) == 1
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.05)
    await it.fail(StoreError("store closed"))
    with pytest.raises(StoreError, match="store closed"):
        async with asyncio.timeout(2):
            await pending
    assert stopped.is_set()  # the source was closed, not left running
    with pytest.raises(StopAsyncIteration):
        await anext(it)


def test_mirror_supplies_the_previous_value_of_events_watched_without_prev_kv():
    from contivpy.common.kv.base import Event
    from contivpy.common.watch import Mirror, Snapshot

    m = Mirror()
    m.apply(Snapshot({P + "a": "1"}, 5))
    (put,) = m.apply(Event("put", P + "a", "2", 6, None))
    assert put.prev_value == "1"
    (gone,) = m.apply(Event("delete", P + "a", "", 7, None))
    assert (gone.type, gone.prev_value) == ("delete", "2")
    (new,) = m.apply(Event("put", P + "b", "3", 8, None))
    assert new.prev_value is None


def test_etcd_requests_are_counted_by_kind():
    from contivpy.common.kv.etcdhttp import request_kind

    rng = {"request_range": {"key": "a"}}
    assert request_kind("/v3/kv/range", {"key": "a"}) == "range"
    assert request_kind("/v3/kv/range", {"key": "a", "range_end": "b"}) == "range_prefix"
    assert request_kind("/v3/kv/txn", {"success": [rng, rng]}) == "txn_read"
    put = {"request_put": {"key": "a", "value": "b"}}
    cmp = [{"key": "a", "target": "VERSION", "result": "EQUAL"}]
    assert request_kind("/v3/kv/txn", {"compare": cmp, "success": [put]}) == "txn"
    assert request_kind("/v3/kv/txn", {"compare": cmp, "success": [], "failure": [put]}) == "txn_check"
    assert request_kind("/v3/kv/put", {}) == "put"
    assert request_kind("/v3/kv/deleterange", {}) == "deleterange"
    assert request_kind("/v3/watch", {}) == "watch"
    assert request_kind("/v3/lease/keepalive", {}) == "lease_keepalive"
