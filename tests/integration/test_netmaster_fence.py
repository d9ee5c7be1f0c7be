"""Defect 6: a deposed leader's in-flight write is refused, on the CRUD and the /plugin/* paths.

Real etcd (``etcd_kv``), a real ``LeaderElection`` and the ``FencedStore`` view netmaster hands to
its writers. A gate between the view and the store holds one request after its read (or just
before its txn leaves); meanwhile the test takes the lock away in etcd (another holder writes the
key, as a follower would after our lease expired). Released, the write must fail with
NotLeaderError and leave nothing behind:
- "after read": the election has noticed the loss before the commit (the old code then sent the
  write with no fence at all and it committed);
- "in flight": the fence was attached while still leader and the lock is lost before etcd sees
  the txn (the compare fails in etcd).
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.election import LeaderElection
from contivpy.common.errors import NotLeaderError
from contivpy.common.kv.base import Compare, Put
from contivpy.common.kv.fenced import FencedStore
from contivpy.model import keys
from contivpy.model.state import NetworkState
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator

pytestmark = pytest.mark.etcd

LOCK = "/contiv.io/lock/tfence/leader"
NET = "tfence-net.default"


class Gate:
    """Delegates to the real store; holds one call: after ``get(key)`` (or a ``get_many`` naming
    it) returned, or before a txn."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.key: str | None = None
        self.on_txn = False
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def _hold(self) -> None:
        self.key, self.on_txn = None, False
        self.paused.set()
        await self.release.wait()

    async def get(self, key):
        res = await self.inner.get(key)
        if key == self.key:
            await self._hold()
        return res

    async def get_many(self, keys):  # crud prefetches a request's records in one read
        res = await self.inner.get_many(keys)
        if self.key in keys:
            await self._hold()
        return res

    async def txn(self, compares, success, failure=()):
        if self.on_txn:
            await self._hold()
        return await self.inner.txn(compares, success, failure)


async def _steal(kv) -> None:
    """Another instance holds the lock now (a new term: the key is rewritten)."""
    await kv.txn([], [Put(LOCK, "127.0.0.1:1")])


async def _setup(etcd_kv):
    election = LeaderElection(etcd_kv, LOCK, holder_id="127.0.0.1:2", ttl=6)
    election.start()
    async with asyncio.timeout(10):
        while not election.is_leader:
            await asyncio.sleep(0.05)
    gate = Gate(etcd_kv)
    fenced = FencedStore(gate, election.fence)
    crud = Crud(fenced, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    body = {"networkName": "tfence-net", "tenantName": "default", "encap": "vxlan", "subnet": "10.9.0.0/24"}
    await crud.create_or_update("network", "default:tfence-net", body)
    return election, gate, crud, Allocator(fenced, "test")


async def _deposed_write(etcd_kv, election, gate, write, mode: str):
    if mode == "after-read":
        gate.on_txn = False
    else:
        gate.on_txn = True
    task = asyncio.create_task(write())
    async with asyncio.timeout(10):
        await gate.paused.wait()
    _, rev_before = await etcd_kv.get_prefix("/contiv.io/state/")
    await _steal(etcd_kv)
    if mode == "after-read":
        async with asyncio.timeout(10):  # the election notices before the write goes out
            while election.is_leader:
                await asyncio.sleep(0.05)
    gate.release.set()
    with pytest.raises(NotLeaderError):
        async with asyncio.timeout(10):
            await task
    return rev_before


async def _net(kv) -> NetworkState:
    return NetworkState.from_json((await kv.get(keys.net_state(NET))).value)


@pytest.mark.parametrize("mode", ["after-read", "in-flight"])
async def test_deposed_leader_crud_write_refused(etcd_kv, mode):
    election, gate, crud, _ = await _setup(etcd_kv)
    try:
        gate.key = keys.obj_key("tenant", "tfence-t")

        async def write():
            await crud.create_or_update("tenant", "tfence-t", {"tenantName": "tfence-t"})

        await _deposed_write(etcd_kv, election, gate, write, mode)
        assert await etcd_kv.get(keys.obj_key("tenant", "tfence-t")) is None
        tenant = await etcd_kv.get(keys.obj_key("tenant", "default"))
        assert "tfence-t" not in tenant.value
        # and a plain follower write is refused before it is sent
        with pytest.raises(NotLeaderError):
            await crud.create_or_update("tenant", "tfence-u", {"tenantName": "tfence-u"})
        assert await etcd_kv.get(keys.obj_key("tenant", "tfence-u")) is None
    finally:
        await election.stop()


@pytest.mark.parametrize("mode", ["after-read", "in-flight"])
@pytest.mark.parametrize("route", ["allocAddress", "createEndpoint"])
async def test_deposed_leader_plugin_write_refused(etcd_kv, mode, route):
    election, gate, _, alloc = await _setup(etcd_kv)
    try:
        before = await _net(etcd_kv)
        gate.key = keys.net_state(NET)
        if route == "allocAddress":

            async def write():
                await alloc.alloc_address(NET)
        else:

            async def write():
                await alloc.create_endpoint(
                    {
                        "TenantName": "default",
                        "NetworkName": "tfence-net",
                        "EndpointID": "tfence1",
                        "ConfigEP": {"Container": "tfence1", "Host": "h"},
                    }
                )

        await _deposed_write(etcd_kv, election, gate, write, mode)
        after = await _net(etcd_kv)
        assert after == before  # no address handed out, no counter moved
        eps, _ = await etcd_kv.get_prefix(keys.EPS)
        assert eps == []
    finally:
        await election.stop()


async def test_fenced_blind_writes(etcd_kv):
    """put/delete through the view carry the fence too; reads pass through."""
    election = LeaderElection(etcd_kv, LOCK, holder_id="127.0.0.1:2", ttl=6)
    election.start()
    try:
        async with asyncio.timeout(10):
            while not election.is_leader:
                await asyncio.sleep(0.05)
        fenced = FencedStore(etcd_kv, election.fence)
        await fenced.put("/tfence/a", "1")
        assert (await fenced.get("/tfence/a")).value == "1"
        assert await fenced.delete("/tfence/a") is True
        assert await fenced.delete("/tfence/a") is False
        await fenced.put("/tfence/b", "1")
        cur = election.fence()
        await etcd_kv.txn([Compare(LOCK, "mod", "==", cur.value)], [Put(LOCK, "127.0.0.1:1")])
        with pytest.raises(NotLeaderError):
            await fenced.put("/tfence/b", "2")
        with pytest.raises(NotLeaderError):
            await fenced.delete("/tfence/b")
        assert (await etcd_kv.get("/tfence/b")).value == "1"
    finally:
        await election.stop()
