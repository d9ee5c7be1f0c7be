"""IPAM integrity of netmaster's /plugin/* API against a real etcd (issue 7 defects 1, 2, 10; prefix tii).

- createEndpoint takes only a free address or one /plugin/allocAddress handed out (and that no other
  endpoint holds); every other address is refused with a clear error and etcd is left untouched
  (same keys, same values, same store revision);
- endpoint ids never collide across tenants or networks (``<net>.<tenant>-<host>-native-intf``);
- allocation records: layout, claim, release, and the invariant "every set bit is explained by
  exactly one of reserved / endpoint / service VIP / allocation record" after every step.
"""

from __future__ import annotations

import json
import time

import pytest

from contivpy.common.errors import ContivError
from contivpy.common.kv.base import Delete, Put
from contivpy.model import keys
from contivpy.model.state import AddrAllocRecord, EndpointGroupState, EndpointState, NetworkState
from contivpy.netmaster import addridx, ipam
from contivpy.netmaster.bitset import Bitset
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator, endpoint_inspect

pytestmark = pytest.mark.etcd

T1, T2 = "tiit1", "tiit2"


async def _crud(kv) -> Crud:
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    for t in (T1, T2):
        await crud.create_or_update("tenant", t, {"tenantName": t})
    return crud


async def _net(crud: Crud, name: str, tenant: str, subnet: str, **kw) -> None:
    body = {"networkName": name, "tenantName": tenant, "encap": "vxlan", "subnet": subnet, **kw}
    await crud.create_or_update("network", f"{tenant}:{name}", body)


def _ep_req(
    net: str, tenant: str, epid: str = "", host: str = "tiihost", ip: str = "", group: str = "", **kw
):
    cfg = {"Container": epid, "Host": host, "IPAddress": ip, "ServiceName": group}
    cfg.update(kw.pop("cfg", {}))
    return {
        "TenantName": tenant,
        "NetworkName": net,
        "ServiceName": group,
        "EndpointID": epid,
        "ConfigEP": cfg,
        **kw,
    }


async def snapshot(kv) -> tuple[int, list[tuple[str, str]]]:
    items, rev = await kv.get_prefix(keys.ROOT)
    return rev, [(i.key, i.value) for i in items]


async def explained(kv, net_id: str) -> None:
    """Assert the invariant of endpoints.py for one network: every set bit of the network map and
    of each pool group's map is explained by exactly one of reserved / endpoint / VIP / record."""
    st = NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)
    sn = ipam.subnet_of(st)
    eps = [EndpointState.from_json(i.value) for i in (await kv.get_prefix(keys.EPS))[0]]
    eps = [e for e in eps if e.netID == net_id]
    svcs = [json.loads(i.value) for i in (await kv.get_prefix(keys.SERVICE_LB))[0]]
    vips = [s["ipaddress"] for s in svcs if (s["tenantname"], s["subnet"]) == (st.tenant, st.networkName)]
    recs = [
        AddrAllocRecord.from_json(i.value) for i in (await kv.get_prefix(keys.addr_alloc_prefix(net_id)))[0]
    ]
    groups = [EndpointGroupState.from_json(i.value) for i in (await kv.get_prefix(keys.EPGS))[0]]
    pools = {
        g.groupName: g
        for g in groups
        if g.ipPool and (g.networkName, g.tenantName) == (st.networkName, st.tenant)
    }

    def hid(ip: str) -> int:
        return ip_int(ip) - sn.subnet_ip

    maps = {"": Bitset.decode(st.ipAllocMap)} | {g: Bitset.decode(e.epgIpAllocMap) for g, e in pools.items()}
    for owner, bm in maps.items():
        epg = pools.get(owner)
        why: dict[int, list[str]] = {}
        for e in eps:
            if (e.serviceName if e.serviceName in pools else "") == owner:
                why.setdefault(hid(e.ipAddress), []).append(f"ep {e.id}")
        if not owner:
            for v in vips:
                why.setdefault(hid(v), []).append(f"vip {v}")
        for r in recs:
            if (r.group if r.group in pools else "") == owner and bm.test(hid(r.address)):
                why.setdefault(hid(r.address), []).append(f"rec {r.address}")
        for b in range(sn.size):
            reserved = ipam._is_reserved(st, epg, b) or (
                not owner and any(_in_pool(st, g, b) for g in pools.values())
            )
            reasons = why.get(b, []) + (["reserved"] if reserved else [])
            if bm.test(b):
                assert len(reasons) == 1, (owner, sn.subnet_ip + b, reasons)
            else:
                assert reasons == [], (owner, sn.subnet_ip + b, reasons)


