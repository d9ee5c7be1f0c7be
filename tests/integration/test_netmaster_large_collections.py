"""Regression tests for the control-plane fixes found by bench/bench_netmaster.py.

- More than 128 networks in one tenant: the network create hook used to read every other network
  of the tenant with a fenced point read, one txn compare each, so etcd refused the 126th create
  ("too many operations in txn request").
- allocAddress group commit (endpoints.Allocator): concurrent requests of one network share one
  read + txn, yet each keeps its own outcome (a preferred address in use, an unknown group and
  subnet exhaustion fail only their own request), and batches larger than MAX_BATCH never
  hand out an address twice.
"""

import asyncio
import ipaddress

import pytest

from contivpy.common.errors import NotFoundError, ResourceExhaustedError
from contivpy.model import keys
from contivpy.model.state import NetworkState
from contivpy.netmaster import ipam
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import MAX_BATCH, Allocator


async def _crud(kv) -> Crud:
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    return crud


async def _net(crud: Crud, name: str, subnet: str) -> None:
    body = {"networkName": name, "tenantName": "default", "encap": "vxlan", "subnet": subnet}
    await crud.create_or_update("network", f"default:{name}", body)


@pytest.mark.etcd
async def test_more_than_128_networks_in_one_tenant(etcd_kv):
    crud = await _crud(etcd_kv)
    for i in range(140):
        await _net(crud, f"tbmnet{i:03d}", f"10.{100 + i // 256}.{i % 256}.0/24")
    nets = await crud.list("network")
    assert len(nets) == 140
    tenant = await crud.get("tenant", "default")
    assert len(tenant["link-sets"]["Networks"]) == 140
    with pytest.raises(Exception, match="conflicts with subnet"):  # overlap still detected
        await _net(crud, "tbmclash", "10.100.139.0/25")


async def test_group_commit_keeps_each_request_outcome(kv):
    crud = await _crud(kv)
    await _net(crud, "tbmn", "10.9.0.0/29")  # hosts .1-.6
    a = Allocator(kv)
    jobs = [
        a.alloc_address("tbmn.default", "", "10.9.0.3"),
        a.alloc_address("tbmn.default", "", "10.9.0.3"),
        a.alloc_address("tbmn:nogroup.default"),
    ] + [a.alloc_address("tbmn.default") for _ in range(6)]
    res = await asyncio.gather(*jobs, return_exceptions=True)
    # requests may reach the network's queue in any order: assert outcomes, not which one came first
    assert isinstance(res[2], NotFoundError) and str(res[2]) == "key not found"  # the original's words
    preferred, auto = res[:2], res[3:]
    got_pref = [r for r in preferred if isinstance(r, dict)]
    assert len(got_pref) <= 1  # one address, two requests for it: never both
    assert all(r == {"NetworkID": "tbmn.default", "IPv4Address": "10.9.0.3/29"} for r in got_pref)
    assert all(isinstance(r, ResourceExhaustedError) for r in preferred if not isinstance(r, dict))
    assert any("10.9.0.3 is not available" in str(r) for r in preferred if not isinstance(r, dict))
    got = [r["IPv4Address"] for r in got_pref + [r for r in auto if isinstance(r, dict)]]
    assert sorted(got) == [f"10.9.0.{i}/29" for i in range(1, 7)]  # every host once, no duplicate
    assert all(isinstance(r, ResourceExhaustedError) for r in auto if not isinstance(r, dict))
    st = NetworkState.from_json((await kv.get(keys.net_state("tbmn.default"))).value)
    assert st.epAddrCount == 6 and ipam.list_allocated(st) == "10.9.0.1-10.9.0.6"


async def test_group_commit_beyond_max_batch_no_duplicates(kv):
    crud = await _crud(kv)
    await _net(crud, "tbmbig", "10.8.0.0/20")
    a = Allocator(kv)
    n = 3 * MAX_BATCH + 7
    res = await asyncio.gather(*(a.alloc_address("tbmbig.default") for _ in range(n)))
    ips = [r["IPv4Address"] for r in res]
    assert len(set(ips)) == n
    st = NetworkState.from_json((await kv.get(keys.net_state("tbmbig.default"))).value)
    assert st.epAddrCount == n
    # released addresses are handed out again by the next batch (first fit)
    await a.release_address("tbmbig.default", "10.8.0.5")
    assert (await a.alloc_address("tbmbig.default"))["IPv4Address"] == "10.8.0.5/20"


class _TxnSizes:
    """The store, recording the compare and op counts of every txn (etcd refuses more than 128 of
    either: ``--max-txn-ops``)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.sizes: list[tuple[int, int]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def txn(self, compares, success, failure=()):
        self.sizes.append((len(compares), len(success)))
        return await self.inner.txn(compares, success, failure)


@pytest.mark.etcd
async def test_alloc_batch_of_one_request_per_pool_group_fits_etcd_txn(etcd_kv):
    """One allocAddress per endpoint group with an ip-pool, all queued on one network: every group
    in a batch adds a compare and a put, and every request an allocation record (a compare and a
    put), so without MAX_BATCH the batch of 130 groups would be one txn of 261 compares and etcd
    would refuse it ("too many operations in txn request")."""
    n_groups = 130
    crud = await _crud(etcd_kv)
    await _net(crud, "ttibatch", "10.7.0.0/22")
    base = ipaddress.ip_address("10.7.0.0")
    pools = {}
    for i in range(n_groups):
        first = base + 10 + 4 * i
        pools[f"ttig{i:03d}"] = [str(first + k) for k in range(4)]
        body = {
            "groupName": f"ttig{i:03d}",
            "tenantName": "default",
            "networkName": "ttibatch",
            "ipPool": f"{first}-{first + 3}",
        }
        await crud.create_or_update("endpointGroup", f"default:ttig{i:03d}", body)
    store = _TxnSizes(etcd_kv)
    a = Allocator(store)
    lock = a._lock("ttibatch.default")
    await lock.acquire()  # every request queues behind it: the holder then serves them in batches
    try:
        jobs = [asyncio.create_task(a.alloc_address(f"ttibatch:{g}.default")) for g in pools]
        async with asyncio.timeout(30):
            while len(a._pending.get("ttibatch.default", [])) < n_groups:
                await asyncio.sleep(0.01)
    finally:
        lock.release()
    res = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [r for r in res if isinstance(r, BaseException)]
    assert errors == [], errors[:3]  # "too many operations in txn request" would land here
    ips = [r["IPv4Address"] for r in res]
    assert len(set(ips)) == n_groups
    for g, r in zip(pools, res, strict=True):
        assert r["IPv4Address"].split("/")[0] in pools[g]  # from the group's own pool
    biggest = max(store.sizes)
    # a full batch really went out in one txn: network + one group and one allocation record per request
    assert biggest == (2 * MAX_BATCH + 1, 2 * MAX_BATCH + 1)
    assert max(max(c, o) for c, o in store.sizes) <= 128
    st = NetworkState.from_json((await etcd_kv.get(keys.net_state("ttibatch.default"))).value)
    assert st.epAddrCount == n_groups
