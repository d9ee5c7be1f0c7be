"""Allocation under concurrency against the real etcd fixture (and MemoryKV via ``kv``)."""

import asyncio

import pytest

from contivpy.common.errors import ResourceExhaustedError
from contivpy.common.kv.base import Compare, Put
from contivpy.model import keys
from contivpy.model.state import NetworkState
from contivpy.netmaster import ipam
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator


async def _setup(kv, subnet="10.1.0.0/16", gateway=""):
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    body = {"networkName": "tal-net", "tenantName": "default", "encap": "vxlan", "subnet": subnet}
    if gateway:
        body["gateway"] = gateway
    await crud.create_or_update("network", "default:tal-net", body)
    return crud


async def _state(kv) -> NetworkState:
    return NetworkState.from_json((await kv.get(keys.net_state("tal-net.default"))).value)


async def test_100_concurrent_alloc_no_duplicates(kv):
    await _setup(kv)
    alloc = Allocator(kv)
    res = await asyncio.gather(*(alloc.alloc_address("tal-net.default") for _ in range(100)))
    ips = [r["IPv4Address"] for r in res]
    assert len(set(ips)) == 100
    assert (
        sorted(ips, key=lambda s: int(s.split(".")[3].split("/")[0]) + 256 * int(s.split(".")[2]))[0]
        == "10.1.0.1/16"
    )
    st = await _state(kv)
    assert st.epAddrCount == 100
    assert ipam.list_allocated(st) == "10.1.0.1-10.1.0.100"


@pytest.mark.etcd
async def test_two_allocators_racing_never_duplicate(etcd_server, etcd_kv):
    """Two Allocator instances on two separate etcd connections = two netmaster processes."""
    from contivpy.common.kv.etcd import EtcdKV

    await _setup(etcd_kv)
    other_kv = EtcdKV(etcd_server.host, etcd_server.port)
    try:
        a, b = Allocator(etcd_kv), Allocator(other_kv)
        jobs = [x.alloc_address("tal-net.default") for _ in range(40) for x in (a, b)]
        res = await asyncio.gather(*jobs)
        ips = [r["IPv4Address"] for r in res]
        assert len(ips) == 80 and len(set(ips)) == 80
        st = await _state(etcd_kv)
        assert st.epAddrCount == 80 and ipam.list_allocated(st) == "10.1.0.1-10.1.0.80"
        # endpoints created from both sides, each reserving what it was handed
        eps = await asyncio.gather(
            *[
                (a if i % 2 else b).create_endpoint(
                    {
                        "TenantName": "default",
                        "NetworkName": "tal-net",
                        "EndpointID": f"tal{i}",
                        "ConfigEP": {"Container": f"tal{i}", "Host": "h", "IPAddress": ips[i].split("/")[0]},
                    }
                )
                for i in range(20)
            ]
        )
        assert len({e.macAddress for e in eps}) == 20
        st = await _state(etcd_kv)
        assert st.epCount == 20 and st.epAddrCount == 80
    finally:
        await other_kv.close()


async def test_failed_txn_leaves_nothing_allocated(kv):
    """A competing write between read and commit: the losing attempt leaves no trace."""
    await _setup(kv, subnet="10.2.0.0/24")
    alloc = Allocator(kv)
    real_txn = kv.txn
    calls = {"n": 0}

    async def flaky_txn(compares, success, failure=()):
        calls["n"] += 1
        if calls["n"] == 1:  # someone else bumps the network state first
            cur = await kv.get(keys.net_state("tal-net.default"))
            await real_txn([Compare(cur.key, "mod", "==", cur.mod_revision)], [Put(cur.key, cur.value)])
        return await real_txn(compares, success, failure)

    kv.txn = flaky_txn
    try:
        out = await alloc.alloc_address("tal-net.default")
    finally:
        kv.txn = real_txn
    assert calls["n"] == 2 and out["IPv4Address"] == "10.2.0.1/24"
    st = await _state(kv)
    assert st.epAddrCount == 1 and ipam.list_allocated(st) == "10.2.0.1"