def _in_pool(st: NetworkState, g: EndpointGroupState, b: int) -> bool:
    from contivpy.common import netaddr

    lo, hi = netaddr.parse_ip_pool(g.ipPool, ipam.subnet_of(st))
    return lo <= b <= hi


def ip_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


async def refused(kv, coro, *needles: str) -> str:
    before = await snapshot(kv)
    with pytest.raises(ContivError) as ei:
        await coro
    msg = str(ei.value)
    for n in needles:
        assert n in msg, msg
    assert await snapshot(kv) == before, f"a refused request wrote to etcd: {msg}"
    return msg


async def test_create_endpoint_address_rule_refusals_write_nothing(etcd_kv):
    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "tiin", T1, "10.61.1.0/24", gateway="10.61.1.254", ipv6Subnet="2001:db8:61::/64",
               ipv6Gateway="2001:db8:61::1")  # fmt: skip
    await _net(crud, "tiir", T1, "10.61.2.10-10.61.2.20/24")
    group = {
        "groupName": "tiig",
        "tenantName": T1,
        "networkName": "tiin",
        "ipPool": "10.61.1.100-10.61.1.110",
    }
    await crud.create_or_update("endpointGroup", f"{T1}:tiig", group)
    await crud.create_or_update("endpointGroup", f"{T1}:tiig2", dict(group, groupName="tiig2", ipPool=""))
    svc = {"serviceName": "tiisvc", "tenantName": T1, "networkName": "tiin", "selectors": ["a=b"],
           "ports": ["80:80:TCP"], "ipAddress": "10.61.1.50"}  # fmt: skip
    await crud.create_or_update("serviceLB", f"{T1}:tiisvc", svc)
    a = Allocator(kv)
    net_id = "tiin." + T1
    got = await a.alloc_address(net_id)
    ip1 = got["IPv4Address"].split("/")[0]
    ep1 = await a.create_endpoint(
        _ep_req("tiin", T1, "tiiep1", ip=ip1, cfg={"IPv6Address": "2001:db8:61::10"})
    )
    assert ep1.ipAddress == ip1 == "10.61.1.1"
    g2 = (await a.alloc_address(f"tiin:tiig2.{T1}"))["IPv4Address"].split("/")[0]  # record of group tiig2
    await explained(kv, net_id)

    new = "tiiep2"
    cases = [
        (ip1, ["in use by endpoint", ep1.id]),
        ("10.61.1.254", ["gateway"]),
        ("10.61.1.0", ["network address"]),
        ("10.61.1.255", ["broadcast address"]),
        ("10.99.0.1", ["exceeding beyond subnet 10.61.1.0/24"]),
        ("10.61.1.50", ["service tiisvc"]),
        ("10.61.1.300", ["invalid ip address"]),
        ("tii", ["invalid ip address"]),
        ("10.61.1.7/24", ["invalid ip address"]),
        ("10.61.1.105", ["not available"]),  # inside the pool of group tiig: not for a plain endpoint
        (g2, ["allocated for group tiig2"]),  # allocAddress for another group
    ]
    for ip, needles in cases:
        await refused(kv, a.create_endpoint(_ep_req("tiin", T1, new, ip=ip)), *needles)
    # a pool group's endpoint only takes addresses of its pool
    await refused(
        kv, a.create_endpoint(_ep_req("tiin", T1, new, ip="10.61.1.20", group="tiig")), "outside the ip pool"
    )
    # range subnet: outside the range
    await refused(
        kv, a.create_endpoint(_ep_req("tiir", T1, new, ip="10.61.2.5")), "outside the address range"
    )
    # IPv6: held, gateway, subnet-router, outside, malformed, a network without IPv6
    v6 = [
        ("2001:db8:61::10", "in use by endpoint"),
        ("2001:db8:61::1", "gateway"),
        ("2001:db8:61::", "reserved"),
        ("2001:db8:99::5", "exceeding beyond subnet"),
        ("2001:db8:61::zz", "invalid ipv6 address"),
    ]
    for ip6, needle in v6:
        await refused(kv, a.create_endpoint(_ep_req("tiin", T1, new, cfg={"IPv6Address": ip6})), needle)
    await refused(
        kv, a.create_endpoint(_ep_req("tiir", T1, new, cfg={"IPv6Address": "2001:db8::5"})), "no IPv6"
    )
    # bad fields and unknown networks
    await refused(
        kv, a.create_endpoint(dict(_ep_req("tiin", T1, new), TenantName=5)), "TenantName must be a string"
    )
    await refused(
        kv, a.create_endpoint(dict(_ep_req("tiin", T1, new), NetworkName=["x"])), "NetworkName must be"
    )
    await refused(kv, a.create_endpoint(dict(_ep_req("tiin", T1, new), EndpointID={})), "EndpointID must be")
    await refused(
        kv, a.create_endpoint(dict(_ep_req("tiin", T1, new), ConfigEP="x")), "ConfigEP must be an object"
    )
    await refused(
        kv, a.create_endpoint(_ep_req("tiin", T1, new, cfg={"IPAddress": 7})), "IPAddress must be a string"
    )
    await refused(kv, a.create_endpoint(_ep_req("tiinone", T1, new)), "not found")
    await refused(kv, a.create_endpoint(_ep_req("tiin", T2, new)), "not found")
    await refused(kv, a.create_endpoint(_ep_req("tiin", T1, new, group="tiinogroup")), "not found")
    await refused(kv, a.create_endpoint(_ep_req("tiin", T1, "", host="")), "required")
    await explained(kv, net_id)

    # allowed: a free address (taken in the endpoint's txn), and the pool group's own allocation
    ep2 = await a.create_endpoint(_ep_req("tiin", T1, new, ip="10.61.1.77"))
    assert ep2.ipAddress == "10.61.1.77"
    gp = (await a.alloc_address(f"tiin:tiig.{T1}"))["IPv4Address"].split("/")[0]
    ep3 = await a.create_endpoint(_ep_req("tiin", T1, "tiiep3", ip=gp, group="tiig"))
    assert ep3.ipAddress == gp == "10.61.1.100"
    ep4 = await a.create_endpoint(_ep_req("tiin", T1, "tiiep4", ip=g2, group="tiig2"))
    assert ep4.ipAddress == g2
    assert (await kv.get_prefix(keys.addr_alloc_prefix(net_id)))[0] == []  # every record claimed
    await explained(kv, net_id)
    for e in ("tiiep1", new, "tiiep3", "tiiep4"):
        await a.delete_endpoint({"TenantName": T1, "NetworkName": "tiin", "EndpointID": e})
    await explained(kv, net_id)
    st = NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)
    assert (st.epCount, st.epAddrCount) == (0, 1)  # the VIP
    assert st.ipv6AllocMap == {"::1": True}


