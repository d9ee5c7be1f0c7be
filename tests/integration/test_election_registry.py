"""LeaderElection and ServiceRegistry against a real etcd (read back with etcdctl)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from contivpy.common.election import LeaderElection
from contivpy.common.errors import NotLeaderError, StoreError
from contivpy.common.kv import Compare, Put
from contivpy.common.kv.etcd import EtcdKV
from contivpy.common.registry import ServiceEvent, ServiceInfo, ServiceRegistry
from contivpy.model import keys

pytestmark = pytest.mark.etcd


@pytest.fixture
async def etcd_kv2(etcd_server, etcd_kv):
    """A second, independent client (another 'process')."""
    store = EtcdKV(etcd_server.host, etcd_server.port)
    await store.connect()
    yield store
    await store.close()


async def until(pred, timeout: float, step: float = 0.1):
    t0 = time.monotonic()
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(step)
    return time.monotonic() - t0


async def ctl_value(server, key: str) -> str:
    return (await server.aetcdctl("get", key, "--print-value-only")).strip()


async def test_two_elections_one_wins_and_resign_hands_over(etcd_server, etcd_kv, etcd_kv2):
    a = LeaderElection(etcd_kv, holder_id="127.0.0.1:9999", ttl=6)
    b = LeaderElection(etcd_kv2, holder_id="127.0.0.2:9999", ttl=6)
    changes_b = b.changes()
    a.start()
    b.start()
    try:
        await until(lambda: a.is_leader or b.is_leader, 10)
        await asyncio.sleep(0.5)
        assert [a.is_leader, b.is_leader].count(True) == 1
        win, lose = (a, b) if a.is_leader else (b, a)
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == win.holder_id
        await until(lambda: lose.leader() == win.holder_id, 5)
        assert win.leader() == win.holder_id
        # fencing: the leader's txn goes through, a follower cannot even build one
        fence = win.fence()
        assert (await etcd_kv.txn([fence], [Put("/tkv/fenced", "1")])).succeeded
        with pytest.raises(NotLeaderError):
            lose.fence()

        await win.resign()
        assert not win.is_leader
        took = await until(lambda: lose.is_leader, 5)
        assert took < 5
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == lose.holder_id
        assert win.leader() is None  # a resigned instance no longer observes the lock
        # the old leader's fence no longer matches the re-created key
        assert not (await etcd_kv.txn([fence], [Put("/tkv/fenced", "2")])).succeeded
        if lose is b:
            async with asyncio.timeout(2):
                assert await anext(changes_b) == "leader"
    finally:
        await changes_b.aclose()
        await a.stop()
        await b.stop()
    assert await ctl_value(etcd_server, keys.LEADER_LOCK) == ""  # stop() released the lock


class _Partitioned:
    """A store whose writes fail, as for a process cut off from etcd (reads pass through)."""

    _WRITES = {"grant_lease", "keepalive", "revoke_lease", "txn", "put", "delete", "delete_prefix"}

    def __init__(self, kv) -> None:
        self._kv = kv

    def __getattr__(self, name):
        if name in self._WRITES:

            async def fail(*args, **kwargs):
                raise StoreError("partitioned")

            return fail
        return getattr(self._kv, name)


async def test_lease_revoke_moves_leadership(etcd_server, etcd_kv, etcd_kv2):
    seen: list[tuple[str, bool]] = []
    a = LeaderElection(etcd_kv, holder_id="127.0.0.1:9999", ttl=6)
    a.add_callback(lambda lead: seen.append(("a", lead)))
    a.start()
    await until(lambda: a.is_leader, 10)
    b = LeaderElection(etcd_kv2, holder_id="127.0.0.2:9999", ttl=6)
    b.add_callback(lambda lead: seen.append(("b", lead)))
    b.start()
    try:
        await until(lambda: b.leader() == "127.0.0.1:9999", 5)
        assert not b.is_leader
        # a is cut off from etcd (its writes fail) and the etcd side drops its lease, as after a
        # partition longer than the TTL; without the cut a could simply win the lock back
        a.kv = _Partitioned(real_kv := a.kv)
        await etcd_server.aetcdctl("lease", "revoke", f"{a._lease:x}")
        took = await until(lambda: b.is_leader, 6)
        await until(lambda: not a.is_leader, 8)
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == "127.0.0.2:9999"
        assert seen[0] == ("a", True) and ("b", True) in seen and ("a", False) in seen
        assert took < 6
    finally:
        if isinstance(a.kv, _Partitioned):
            a.kv = real_kv
        await a.stop()
        await b.stop()


async def test_leader_keeps_lock_while_refreshing(etcd_server, etcd_kv):
    a = LeaderElection(etcd_kv, holder_id="127.0.0.1:9999", ttl=3)
    a.start()
    try:
        await until(lambda: a.is_leader, 10)
        await asyncio.sleep(7)  # > 2 TTLs: only the refresh keeps the key
        assert a.is_leader
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == "127.0.0.1:9999"
    finally:
        await a.stop()


async def test_restart_retakes_own_lock_at_once_and_fences_old_term(etcd_server, etcd_kv, etcd_kv2):
    """A previous life of "127.0.0.1:9999" (kill -9: its key stays on a live 30 s lease) is retaken
    at once by a new instance with the same id; another id waits; the old term's fence is dead."""
    lease = json.loads(await etcd_server.aetcdctl("lease", "grant", "30", "-w", "json"))["ID"]
    await etcd_server.aetcdctl("put", keys.LEADER_LOCK, "127.0.0.1:9999", f"--lease={lease:x}")
    old = json.loads(await etcd_server.aetcdctl("get", keys.LEADER_LOCK, "-w", "json"))["kvs"][0]
    old_fence = Compare(keys.LEADER_LOCK, "mod", "==", old["mod_revision"])
    assert (await etcd_kv.txn([old_fence], [Put("/tkv/fenced", "old")])).succeeded
    other = LeaderElection(etcd_kv2, holder_id="127.0.0.2:9999", ttl=30)
    other.start()
    again = LeaderElection(etcd_kv, holder_id="127.0.0.1:9999", ttl=30)
    try:
        await until(lambda: other.leader() == "127.0.0.1:9999", 5)
        t0 = time.monotonic()
        again.start()
        await until(lambda: again.is_leader, 5)
        assert time.monotonic() - t0 < 2  # not the 30 s of the old lease
        cur = json.loads(await etcd_server.aetcdctl("get", keys.LEADER_LOCK, "-w", "json"))["kvs"][0]
        assert cur["lease"] == again._lease != lease
        assert cur["create_revision"] == old["create_revision"] < cur["mod_revision"]
        # the new term's fence refers to the new key version; the previous life's fence is dead
        assert again.fence() == Compare(keys.LEADER_LOCK, "mod", "==", cur["mod_revision"])
        assert (await etcd_kv.txn([again.fence()], [Put("/tkv/fenced", "new")])).succeeded
        assert not (await etcd_kv.txn([old_fence], [Put("/tkv/fenced", "stale")])).succeeded
        assert (await etcd_kv.get("/tkv/fenced")).value == "new"
        # the old lease no longer carries the lock: revoking it (its expiry) changes nothing
        await etcd_server.aetcdctl("lease", "revoke", f"{lease:x}")
        await asyncio.sleep(0.5)
        assert again.is_leader and not other.is_leader
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == "127.0.0.1:9999"
        assert other.leader() == "127.0.0.1:9999"
    finally:
        await again.stop()
        await other.stop()
    await etcd_kv.delete("/tkv/fenced")


