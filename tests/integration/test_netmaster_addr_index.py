"""The address-holder index (netmaster/addridx.py) against a real etcd (prefix tai).

- an endpoint delete reads the same bytes and requests with 10 and with 500 endpoints in the
  network (etcd's own counters: calls handled, bytes sent to clients): before the
  index it read every endpoint state of the network to look for another holder of the address;
- the guard it keeps: two endpoint states holding one address (as a version older than the
  address rule wrote them), indexed by ``ensure_built``: deleting one keeps the address's bit
  set (v4 and v6), deleting the second frees it;
- ``ensure_built`` writes in txns of at most ``CHUNK`` operations, is idempotent (a second call
  writes nothing, a rebuild writes only the marker), drops entries whose endpoint state is gone,
  and starts over when an endpoint is deleted under it (no entry left for it).
"""

from __future__ import annotations

import pytest

from contivpy.common.kv.base import Delete, Put
from contivpy.model import keys
from contivpy.model.state import EndpointState, NetworkState
from contivpy.netmaster import addridx, ipam
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator
from tests.integration.test_ipam_integrity import explained
from tests.integration.test_netmaster_flat_cost import _metrics

pytestmark = pytest.mark.etcd


async def _crud(kv) -> Crud:
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    return crud


async def _net(crud: Crud, name: str, subnet: str, **kw) -> str:
    body = {"networkName": name, "tenantName": "default", "encap": "vxlan", "subnet": subnet, **kw}
    await crud.create_or_update("network", f"default:{name}", body)
    return f"{name}.default"


def _ep(net: str, epid: str, ip: str = "", ip6: str = "") -> dict:
    cfg = {"Container": epid, "Host": "taihost", "IPAddress": ip, "IPv6Address": ip6}
    return {"TenantName": "default", "NetworkName": net, "EndpointID": epid, "ConfigEP": cfg}


async def _index(kv) -> dict[str, str]:
    items, _ = await kv.get_prefix(addridx.INDEX)
    return {i.key: i.value for i in items if i.key != addridx.BUILT}


async def _want(kv) -> dict[str, str]:
    """The entries the stored endpoint states call for."""
    out = {}
    for i in (await kv.get_prefix(keys.EPS))[0]:
        ep_id = i.key[len(keys.EPS) :]
        out.update((k, ep_id) for k in addridx.entries(EndpointState.from_json(i.value), ep_id))
    return out


async def _state(kv, net_id: str) -> NetworkState:
    return NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)


async def test_endpoint_delete_reads_do_not_grow_with_the_endpoints_of_the_network(etcd_kv, etcd_server):
    crud = await _crud(etcd_kv)
    cost = {}
    for n in (10, 500):
        name = f"tai{n}"
        net_id = await _net(crud, name, "10.72.0.0/22" if n == 10 else "10.73.0.0/22")
        a = Allocator(etcd_kv)
        for i in range(n):
            await a.create_endpoint(_ep(name, f"tai{n}c{i}"))
        fresh = Allocator(etcd_kv)  # nothing trusted: reads what a first delete reads
        before = _metrics(etcd_server.url)
        gone = await fresh.delete_endpoint(_ep(name, f"tai{n}c{n // 2}"))
        after = _metrics(etcd_server.url)
        assert gone.ipAddress and not ipam.is_used(await _state(etcd_kv, net_id), None, gone.ipAddress)
        cost[n] = {k: after[k] - before[k] for k in after}
        await explained(etcd_kv, net_id)
    small, big = cost[10], cost[500]
    assert big["txn"] == small["txn"] and big["range"] == small["range"], cost
    # 490 more endpoint states (~350 bytes each) would add ~170 kB; the bitmap (/22) is the same size
    assert big["sent"] <= small["sent"] + 256, cost