async def test_allocation_record_layout_claim_and_release(etcd_kv):
    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "tiia", T1, "10.62.1.0/24")
    a = Allocator(kv, alloc_ttl_s=300)
    net_id = "tiia." + T1
    got = await a.alloc_address(net_id)
    assert got == {"NetworkID": net_id, "IPv4Address": "10.62.1.1/24"}
    item = await kv.get(f"/contiv.io/state/addrAlloc/{net_id}/10.62.1.1")
    rec = json.loads(item.value)
    assert list(rec) == ["networkId", "address", "group", "created", "expires"]
    assert rec["networkId"] == net_id and rec["address"] == "10.62.1.1" and rec["group"] == ""
    assert 299 < rec["expires"] - rec["created"] < 301
    await explained(kv, net_id)
    # claim: the record goes in the endpoint's txn, the bit stays (counted once)
    ep = await a.create_endpoint(_ep_req("tiia", T1, "tiic1", ip="10.62.1.1"))
    assert await kv.get(item.key) is None
    st = NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)
    assert st.epAddrCount == 1 and ipam.list_allocated(st) == "10.62.1.1"
    # a second endpoint cannot claim it again, and releaseAddress of a held address is a no-op
    await refused(kv, a.create_endpoint(_ep_req("tiia", T1, "tiic2", ip="10.62.1.1")), "in use by endpoint")
    before = await snapshot(kv)
    await a.release_address(net_id, "10.62.1.1/24")
    assert await snapshot(kv) == before
    # release of an unclaimed allocation frees it and deletes its record
    got2 = (await a.alloc_address(net_id))["IPv4Address"]
    await a.release_address(f"{net_id}|10.62.1.0/24", got2)
    assert await kv.get(keys.addr_alloc(net_id, got2.split("/")[0])) is None
    st = NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)
    assert ipam.list_allocated(st) == "10.62.1.1"
    await a.delete_endpoint({"TenantName": T1, "NetworkName": "tiia", "EndpointID": ep.endpointID})
    await explained(kv, net_id)


