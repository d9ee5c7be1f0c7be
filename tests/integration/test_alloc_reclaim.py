"""Reclaim of leaked /plugin/allocAddress results (issue 7 defect 10; netmaster/reclaim.py; prefix tir).

Against a real etcd: an allocation never claimed is freed after its TTL, one claimed by an endpoint
never is, an address an endpoint holds is never freed even with a record left over, and a
createEndpoint racing the reclaimer never leaves an address both free and held. On a real netmaster
process (``CONTIV_NETMASTER_ALLOC_TTL=1``): the leader's reclaim task frees a lost allocation.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from contivpy.common.kv.etcd import EtcdKV
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState, EndpointState, NetworkState
from contivpy.netmaster import ipam, reclaim
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator
from tests.integration.test_ipam_integrity import explained

pytestmark = pytest.mark.etcd

NET_ID = "tirnet.default"


async def _setup(kv, subnet="10.71.1.0/24") -> None:
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    body = {"networkName": "tirnet", "tenantName": "default", "encap": "vxlan", "subnet": subnet}
    await crud.create_or_update("network", "default:tirnet", body)


async def _state(kv) -> NetworkState:
    return NetworkState.from_json((await kv.get(keys.net_state(NET_ID))).value)


def _ep(epid: str, ip: str) -> dict:
    return {
        "TenantName": "default",
        "NetworkName": "tirnet",
        "EndpointID": epid,
        "ConfigEP": {"Container": epid, "Host": "tirhost", "IPAddress": ip},
    }


async def test_unclaimed_allocation_is_reclaimed_after_ttl(etcd_kv):
    await _setup(etcd_kv)
    a = Allocator(etcd_kv, alloc_ttl_s=1.0)
    ip = (await a.alloc_address(NET_ID))["IPv4Address"].split("/")[0]
    assert await reclaim.scan_once(a) == 0  # not expired yet: kept
    assert ipam.list_allocated(await _state(etcd_kv)) == ip
    assert await reclaim.scan_once(a, now=time.time() + 1.5) == 1
    st = await _state(etcd_kv)
    assert ipam.list_allocated(st) == "" and st.epAddrCount == 0
    assert await etcd_kv.get(keys.addr_alloc(NET_ID, ip)) is None
    await explained(etcd_kv, NET_ID)
    assert (await a.alloc_address(NET_ID))["IPv4Address"] == f"{ip}/24"  # handed out again


async def test_claimed_allocation_is_never_reclaimed(etcd_kv):
    await _setup(etcd_kv)
    a = Allocator(etcd_kv, alloc_ttl_s=0.0)  # expired at once
    ip = (await a.alloc_address(NET_ID))["IPv4Address"].split("/")[0]
    await a.create_endpoint(_ep("tirc1", ip))
    assert await reclaim.scan_once(a, now=time.time() + 3600) == 0
    assert ipam.list_allocated(await _state(etcd_kv)) == ip
    # a record left beside an endpoint that holds its address (state from before the records):
    # the reclaimer drops the record and keeps the bit
    await etcd_kv.put(keys.addr_alloc(NET_ID, ip), json.dumps({"networkId": NET_ID, "address": ip,
                      "group": "", "created": 0.0, "expires": 0.0}))  # fmt: skip
    assert await reclaim.scan_once(a) == 0
    assert await etcd_kv.get(keys.addr_alloc(NET_ID, ip)) is None
    assert ipam.list_allocated(await _state(etcd_kv)) == ip
    await explained(etcd_kv, NET_ID)


async def test_claim_racing_the_reclaimer_never_frees_a_held_address(etcd_server, etcd_kv):
    """The reclaimer runs on its own etcd connection and Allocator (another lock): real CAS races."""
    await _setup(etcd_kv)
    other = EtcdKV(etcd_server.host, etcd_server.port)
    try:
        a = Allocator(etcd_kv, alloc_ttl_s=0.0)
        r = Allocator(other, alloc_ttl_s=0.0)
        outcomes = set()
        for i in range(40):
            ip = (await a.alloc_address(NET_ID))["IPv4Address"].split("/")[0]
            delay = (i % 4) * 0.002
            key = keys.addr_alloc(NET_ID, ip)

            async def late_reclaim(key=key, delay=delay):
                await asyncio.sleep(delay)
                return await reclaim.reclaim_record(r, key)

            ep, freed = await asyncio.gather(a.create_endpoint(_ep(f"tirr{i}", ip)), late_reclaim())
            outcomes.add(freed)
            assert ep.ipAddress == ip  # claimed, or taken as a free address after the reclaim
            st = await _state(etcd_kv)
            assert ipam.is_used(st, None, ip), f"round {i}: {ip} held by {ep.id} but free in the map"
            assert await etcd_kv.get(key) is None
            await explained(etcd_kv, NET_ID)
            await a.delete_endpoint(
                {"TenantName": "default", "NetworkName": "tirnet", "EndpointID": f"tirr{i}"}
            )
            assert not ipam.is_used(await _state(etcd_kv), None, ip)
        st = await _state(etcd_kv)
        assert (st.epCount, st.epAddrCount, ipam.list_allocated(st)) == (0, 0, "")
    finally:
        await other.close()


def test_leader_reclaims_lost_allocation(netmaster_factory, etcd_server):
    nm = netmaster_factory(env={"CONTIV_NETMASTER_ALLOC_TTL": "1"})
    body = {"networkName": "tirnet", "tenantName": "default", "encap": "vxlan", "subnet": "10.71.2.0/24"}
    nm.json("POST", "/api/v1/networks/default:tirnet/", body)
    got = nm.json("POST", "/plugin/allocAddress", {"NetworkID": NET_ID})  # its reply "lost"
    kept = nm.json("POST", "/plugin/allocAddress", {"NetworkID": NET_ID})
    nm.json("POST", "/plugin/createEndpoint", _ep("tirkeep", kept["IPv4Address"].split("/")[0]))
    lost_ip = got["IPv4Address"].split("/")[0]
    rec = json.loads(etcd_server.etcdctl("get", keys.addr_alloc(NET_ID, lost_ip), "--print-value-only"))
    assert rec["networkId"] == NET_ID and rec["address"] == lost_ip and rec["expires"] - rec["created"] == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        oper = nm.json("GET", "/api/v1/inspect/networks/default:tirnet/")["Oper"]
        if oper.get("allocatedIPAddresses") == kept["IPv4Address"].split("/")[0]:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"lost allocation {lost_ip} not reclaimed: {oper}")
    assert etcd_server.etcdctl("get", keys.addr_alloc(NET_ID, lost_ip)).strip() == ""
    ep = EndpointState.from_json(
        etcd_server.etcdctl("get", keys.ep_state(f"{NET_ID}-tirkeep"), "--print-value-only")
    )
    assert ep.ipAddress == kept["IPv4Address"].split("/")[0]


async def test_unexplained_bits_freed_after_two_scans_explained_ones_never(etcd_kv):
    """A bit set without record, endpoint or VIP (an allocAddress from before the records) is freed
    once it stayed unexplained for the TTL over two passes; every explained or reserved bit (endpoint,
    pool endpoint, VIP, record, gateway, pool range) survives any number of passes."""
    kv = etcd_kv
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    body = {"networkName": "tirnet", "tenantName": "default", "encap": "vxlan", "subnet": "10.71.3.0/24",
            "gateway": "10.71.3.254"}  # fmt: skip
    await crud.create_or_update("network", "default:tirnet", body)
    group = {
        "groupName": "tirg",
        "tenantName": "default",
        "networkName": "tirnet",
        "ipPool": "10.71.3.100-10.71.3.110",
    }
    await crud.create_or_update("endpointGroup", "default:tirg", group)
    svc = {"serviceName": "tirsvc", "tenantName": "default", "networkName": "tirnet", "selectors": ["a=b"],
           "ports": ["80:80:TCP"]}  # fmt: skip
    await crud.create_or_update("serviceLB", "default:tirsvc", svc)
    a = Allocator(kv, alloc_ttl_s=100.0)
    await a.create_endpoint(_ep("tiru1", ""))
    pool_ip = (await a.alloc_address("tirnet:tirg.default"))["IPv4Address"].split("/")[0]
    await a.create_endpoint(dict(_ep("tiru2", pool_ip), ServiceName="tirg"))
    rec_ip = (await a.alloc_address(NET_ID))["IPv4Address"].split("/")[0]  # a record (expires at +100 s)
    # the leak of old: a bit set in the network map and one in the pool map that nothing explains
    st = await _state(kv)
    leaked = ipam.allocate(st, None)
    gkv = await kv.get(keys.epg_state("tirg:default"))
    g = EndpointGroupState.from_json(gkv.value)
    leaked_pool = ipam.allocate(st, g)
    await kv.put(gkv.key, g.to_json())
    await kv.put(keys.net_state(NET_ID), st.to_json())
    st = await _state(kv)
    before_net = ipam.list_allocated(st)
    assert leaked in before_net
    r = reclaim.Reclaimer(a)
    t0 = time.time()
    assert await r.scan(now=t0) == 0  # first sighting
    assert await r.scan(now=t0 + 50) == 0  # not for the TTL yet
    assert ipam.list_allocated(await _state(kv)) == before_net
    assert await r.scan(now=t0 + 90) == 0  # still within the TTL (the record as well)
    assert await r.scan(now=t0 + 101) == 3  # both leaks, and the record, expired by now
    assert await kv.get(keys.addr_alloc(NET_ID, rec_ip)) is None
    st = await _state(kv)
    assert not ipam.is_used(st, None, leaked)
    g = EndpointGroupState.from_json((await kv.get(gkv.key)).value)
    assert not ipam.is_used(st, g, leaked_pool) and ipam.is_used(st, g, pool_ip)
    await explained(kv, NET_ID)
    # many more passes far in the future: only explained bits are left and they stay
    after = await _state(kv)
    r2 = reclaim.Reclaimer(a)
    for k in range(3):
        await r2.scan(now=t0 + 1000 * (k + 2))
    await explained(kv, NET_ID)
    eps = [EndpointState.from_json(i.value) for i in (await kv.get_prefix(keys.EPS))[0]]
    st = await _state(kv)
    for ep in eps:
        assert ipam.is_used(st, g if ep.serviceName == "tirg" else None, ep.ipAddress)
    assert (st.ipAllocMap, st.epAddrCount) == (after.ipAllocMap, after.epAddrCount)
    assert ipam.list_allocated(st) == "10.71.3.1-10.71.3.2, 10.71.3.100-10.71.3.110, 10.71.3.254"
