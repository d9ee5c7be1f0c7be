"""KVStore contract: the same suite against MemoryKV and EtcdKV (a real etcd from the fixture).

Each test asserts etcd v3 semantics that callers rely on (revisions, txn compares, leases,
watch replay/order, restart survival). Keys live under /tkv/ and the fixtures wipe them.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from contivpy.common.errors import CompactedError, StoreError
from contivpy.common.kv import Compare, Delete, Event, KVStore, Put, open_store
from contivpy.common.kv.etcd import EtcdKV
from contivpy.common.kv.memory import MemoryKV

P = "/tkv/"


async def take(it, n: int, timeout: float = 10.0) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(it))
    return out


async def nothing_more(it, wait: float = 0.5) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            ev = await anext(it)
            raise AssertionError(f"unexpected event {ev}")


def brief(evs: list[Event]) -> list[tuple]:
    return [(e.type, e.key, e.value) for e in evs]


async def test_is_a_kvstore(kv):
    assert isinstance(kv, KVStore)


async def test_put_get_delete_revisions(kv):
    r1 = await kv.put(P + "a", "1")
    got = await kv.get(P + "a")
    assert (got.value, got.create_revision, got.mod_revision, got.version, got.lease) == ("1", r1, r1, 1, 0)
    r2 = await kv.put(P + "a", "2")
    assert r2 == r1 + 1
    got = await kv.get(P + "a")
    assert (got.value, got.create_revision, got.mod_revision, got.version) == ("2", r1, r2, 2)
    assert await kv.delete(P + "a") is True
    assert await kv.delete(P + "a") is False
    assert await kv.get(P + "a") is None
    # re-creating starts a new life: new create revision, version 1
    r4 = await kv.put(P + "a", "3")
    got = await kv.get(P + "a")
    assert (got.create_revision, got.version) == (r4, 1)


async def test_get_prefix_sorted_with_revision(kv):
    for k in ["c", "a", "b/x", "b"]:
        last = await kv.put(P + "p/" + k, k.upper())
    await kv.put(P + "pz", "outside")  # same string prefix without the slash: not included
    items, rev = await kv.get_prefix(P + "p/")
    assert [i.key for i in items] == [P + "p/a", P + "p/b", P + "p/b/x", P + "p/c"]
    assert [i.value for i in items] == ["A", "B", "B/X", "C"]
    assert rev == last + 1
    assert await kv.delete_prefix(P + "p/") == 4
    assert (await kv.get_prefix(P + "p/"))[0] == []
    assert (await kv.get(P + "pz")).value == "outside"


async def test_get_range_bounded_and_ordered(kv):
    for k in ["10", "20", "30", "40"]:
        await kv.put(P + "g/" + k, k)
    await kv.put(P + "h", "outside")
    got = await kv.get_range(P + "g/15", P + "g/35")
    assert [i.value for i in got] == ["20", "30"]
    assert [i.value for i in await kv.get_range(P + "g/", P + "g/35", limit=1)] == ["10"]
    assert [i.value for i in await kv.get_range(P + "g/25", P + "g0", limit=2)] == ["30", "40"]
    assert await kv.get_range(P + "g/41", P + "g0") == []
    await kv.delete_prefix(P + "g/")
    await kv.delete(P + "h")


async def test_get_many_one_snapshot(kv):
    r1 = await kv.put(P + "m/a", "A")
    await kv.put(P + "m/b", "B")
    got = await kv.get_many([P + "m/b", P + "m/none", P + "m/a"])
    assert [g.value if g else None for g in got] == ["B", None, "A"]
    assert got[2].mod_revision == r1 and got[2].version == 1
    assert await kv.get_many([]) == []
    with pytest.raises(StoreError):
        await kv.get_many([P + "m/a"] * 101)
    await kv.delete_prefix(P + "m/")


async def test_txn_create_if_absent(kv):
    absent = [Compare(P + "lock", "version", "==", 0)]
    r = await kv.txn(absent, [Put(P + "lock", "me")], [Put(P + "lost", "1")])
    assert r.succeeded and (await kv.get(P + "lock")).mod_revision == r.revision
    r2 = await kv.txn(absent, [Put(P + "lock", "you")], [Put(P + "lost", "1")])
    assert not r2.succeeded
    assert (await kv.get(P + "lock")).value == "me"
    assert (await kv.get(P + "lost")).value == "1"  # failure branch ran
    # create-revision compare works as the same guard
    r3 = await kv.txn([Compare(P + "lock", "create", "==", 0)], [Put(P + "lock", "x")])
    assert not r3.succeeded


async def test_txn_cas_on_mod_revision_and_value(kv):
    rev = await kv.put(P + "ctr", "1")
    ok = await kv.txn([Compare(P + "ctr", "mod", "==", rev)], [Put(P + "ctr", "2")])
    assert ok.succeeded
    stale = await kv.txn([Compare(P + "ctr", "mod", "==", rev)], [Put(P + "ctr", "3")])
    assert not stale.succeeded and (await kv.get(P + "ctr")).value == "2"
    assert (await kv.txn([Compare(P + "ctr", "value", "==", "2")], [Delete(P + "ctr")])).succeeded
    assert await kv.get(P + "ctr") is None
    # value compare against a missing key is false (etcd semantics)
    assert not (await kv.txn([Compare(P + "ctr", "value", "!=", "zz")], [Put(P + "ctr", "9")])).succeeded


async def test_txn_multi_op_is_one_revision_and_prefix_delete(kv):
    await kv.put(P + "d/1", "a")
    await kv.put(P + "d/2", "b")
    r = await kv.txn([], [Delete(P + "d/", prefix=True), Put(P + "e", "x"), Put(P + "f", "y")])
    assert r.succeeded
    assert (await kv.get(P + "e")).mod_revision == (await kv.get(P + "f")).mod_revision == r.revision
    assert (await kv.get_prefix(P + "d/"))[0] == []


async def test_two_concurrent_cas_writers_exactly_one_wins(kv):
    rev = await kv.put(P + "alloc", "0")
    results = await asyncio.gather(
        *(kv.txn([Compare(P + "alloc", "mod", "==", rev)], [Put(P + "alloc", f"w{i}")]) for i in range(2))
    )
    winners = [i for i, r in enumerate(results) if r.succeeded]
    assert len(winners) == 1
    assert (await kv.get(P + "alloc")).value == f"w{winners[0]}"


async def test_lease_expiry_removes_keys(kv):
    lease = await kv.grant_lease(2)
    await kv.put(P + "svc", "up", lease=lease)
    got = await kv.get(P + "svc")
    assert got.lease == lease
    assert (await kv.txn([Compare(P + "svc", "lease", "==", lease)], [])).succeeded
    async with asyncio.timeout(8):
        while await kv.get(P + "svc") is not None:
            await asyncio.sleep(0.2)
    with pytest.raises(StoreError):
        await kv.keepalive(lease)


async def test_keepalive_keeps_key(kv):
    lease = await kv.grant_lease(2)
    await kv.put(P + "svc", "up", lease=lease)
    for _ in range(8):  # 4 s, twice the TTL
        await asyncio.sleep(0.5)
        await kv.keepalive(lease)
    assert (await kv.get(P + "svc")).value == "up"
    await kv.revoke_lease(lease)


async def test_revoke_deletes_now_and_watch_sees_it(kv):
    lease = await kv.grant_lease(30)
    rev = await kv.put(P + "r/a", "1", lease=lease)
    await kv.put(P + "r/b", "2", lease=lease)
    await kv.revoke_lease(lease)
    assert (await kv.get_prefix(P + "r/"))[0] == []
    it = kv.watch_prefix(P + "r/", rev)
    try:
        evs = await take(it, 4)
    finally:
        await it.aclose()
    assert brief(evs) == [("put", P + "r/a", "1"), ("put", P + "r/b", "2")] + [
        ("delete", P + "r/a", ""),
        ("delete", P + "r/b", ""),
    ]
    assert evs[2].mod_revision == evs[3].mod_revision  # one revision for the whole revoke
    with pytest.raises(StoreError):
        await kv.keepalive(lease)
    with pytest.raises(StoreError):
        await kv.put(P + "x", "1", lease=lease)


async def test_watch_from_revision_replays_exactly_later_changes(kv):
    await kv.put(P + "w/a", "1")
    r2 = await kv.put(P + "w/b", "2")
    await kv.put(P + "other", "not watched")
    await kv.delete(P + "w/a")
    await kv.put(P + "w/b", "3")
    it = kv.watch_prefix(P + "w/", r2)
    try:
        evs = await take(it, 3)
        assert brief(evs) == [("put", P + "w/b", "2"), ("delete", P + "w/a", ""), ("put", P + "w/b", "3")]
        assert evs[1].prev_value == "1" and evs[2].prev_value == "2"
        assert [e.mod_revision for e in evs] == sorted(e.mod_revision for e in evs)
        await nothing_more(it)
        r_live = await kv.put(P + "w/c", "4")
        (ev,) = await take(it, 1)
        assert (ev.type, ev.key, ev.value, ev.mod_revision) == ("put", P + "w/c", "4", r_live)
    finally:
        await it.aclose()


async def test_watch_live_put_and_delete(kv):
    _, rev = await kv.get_prefix(P + "live/")
    it = kv.watch_prefix(P + "live/", rev + 1)
    try:
        await kv.put(P + "live/k", "v")
        await kv.delete(P + "live/k")
        evs = await take(it, 2)
    finally:
        await it.aclose()
    assert brief(evs) == [("put", P + "live/k", "v"), ("delete", P + "live/k", "")]
    assert evs[1].prev_value == "v" and evs[1].mod_revision == evs[0].mod_revision + 1


async def test_watch_compacted_revision_raises(kv):
    r1 = await kv.put(P + "c", "1")
    await kv.put(P + "c", "2")
    r3 = await kv.put(P + "c", "3")
    await kv.compact(r3)
    it = kv.watch_prefix(P, r1)
    with pytest.raises(CompactedError):
        await take(it, 1)
    it2 = kv.watch_prefix(P, r3)  # the compaction revision itself is still available
    try:
        (ev,) = await take(it2, 1)
        assert ev.value == "3"
    finally:
        await it2.aclose()


@pytest.mark.etcd
async def test_etcd_watch_survives_server_restart(etcd_server, etcd_kv):
    _, rev = await etcd_kv.get_prefix(P)
    it = etcd_kv.watch_prefix(P, rev + 1)
    try:
        await etcd_kv.put(P + "before", "1")
        assert brief(await take(it, 1)) == [("put", P + "before", "1")]
        pending = asyncio.ensure_future(take(it, 3, timeout=40))
        await asyncio.to_thread(etcd_server.stop)
        await asyncio.sleep(1.0)  # the watch notices and retries while etcd is down
        await asyncio.to_thread(etcd_server.start)
        # written by another client while ours was reconnecting: must still be delivered
        await etcd_server.aetcdctl("put", P + "during", "2")
        async with asyncio.timeout(20):
            while True:
                try:
                    await etcd_kv.put(P + "after", "3")
                    break
                except StoreError:
                    await asyncio.sleep(0.3)
        await etcd_kv.delete(P + "before")
        evs = await pending
        assert brief(evs) == [
            ("put", P + "during", "2"),
            ("put", P + "after", "3"),
            ("delete", P + "before", ""),
        ]
        await nothing_more(it)
    finally:
        await it.aclose()


@pytest.mark.etcd
async def test_etcd_unary_calls_work_right_after_restart(etcd_server, etcd_kv):
    """After etcd was down for a while, the first call once it is back succeeds (no retry loop):
    the channel reconnects within ~1 s and a call waits up to ``ready_grace`` for it. With gRPC's
    default backoff the channel stayed in TRANSIENT_FAILURE for seconds and calls failed with
    UNAVAILABLE (the CI failure of test_registry_and_watches_on_shared_modules)."""
    await etcd_kv.put(P + "k", "1")
    await asyncio.to_thread(etcd_server.stop)
    try:
        with pytest.raises(StoreError):
            await etcd_kv.get(P + "k")
        await asyncio.sleep(6.0)  # long enough for the default backoff to reach several seconds
    finally:
        await asyncio.to_thread(etcd_server.start)
    assert (await etcd_kv.get(P + "k")).value == "1"
    await etcd_kv.put(P + "k", "2")
    assert (await etcd_kv.get(P + "k")).value == "2"


@pytest.mark.etcd
async def test_etcd_values_visible_to_etcdctl(etcd_server, etcd_kv):
    await etcd_kv.put(P + "json", '{"a": 1}')
    assert etcd_server.etcdctl("get", P + "json", "--print-value-only").strip() == '{"a": 1}'
    etcd_server.etcdctl("put", P + "fromctl", "x")
    assert (await etcd_kv.get(P + "fromctl")).value == "x"


@pytest.mark.etcd
async def test_etcd_unreachable_is_store_error():
    store = EtcdKV("127.0.0.1", 1, timeout=2)
    try:
        with pytest.raises(StoreError):
            await store.get("/x")
    finally:
        await store.close()


async def test_open_store_urls(monkeypatch):
    monkeypatch.delenv("CONTIVPY_ETCD_CLIENT", raising=False)  # the default client
    assert isinstance(open_store("memory://"), MemoryKV)
    for url, hp in [
        ("http://127.0.0.1:2379", ("127.0.0.1", 2379)),
        ("etcd://10.0.0.1:4001", ("10.0.0.1", 4001)),
        ("http://1.2.3.4:1111,http://5.6.7.8:2222", ("1.2.3.4", 1111)),
        ("http://localhost", ("localhost", 2379)),
    ]:
        s = open_store(url)
        assert isinstance(s, EtcdKV) and (s.host, s.port) == hp and not s.tls
    assert open_store("https://h:2379").tls
    # a comma list: every member is used (defect 7: the first one only, before)
    s = open_store("http://1.2.3.4:1111, http://5.6.7.8:2222,etcd://9.9.9.9")
    assert s.endpoints == [("1.2.3.4", 1111), ("5.6.7.8", 2222), ("9.9.9.9", 2379)]
    from contivpy.common.errors import ValidationError

    bad_urls = ["", "consul://h:8500", "http://:99", "http://h:notaport", "http://a:1,https://b:2"]
    for bad in bad_urls:
        with pytest.raises(ValidationError):
            open_store(bad)
    with pytest.raises(ValidationError):  # TLS files need https:// endpoints
        open_store("http://h:2379", ca_file="/x")


async def test_close_ends_open_watch_and_calls(kv):
    _, rev = await kv.get_prefix(P)
    it = kv.watch_prefix(P, rev + 1)
    await kv.put(P + "k", "v")
    assert brief(await take(it, 1)) == [("put", P + "k", "v")]
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.2)
    await kv.close()
    with pytest.raises(StoreError):
        async with asyncio.timeout(5):
            await pending
    with pytest.raises(StoreError):
        await kv.get(P + "k")


async def test_dropped_watch_stops(kv):
    """Leaving ``async for`` with break and dropping the iterator releases the watch."""
    _, rev = await kv.get_prefix(P)
    await kv.put(P + "k", "v")
    async for ev in kv.watch_prefix(P, rev + 1):
        assert ev.value == "v"
        break
    await asyncio.sleep(0.2)
    pumps = [t for t in asyncio.all_tasks() if t.get_name().startswith("etcd-watch") and not t.done()]
    assert pumps == []
    assert getattr(kv, "_watchers", []) == []