async def test_release_never_frees_a_service_vip(etcd_kv):
    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "tiiv", T1, "10.63.1.0/24")
    svc = {"serviceName": "tiisvc", "tenantName": T1, "networkName": "tiiv", "selectors": ["a=b"],
           "ports": ["80:80:TCP"], "ipAddress": "10.63.1.9"}  # fmt: skip
    await crud.create_or_update("serviceLB", f"{T1}:tiisvc", svc)
    a = Allocator(kv)
    before = await snapshot(kv)
    await a.release_address("tiiv." + T1, "10.63.1.9")
    assert await snapshot(kv) == before
    with pytest.raises(ContivError, match="not available"):
        await a.alloc_address("tiiv." + T1, "", "10.63.1.9")


async def test_delete_never_frees_an_address_another_endpoint_holds(etcd_kv):
    """Two endpoint states with one address (written before the address rule): deleting one keeps
    the bit set for the other; deleting the second frees it."""
    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "tiid", T1, "10.64.1.0/24")
    a = Allocator(kv)
    ep = await a.create_endpoint(_ep_req("tiid", T1, "tiid1"))
    twin = EndpointState.from_json(ep.to_json())
    twin.id, twin.endpointID = f"tiid.{T1}-tiid2", "tiid2"
    await kv.put(keys.ep_state(twin.id), twin.to_json())
    await a.delete_endpoint({"TenantName": T1, "NetworkName": "tiid", "EndpointID": "tiid2"})
    st = NetworkState.from_json((await kv.get(keys.net_state("tiid." + T1))).value)
    assert ipam.list_allocated(st) == ep.ipAddress  # still held by tiid1
    # and nobody else can take it meanwhile
    await refused(kv, a.create_endpoint(_ep_req("tiid", T1, "tiid3", ip=ep.ipAddress)), "in use by endpoint")
    await a.delete_endpoint({"TenantName": T1, "NetworkName": "tiid", "EndpointID": "tiid1"})
    st = NetworkState.from_json((await kv.get(keys.net_state("tiid." + T1))).value)
    assert ipam.list_allocated(st) == ""


async def test_endpoint_ids_never_collide_across_tenants_or_networks(etcd_kv):
    kv = etcd_kv
    crud = await _crud(kv)
    for t in (T1, T2):
        await _net(crud, "tiie", t, "10.65.1.0/24")
    await _net(crud, "tiie2", T1, "10.65.2.0/24")
    a = Allocator(kv)
    # no container: one infra endpoint per network and host
    e1 = await a.create_endpoint(_ep_req("tiie", T1, host="tiih"))
    e2 = await a.create_endpoint(_ep_req("tiie", T2, host="tiih"))
    e3 = await a.create_endpoint(_ep_req("tiie2", T1, host="tiih"))
    assert [e.id for e in (e1, e2, e3)] == [
        f"tiie.{T1}-tiih-native-intf",
        f"tiie.{T2}-tiih-native-intf",
        f"tiie2.{T1}-tiih-native-intf",
    ]
    assert (e1.netID, e2.netID, e3.netID) == (f"tiie.{T1}", f"tiie.{T2}", f"tiie2.{T1}")
    assert e1.endpointID == "tiih-native-intf"
    # netctl endpoint inspect finds it by that endpoint id
    oper = (await endpoint_inspect(kv, "tiih-native-intf"))["Oper"]
    assert oper["endpointID"] == "tiih-native-intf" and oper["network"] in (e1.netID, e2.netID, e3.netID)
    # delete of one (by host, as before, or by its endpoint id) leaves the others and their addresses
    await a.delete_endpoint({"TenantName": T2, "NetworkName": "tiie", "Host": "tiih"})
    assert await kv.get(keys.ep_state(e2.id)) is None
    assert EndpointState.from_json((await kv.get(keys.ep_state(e1.id))).value).ipAddress == e1.ipAddress
    for net_id, ep in ((f"tiie.{T1}", e1), (f"tiie2.{T1}", e3)):
        st = NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)
        assert ipam.list_allocated(st) == ep.ipAddress and st.epCount == 1
    st2 = NetworkState.from_json((await kv.get(keys.net_state(f"tiie.{T2}"))).value)
    assert (ipam.list_allocated(st2), st2.epCount) == ("", 0)
    await a.delete_endpoint({"TenantName": T1, "NetworkName": "tiie", "EndpointID": "tiih-native-intf"})
    assert await kv.get(keys.ep_state(e1.id)) is None and await kv.get(keys.ep_state(e3.id)) is not None
    # a name with a dash can spell another tenant's key: never returned, overwritten or deleted
    await crud.create_or_update("tenant", "tiit1-x", {"tenantName": "tiit1-x"})
    await _net(crud, "tiie", "tiit1-x", "10.65.3.0/24")
    mine = await a.create_endpoint(_ep_req("tiie", T1, "x-y"))  # key tiie.tiit1-x-y
    await refused(kv, a.create_endpoint(_ep_req("tiie", "tiit1-x", "y")), "exists in another network")
    before = await snapshot(kv)
    assert (
        await a.delete_endpoint({"TenantName": "tiit1-x", "NetworkName": "tiie", "EndpointID": "y"})
    ).id == ""
    assert await snapshot(kv) == before
    assert EndpointState.from_json((await kv.get(keys.ep_state(mine.id))).value).netID == f"tiie.{T1}"
    # deleteEndpoint naming a network that does not exist is refused
    await refused(
        kv, a.delete_endpoint({"TenantName": T1, "NetworkName": "tiinone", "EndpointID": "z"}), "not found"
    )