async def test_other_holder_id_does_not_take_a_live_lock(etcd_server, etcd_kv, etcd_kv2):
    lease = json.loads(await etcd_server.aetcdctl("lease", "grant", "8", "-w", "json"))["ID"]
    await etcd_server.aetcdctl("put", keys.LEADER_LOCK, "127.0.0.9:9999", f"--lease={lease:x}")
    b = LeaderElection(etcd_kv2, holder_id="127.0.0.2:9999", ttl=6)
    b.start()
    try:
        await until(lambda: b.leader() == "127.0.0.9:9999", 5)
        await asyncio.sleep(1.5)
        assert not b.is_leader  # someone else's lock: wait for its lease to go
        await until(lambda: b.is_leader, 12)
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == "127.0.0.2:9999"
    finally:
        await b.stop()


async def test_election_on_memory_kv(memory_kv):
    a = LeaderElection(memory_kv, key="/tkv/lock", holder_id="a:1", ttl=3)
    b = LeaderElection(memory_kv, key="/tkv/lock", holder_id="b:1", ttl=3)
    a.start()
    await until(lambda: a.is_leader, 5)
    b.start()
    try:
        await until(lambda: b.leader() == "a:1", 5)
        await a.stop()
        await until(lambda: b.is_leader, 5)
        assert (await memory_kv.get("/tkv/lock")).value == "b:1"
    finally:
        await a.stop()
        await b.stop()


NM = ServiceInfo("netmaster", "127.0.0.1", 9999, role="follower")


async def test_registry_value_exact_and_role_update(etcd_server, etcd_kv):
    reg = ServiceRegistry(etcd_kv)
    await reg.register(NM)
    try:
        key = "/contiv.io/service/netmaster/127.0.0.1:9999"
        assert await ctl_value(etcd_server, key) == (
            '{"ServiceName":"netmaster","Role":"follower","Version":"","TTL":10,'
            '"HostAddr":"127.0.0.1","Port":9999,"Hostname":""}'
        )
        got = json.loads(await etcd_server.aetcdctl("get", key, "-w", "json"))
        lease = got["kvs"][0]["lease"]
        ttl = json.loads(await etcd_server.aetcdctl("lease", "timetolive", f"{lease:x}", "-w", "json"))
        assert 0 < ttl["ttl"] <= 10 and ttl["granted-ttl"] == 10
        new = await reg.update_role(NM, "leader")
        assert new.role == "leader"
        assert json.loads(await ctl_value(etcd_server, key))["Role"] == "leader"
        assert await reg.list("netmaster") == [new]
    finally:
        await reg.close()
    assert await ctl_value(etcd_server, "/contiv.io/service/netmaster/127.0.0.1:9999") == ""


