"""Defect 7: with a real 3-member etcd cluster, losing one member (kill -9) costs at most one
failed netmaster write, and registration leases (the agents' VTEP keys) stay alive.

A real netmaster process is given every member (``--etcd-endpoints a,b,c``); a client writes
tenants through its REST API, one after another, while a member is killed. The service registry
(the code netplugin registers ``netplugin.vtep`` with) runs in the test on its own store, also on
every member; a third connection watches the service keys. Cases: the member the clients are
connected to (the first of the list; made a raft follower first), and the raft leader.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from contivpy.common.kv import open_store
from contivpy.common.registry import ServiceInfo, ServiceRegistry
from tests.fixtures.netmaster import NetmasterProc

pytestmark = pytest.mark.etcd


def _status(cluster) -> list[dict]:
    return json.loads(cluster.etcdctl("endpoint", "status", "--write-out=json"))


def _make_follower(cluster, i: int) -> None:
    """Move raft leadership away from member ``i`` (the clients' pick_first member)."""
    sts = _status(cluster)
    leader = next(s for s in sts if s["Status"]["leader"] == s["Status"]["header"]["member_id"])
    if leader["Endpoint"] != cluster.members[i].url:
        return
    other = next(s for s in sts if s["Endpoint"] != cluster.members[i].url)
    cluster.etcdctl(
        "move-leader", format(other["Status"]["header"]["member_id"], "x"), endpoints=leader["Endpoint"]
    )
    deadline = time.monotonic() + 10
    while cluster.leader() == i and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("victim", ["connected", "leader"])
async def test_member_kill_costs_at_most_one_write(etcd_cluster, tmp_path, victim):
    nm = NetmasterProc(etcd_cluster.url, [], {}, tmp_path)
    nm.start()
    store = open_store(etcd_cluster.url)
    observer = open_store(etcd_cluster.url)
    reg = ServiceRegistry(store)
    info = ServiceInfo("netplugin.vtep", "127.0.0.1", 4789)
    deletes: list[str] = []
    leases: set[int] = set()
    try:
        await asyncio.to_thread(nm.wait_ready)
        await reg.register(info)
        leases.add((await store.get(info.key)).lease)

        async def watch():
            async for ev in observer.watch_prefix("/contiv.io/service/netplugin.vtep/"):
                if ev.type == "delete":
                    deletes.append(ev.key)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        if victim == "connected":
            await asyncio.to_thread(_make_follower, etcd_cluster, 0)
            idx = 0
        else:
            idx = await asyncio.to_thread(etcd_cluster.leader)

        acked: list[str] = []
        failed: list[tuple[str, int, str]] = []

        def write(i: int) -> None:
            name = f"tkc{i}"
            try:
                st, _, body = nm.request("POST", f"/api/v1/tenants/{name}/", {"tenantName": name})
            except OSError as exc:
                st, body = 0, str(exc)
            (acked.append(name) if st == 200 else failed.append((name, st, body)))

        for i in range(5):
            await asyncio.to_thread(write, i)
        etcd_cluster.kill(idx)
        killed_at = time.monotonic()
        i = 5
        # write on for longer than the registration TTL (10 s): keepalives must go through
        while time.monotonic() - killed_at < 13:
            await asyncio.to_thread(write, i)
            i += 1
            await asyncio.sleep(0.05)
        assert len(failed) <= 1, failed
        assert len(acked) >= i - 1
        # every acknowledged write is there
        kvs, _ = await store.get_prefix("/contiv.io/obj/modeldb/tenant/tkc")
        assert set(acked) <= {k.key.rsplit("/", 1)[1] for k in kvs}
        # the registration never expired: same lease, key never deleted
        cur = await store.get(info.key)
        assert cur is not None and cur.lease in leases, "registration lease changed"
        assert deletes == []
        # netmaster's own registration is still there too
        assert await store.get(f"/contiv.io/service/netmaster/127.0.0.1:{nm.port}") is not None
        watcher.cancel()
    finally:
        nm.stop()
        await reg.close()
        await store.close()
        await observer.close()