async def test_network_state_ids_never_shared_and_delete_drops_allocations(etcd_kv):
    """Network "a.b" of tenant "c" and network "a" of tenant "b.c" both spell state id "a.b.c": the
    second is refused instead of silently sharing the first one's addresses. Deleting a network
    deletes its unclaimed allocation records."""
    kv = etcd_kv
    crud = await _crud(kv)
    await crud.create_or_update("tenant", "tiib.tiic", {"tenantName": "tiib.tiic"})
    await crud.create_or_update("tenant", "tiic", {"tenantName": "tiic"})
    await _net(crud, "tiia.tiib", "tiic", "10.66.1.0/24")
    with pytest.raises(ContivError, match="conflicts with network tiia.tiib of tenant tiic"):
        await _net(crud, "tiia", "tiib.tiic", "10.66.2.0/24")
    assert await kv.get(keys.obj_key("network", "tiib.tiic:tiia")) is None
    a = Allocator(kv)
    ip = (await a.alloc_address("tiia.tiib.tiic"))["IPv4Address"].split("/")[0]
    assert await kv.get(keys.addr_alloc("tiia.tiib.tiic", ip)) is not None
    await crud.delete("network", "tiic:tiia.tiib")
    assert (await kv.get_prefix(keys.addr_alloc_prefix("tiia.tiib.tiic")))[0] == []


async def test_delete_finds_a_native_intf_endpoint_stored_under_the_old_key(etcd_kv):
    """An infra endpoint stored by an older version under ``<host>-native-intf`` is still deleted
    (and its address freed) by a deleteEndpoint naming its network and host, and only its own."""
    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "tiio", T1, "10.67.1.0/24")
    await _net(crud, "tiio", T2, "10.67.1.0/24")
    a = Allocator(kv)
    ep = await a.create_endpoint(_ep_req("tiio", T1, "tiitmp", host="tiioh"))
    old = EndpointState.from_json(ep.to_json())
    old.id = "tiioh-native-intf"
    # as an older version left it: no address index (addridx.py) yet, built by the next leader
    await kv.txn(
        [],
        [Put(keys.ep_state(old.id), old.to_json()), Delete(keys.ep_state(ep.id)), Delete(addridx.BUILT)]
        + addridx.delete_ops(ep, ep.id),
    )
    await addridx.ensure_built(crud)
    assert (await a.delete_endpoint({"TenantName": T2, "NetworkName": "tiio", "Host": "tiioh"})).id == ""
    assert await kv.get(keys.ep_state(old.id)) is not None  # another tenant's: untouched
    gone = await a.delete_endpoint({"TenantName": T1, "NetworkName": "tiio", "Host": "tiioh"})
    assert gone.id == old.id and await kv.get(keys.ep_state(old.id)) is None
    st = NetworkState.from_json((await kv.get(keys.net_state("tiio." + T1))).value)
    assert (ipam.list_allocated(st), st.epCount) == ("", 0)