async def test_registry_watch_add_and_delete(etcd_kv, etcd_kv2):
    mine, other = ServiceRegistry(etcd_kv), ServiceRegistry(etcd_kv2)
    vtep1 = ServiceInfo("netplugin.vtep", "192.0.2.1", 4789)
    vtep2 = ServiceInfo("netplugin.vtep", "192.0.2.2", 4789)
    await other.register(vtep1)
    it = mine.watch("netplugin.vtep")
    try:
        async with asyncio.timeout(10):
            assert await anext(it) == ServiceEvent("add", vtep1)
            await other.register(vtep2)
            assert await anext(it) == ServiceEvent("add", vtep2)
            await other.deregister(vtep1)
            assert await anext(it) == ServiceEvent("delete", vtep1)
        assert await mine.list("netplugin.vtep") == [vtep2]
    finally:
        await it.aclose()
        await other.close()


async def test_registry_key_expires_without_refresh(etcd_server, etcd_kv):
    reg = ServiceRegistry(etcd_kv)
    info = ServiceInfo("netplugin", "127.0.0.1", 9002, ttl=3)
    await reg.register(info)
    key = info.key
    assert await ctl_value(etcd_server, key) != ""
    await asyncio.sleep(5)  # refreshed: still there after > TTL
    assert await ctl_value(etcd_server, key) != ""
    reg._regs[key].task.cancel()  # the process "dies": no more refresh
    t0 = time.monotonic()
    while await ctl_value(etcd_server, key) != "":
        assert time.monotonic() - t0 < 8, "key did not expire"
        await asyncio.sleep(0.3)
    reg._regs.clear()


async def test_registry_close_without_deregister_leaves_keys_to_expire(etcd_server, etcd_kv):
    reg = ServiceRegistry(etcd_kv)
    info = ServiceInfo("netplugin.vtep", "192.0.2.7", 4789, ttl=3)
    await reg.register(info)
    task = reg._regs[info.key].task
    await reg.close(deregister=False)
    assert task.done() and reg.registered() == []
    assert json.loads(await ctl_value(etcd_server, info.key))["HostAddr"] == "192.0.2.7"  # still there
    t0 = time.monotonic()
    while await ctl_value(etcd_server, info.key) != "":
        assert time.monotonic() - t0 < 8, "key did not expire after close(deregister=False)"
        await asyncio.sleep(0.3)


async def test_registry_reregisters_after_lease_loss_and_restart(etcd_server, etcd_kv):
    reg = ServiceRegistry(etcd_kv)
    info = ServiceInfo("netmaster.rpc", "127.0.0.1", 9001, ttl=3)
    await reg.register(info)
    try:
        lease = reg._regs[info.key].lease
        await etcd_server.aetcdctl("lease", "revoke", f"{lease:x}")
        assert await ctl_value(etcd_server, info.key) == ""
        t0 = time.monotonic()
        while await ctl_value(etcd_server, info.key) == "":
            assert time.monotonic() - t0 < 5, "not re-registered after lease loss"
            await asyncio.sleep(0.2)
        await asyncio.to_thread(etcd_server.stop)
        await asyncio.sleep(4)  # longer than the TTL while etcd is down
        await asyncio.to_thread(etcd_server.start)
        await asyncio.sleep(3)
        assert json.loads(await ctl_value(etcd_server, info.key))["ServiceName"] == "netmaster.rpc"
    finally:
        await reg.close()
    assert await ctl_value(etcd_server, info.key) == ""


async def test_leader_survives_etcd_restart(etcd_server, etcd_kv, etcd_kv2):
    a = LeaderElection(etcd_kv, holder_id="127.0.0.1:9999", ttl=9)
    b = LeaderElection(etcd_kv2, holder_id="127.0.0.2:9999", ttl=9)
    a.start()
    await until(lambda: a.is_leader, 10)
    b.start()
    flips: list[bool] = []
    a.add_callback(flips.append)
    try:
        await until(lambda: b.leader() == a.holder_id, 5)
        await asyncio.to_thread(etcd_server.stop)
        await asyncio.sleep(2)
        await asyncio.to_thread(etcd_server.start)
        await asyncio.sleep(8)  # a few refresh periods after the restart
        assert a.is_leader and not b.is_leader and flips == []
        assert await ctl_value(etcd_server, keys.LEADER_LOCK) == a.holder_id
        assert b.leader() == a.holder_id
    finally:
        await a.stop()
        await b.stop()