async def test_duplicate_holders_keep_the_address_until_the_last_one_goes(etcd_kv):
    kv = etcd_kv
    crud = await _crud(kv)
    net_id = await _net(crud, "taid", "10.74.1.0/24", ipv6Subnet="2001:db8:74::/120")
    a = Allocator(kv)
    first = await a.create_endpoint(_ep("taid", "taidc1"))
    assert first.ipAddress and first.ipv6Address
    # a second endpoint state with the same addresses, written as an older version did (no index
    # entries, and no index: the next leader builds it)
    dup = EndpointState.from_json(first.to_json())
    dup.id, dup.endpointID = f"{net_id}-taidc2", "taidc2"
    await kv.txn([], [Put(keys.ep_state(dup.id), dup.to_json()), Delete(addridx.BUILT)])
    await addridx.ensure_built(crud)
    assert (await _index(kv)) == await _want(kv)
    assert len([k for k in await _index(kv) if k.startswith(addridx.prefix(net_id, first.ipAddress))]) == 2

    b = Allocator(kv)
    await b.delete_endpoint(_ep("taid", "taidc1"))
    st = await _state(kv, net_id)
    assert ipam.is_used(st, None, first.ipAddress) and ipam.is_used_v6(st, first.ipv6Address)
    assert await addridx.holders(kv, net_id, first.ipAddress) == [dup.id]
    await b.delete_endpoint(_ep("taid", "taidc2"))
    st = await _state(kv, net_id)
    assert not ipam.is_used(st, None, first.ipAddress) and not ipam.is_used_v6(st, first.ipv6Address)
    assert await _index(kv) == {}
    await explained(kv, net_id)


async def test_ensure_built_is_chunked_idempotent_and_restarts_on_a_race(etcd_kv):
    kv = etcd_kv
    crud = await _crud(kv)
    net_id = await _net(crud, "taib", "10.75.0.0/22")
    # 250 endpoint states written as an older version did (no index), a stale entry, no marker
    raw = [
        EndpointState(
            id=f"{net_id}-taib{i:03d}", netID=net_id, endpointID=f"taib{i:03d}", ipAddress=f"10.75.0.{i + 2}"
        )
        for i in range(250)
    ]
    for n in range(0, len(raw), 100):
        await kv.txn([], [Put(keys.ep_state(e.id), e.to_json()) for e in raw[n : n + 100]])
    stale = addridx.prefix(net_id, "10.75.3.3") + f"{net_id}-taibgone"
    await kv.txn([], [Delete(addridx.BUILT), Put(stale, f"{net_id}-taibgone")])

    txns: list[int] = []
    real = crud.commit_ops
    victim = Allocator(kv)

    async def counting(compares, ops):
        if not txns:  # an endpoint deleted (through the API) while the first pass runs
            await victim.delete_endpoint(_ep("taib", "taib007"))
        txns.append(len(ops))
        return await real(compares, ops)

    crud.commit_ops = counting
    await addridx.ensure_built(crud)
    assert max(txns) <= addridx.CHUNK and all(n > 0 for n in txns), txns
    # first pass: its first chunk fails (taib007 changed); second pass: 249 puts + 1 delete + marker
    assert txns == [100, 100, 100, 50, 1], txns
    got = await _index(kv)
    assert got == await _want(kv) and len(got) == 249 and stale not in got
    assert await kv.get(addridx.BUILT) is not None

    txns.clear()
    await addridx.ensure_built(crud)  # built: nothing read, nothing written
    assert txns == []
    await kv.delete(addridx.BUILT)
    await addridx.ensure_built(crud)  # rebuilt: everything in place, only the marker written
    assert txns == [1] and await _index(kv) == got


async def test_update_endpoint_by_address_finds_the_endpoint_through_the_index(etcd_kv):
    """updateEndpoint without EndpointID names the endpoint by (Tenant, Network, IPAddress): the
    index answers it (v4 and v6), as the scan did before the index is built."""
    from contivpy.common.errors import NotFoundError

    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "taiu", "10.76.1.0/24", ipv6Subnet="2001:db8:76::/120")
    a = Allocator(kv)
    eps = [await a.create_endpoint(_ep("taiu", f"taiuc{i}")) for i in range(3)]
    for built in (True, False):
        if not built:
            await kv.delete(addridx.BUILT)
            a = Allocator(kv)  # has not seen the marker: scans
        for ep in eps:
            for ip in (ep.ipAddress, ep.ipv6Address):
                req = {"Tenant": "default", "Network": "taiu", "IPAddress": ip}
                assert await a.providers._find_endpoint(req) == ep.id
        with pytest.raises(NotFoundError, match="endpoint with address 10.76.1.200 not found"):
            await a.providers._find_endpoint(
                {"Tenant": "default", "Network": "taiu", "IPAddress": "10.76.1.200"}
            )