async def test_delete_with_keep_address_hands_the_address_back_until_release(etcd_kv):
    """The Docker plugin's DeleteEndpoint (``KeepAddress``): the endpoint goes, its address stays
    allocated under an allocation record of its group, so nobody else gets it before Docker's
    ReleaseAddress frees it (the agent used to remember released addresses in memory instead and
    then skipped the release of a re-allocated one). A release that never comes is reclaimed."""
    from contivpy.netmaster import reclaim

    kv = etcd_kv
    crud = await _crud(kv)
    await _net(crud, "tiik", T1, "10.66.1.0/24")
    group = {
        "groupName": "tiikg",
        "tenantName": T1,
        "networkName": "tiik",
        "ipPool": "10.66.1.100-10.66.1.110",
    }
    await crud.create_or_update("endpointGroup", f"{T1}:tiikg", group)
    net_id = "tiik." + T1
    a = Allocator(kv, alloc_ttl_s=300)

    def dele(epid: str, group: str = "", keep: bool = True) -> dict:
        return {
            "TenantName": T1,
            "NetworkName": "tiik",
            "ServiceName": group,
            "EndpointID": epid,
            "KeepAddress": keep,
        }

    async def state() -> NetworkState:
        return NetworkState.from_json((await kv.get(keys.net_state(net_id))).value)

    for grp, alloc_id, want in (("", net_id, "10.66.1.1"), ("tiikg", f"tiik:tiikg.{T1}", "10.66.1.100")):
        ip = (await a.alloc_address(alloc_id))["IPv4Address"].split("/")[0]
        assert ip == want
        await a.create_endpoint(_ep_req("tiik", T1, "tiikc1", ip=ip, group=grp))
        count = (await state()).epAddrCount
        await a.delete_endpoint(dele("tiikc1", grp))
        assert await kv.get(keys.ep_state(f"{net_id}-tiikc1")) is None
        rec = json.loads((await kv.get(keys.addr_alloc(net_id, ip))).value)
        assert (rec["address"], rec["group"]) == (ip, grp) and 299 < rec["expires"] - rec["created"] < 301
        assert (await state()).epAddrCount == count  # still allocated, counted once
        await explained(kv, net_id)
        # nobody else gets it meanwhile (allocAddress nor a plain createEndpoint)
        other = (await a.alloc_address(alloc_id))["IPv4Address"].split("/")[0]
        assert other != ip
        await a.release_address(alloc_id, other)
        # a repeated DeleteEndpoint (Docker retries) changes nothing
        before = await snapshot(kv)
        await a.delete_endpoint(dele("tiikc1", grp))
        assert await snapshot(kv) == before
        # Docker's ReleaseAddress frees it and drops the record
        await a.release_address(f"{alloc_id}|10.66.1.0/24", ip)
        assert await kv.get(keys.addr_alloc(net_id, ip)) is None
        assert (await state()).epAddrCount == count - 1
        assert (await a.alloc_address(alloc_id))["IPv4Address"] == f"{ip}/24"  # first-fit: free again
        await a.release_address(alloc_id, ip)
        await explained(kv, net_id)

    # without KeepAddress (CNI, netctl cleanup) the address is freed at once, no record
    ip = (await a.alloc_address(net_id))["IPv4Address"].split("/")[0]
    await a.create_endpoint(_ep_req("tiik", T1, "tiikc2", ip=ip))
    await a.delete_endpoint(dele("tiikc2", keep=False))
    assert await kv.get(keys.addr_alloc(net_id, ip)) is None and not ipam.is_used(await state(), None, ip)

    # a ReleaseAddress that never comes (dockerd died in between): reclaimed once the record expires
    await a.create_endpoint(_ep_req("tiik", T1, "tiikc3", ip=ip))
    await a.delete_endpoint(dele("tiikc3"))
    assert ipam.is_used(await state(), None, ip)
    assert await reclaim.scan_once(a) == 0
    assert await reclaim.scan_once(a, now=time.time() + 301) == 1
    assert not ipam.is_used(await state(), None, ip) and await kv.get(keys.addr_alloc(net_id, ip)) is None
    await explained(kv, net_id)
