"""VRF id allocation (netplugin/vrf.py) on the in-memory store, and the ofnet agent's pinned mode.

Checks: ids persist in the ovs-driver record and a second allocator (a restarted agent) reads the same
ids whatever order it asks in; concurrent allocations of different tenants never share an id; the port
counter and LocalEpInfo written by another writer of the record survive; release + prune; exhaustion is
a clear error; a pinned agent refuses a tenant without an id and conflicting ids, changing nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.errors import ConflictError, NotFoundError, ResourceExhaustedError
from contivpy.common.kv.memory import MemoryKV
from contivpy.model.keys import ovs_driver_oper
from contivpy.model.state import OvsDriverOper
from contivpy.netplugin.vrf import VrfAllocator
from contivpy.ofnet.agent import OfnetAgent
from contivpy.ofnet.types import Service


async def record(kv) -> OvsDriverOper:
    return OvsDriverOper.from_json((await kv.get(ovs_driver_oper("h1"))).value)


async def test_ids_persist_and_restart_reads_them_in_any_order():
    kv = MemoryKV()
    a = VrfAllocator(kv, "h1")
    assert await a.ensure("zt") == 1 and await a.ensure("at") == 2 and await a.ensure("zt") == 1
    b = VrfAllocator(kv, "h1")  # a restarted agent replaying in another order
    assert await b.ensure("at") == 2 and await b.ensure("zt") == 1
    assert (await record(kv)).vrfIds == {"zt": 1, "at": 2}
    assert await VrfAllocator(kv, "h2").ensure("at") == 1  # per host


async def test_concurrent_allocations_and_other_writers_of_the_record():
    kv = MemoryKV()
    key = ovs_driver_oper("h1")
    await kv.put(
        key, OvsDriverOper(id="h1", currPortNum=7, LocalEpInfo={"e": {"Ovsportname": "vvport7"}}).to_json()
    )
    allocs = [VrfAllocator(kv, "h1") for _ in range(5)]
    ids = await asyncio.gather(*(a.ensure(f"t{i}") for i, a in enumerate(allocs)))
    assert sorted(ids) == [1, 2, 3, 4, 5]
    rec = await record(kv)
    assert rec.currPortNum == 7 and rec.LocalEpInfo == {"e": {"Ovsportname": "vvport7"}}
    assert rec.vrfIds == {f"t{i}": vid for i, vid in enumerate(ids)}


async def test_release_prune_and_exhaustion():
    kv = MemoryKV()
    a = VrfAllocator(kv, "h1")
    for i in range(255):
        await a.ensure(f"t{i}")
    with pytest.raises(ResourceExhaustedError, match="no free VRF id"):
        await a.ensure("one-more")
    await a.release("t3")
    assert await a.ensure("one-more") == 4
    await a.release("absent")
    stale = sorted(t for t in (await record(kv)).vrfIds if t not in {"t0", "one-more"})
    assert len(stale) == 253 and await VrfAllocator(kv, "h1").prune({"t0", "one-more"}) == stale
    assert (await record(kv)).vrfIds == {"t0": 1, "one-more": 4}


async def test_pinned_agent_takes_only_given_ids():
    ag = OfnetAgent("br", "vxlan")
    await ag.add_network(10, 5010, "", "zt", "10.1.1.0/24", vrf_id=2)
    assert ag._vrf_ids == {"zt": 2}
    with pytest.raises(NotFoundError, match="no VRF id"):
        await ag.add_service(Service(vip="10.9.9.9", vrf="other", ports=((80, 8080, "tcp"),)))
    assert ag.services() == []
    with pytest.raises(ConflictError, match="already belongs to tenant zt"):
        await ag.add_network(11, 5011, "", "at", "10.1.2.0/24", vrf_id=2)
    with pytest.raises(ConflictError, match="already has VRF id 2"):
        await ag.add_network(12, 5012, "", "zt", "10.1.3.0/24", vrf_id=3)
    assert set(ag._networks) == {10} and ag._vrf_ids == {"zt": 2}
    await ag.remove_network(10)
    assert ag._vrf_ids == {}


async def test_network_manager_allocates_before_programming_and_releases_with_last_network():
    from contivpy.model.state import NetworkState
    from contivpy.netplugin.fakedatapath import FakeDatapath
    from contivpy.netplugin.managers.network import NetworkManager

    def net(name: str, tenant: str, vlan: int) -> str:
        return NetworkState(
            id=f"{name}.{tenant}", networkName=name, tenant=tenant, pktTagType="vxlan", pktTag=vlan,
            extPktTag=5000 + vlan, subnetIP=f"10.1.{vlan}.0", subnetLen=24,
        ).to_json()  # fmt: skip

    kv = MemoryKV()
    nets = NetworkManager(FakeDatapath(), VrfAllocator(kv, "h1"))
    for name, tenant, vlan in (("z", "zt", 1), ("a", "at", 2), ("b", "zt", 3)):
        nets.on_update(f"{name}.{tenant}", net(name, tenant, vlan))
        await nets.reconcile(f"{name}.{tenant}")
    assert {n: s.vrf_id for n, s in nets.applied.items()} == {"z.zt": 1, "a.at": 2, "b.zt": 1}
    nets.on_update("z.zt", None)
    await nets.reconcile("z.zt")
    assert (await record(kv)).vrfIds == {"zt": 1, "at": 2}, "b.zt still holds tenant zt's id"
    nets.on_update("b.zt", None)
    await nets.reconcile("b.zt")
    assert (await record(kv)).vrfIds == {"at": 2}
