"""MemoryKV specifics the contract suite does not reach: bounded history, lease reaper."""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.errors import CompactedError
from contivpy.common.kv.memory import MemoryKV


async def test_history_limit_trims_and_watch_reports_compaction():
    kv = MemoryKV(history_limit=3)
    revs = [await kv.put("/tkv/h", str(i)) for i in range(5)]
    it = kv.watch_prefix("/tkv/", revs[0])
    with pytest.raises(CompactedError) as info:
        await anext(it)
    assert info.value.compact_revision == revs[1]
    it2 = kv.watch_prefix("/tkv/", revs[2])
    assert [(await anext(it2)).value for _ in range(3)] == ["2", "3", "4"]
    await it2.aclose()
    await kv.close()


async def test_lease_expires_without_any_call():
    kv = MemoryKV()
    lease = await kv.grant_lease(1)
    await kv.put("/tkv/l", "x", lease=lease)
    _, rev = await kv.get_prefix("/tkv/")
    it = kv.watch_prefix("/tkv/", rev + 1)
    async with asyncio.timeout(3):
        ev = await anext(it)  # the reaper deletes the key, nobody calls the store
    assert (ev.type, ev.key, ev.prev_value) == ("delete", "/tkv/l", "x")
    await kv.close()


async def test_watch_from_now_is_fixed_at_call_time():
    kv = MemoryKV()
    it = kv.watch_prefix("/tkv/")
    await kv.put("/tkv/a", "1")  # before the first __anext__: still delivered
    assert (await anext(it)).key == "/tkv/a"
    await kv.close()