async def test_endpoint_failure_rolls_back_nothing_written(kv):
    await _setup(kv, subnet="10.3.0.0/30")
    alloc = Allocator(kv)
    for name in ("e1", "e2"):
        await alloc.create_endpoint(
            {
                "TenantName": "default",
                "NetworkName": "tal-net",
                "EndpointID": name,
                "ConfigEP": {"Container": name, "Host": "h"},
            }
        )
    with pytest.raises(ResourceExhaustedError, match="address exhaustion in subnet 10.3.0.0/30"):
        await alloc.create_endpoint(
            {
                "TenantName": "default",
                "NetworkName": "tal-net",
                "EndpointID": "e3",
                "ConfigEP": {"Container": "e3", "Host": "h"},
            }
        )
    assert await kv.get(keys.ep_state("tal-net.default-e3")) is None
    st = await _state(kv)
    assert (st.epCount, st.epAddrCount) == (2, 2)
    # idempotent create returns the existing endpoint; delete frees and counts down
    again = await alloc.create_endpoint(
        {
            "TenantName": "default",
            "NetworkName": "tal-net",
            "EndpointID": "e1",
            "ConfigEP": {"Container": "e1"},
        }
    )
    assert again.ipAddress == "10.3.0.1"
    await alloc.delete_endpoint({"TenantName": "default", "NetworkName": "tal-net", "EndpointID": "e1"})
    await alloc.delete_endpoint({"TenantName": "default", "NetworkName": "tal-net", "EndpointID": "e1"})
    st = await _state(kv)
    assert (st.epCount, st.epAddrCount) == (1, 1) and ipam.list_available(st) == "10.3.0.1"


async def test_endpoint_creates_trust_their_own_last_write_and_recover_from_others(kv):
    """An Allocator takes the network record it wrote last as it wrote it (no read; the txn
    compares it). A write by anyone else (another netmaster, CRUD) fails that txn once, the retry
    reads, and nothing is handed out twice; a refusal decided on a trusted record is confirmed
    with a read before it is answered."""
    await _setup(kv, subnet="10.1.0.0/24")
    a, b = Allocator(kv), Allocator(kv)
    reads = {"n": 0}
    real_get, real_many = kv.get, kv.get_many

    async def get(key):
        reads["n"] += 1
        return await real_get(key)

    async def get_many(ks):
        reads["n"] += 1
        return await real_many(ks)

    def req(i: int) -> dict:
        return {
            "TenantName": "default",
            "NetworkName": "tal-net",
            "EndpointID": f"tt{i}",
            "ConfigEP": {"Container": f"tt{i}", "Host": "h"},
        }

    kv.get, kv.get_many = get, get_many
    try:
        ips = [(await a.create_endpoint(req(0))).ipAddress]
        n0 = reads["n"]
        ips.append((await a.create_endpoint(req(1))).ipAddress)
        assert reads["n"] == n0  # the second create read nothing
        ips.append((await b.create_endpoint(req(2))).ipAddress)  # the record changes under a
        ips.append((await a.create_endpoint(req(3))).ipAddress)  # stale: its txn fails, it reads
        assert len(set(ips)) == 4
        # a trusted copy that would refuse: a fills the subnet (its copy says "full"), b frees one
        i = 4
        with pytest.raises(ResourceExhaustedError):
            while True:
                ips.append((await a.create_endpoint(req(i))).ipAddress)
                i += 1
        assert len(set(ips)) == len(ips) == i
        await b.delete_endpoint({"TenantName": "default", "NetworkName": "tal-net", "EndpointID": "tt100"})
        got = await a.create_endpoint(req(300))  # confirmed with a read: the freed address
        assert got.ipAddress == ips[100]
        st = await _state(kv)
        assert st.epCount == i and st.epAddrCount == i
    finally:
        kv.get, kv.get_many = real_get, real_many
