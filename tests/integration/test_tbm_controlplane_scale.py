"""Regression tests for the control-plane fixes found by bench/bench_netmaster.py (bench helper).

- More than 128 networks in one tenant: the network create hook used to read every other network
  of the tenant with a fenced point read, one txn compare each, so etcd refused the 126th create
  ("too many operations in txn request").
- allocAddress group commit (endpoints.Allocator): concurrent requests of one network share one
  read + txn, yet each keeps its own outcome (a preferred address in use, an unknown group and
  subnet exhaustion fail only their own request), and batches larger than MAX_BATCH never
  hand out an address twice.
"""

import asyncio

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
    assert res[0] == {"NetworkID": "tbmn.default", "IPv4Address": "10.9.0.3/29"}
    assert isinstance(res[1], ResourceExhaustedError) and "10.9.0.3 is not available" in str(res[1])
    assert isinstance(res[2], NotFoundError) and "endpoint group nogroup not found" in str(res[2])
    got = [r["IPv4Address"] for r in res[3:] if isinstance(r, dict)]
    assert sorted(got) == ["10.9.0.1/29", "10.9.0.2/29", "10.9.0.4/29", "10.9.0.5/29", "10.9.0.6/29"]
    errs = [r for r in res[3:] if not isinstance(r, dict)]
    assert len(errs) == 1 and isinstance(errs[0], ResourceExhaustedError)
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
