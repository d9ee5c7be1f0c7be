"""Defects the fuzz suite (tests/fuzz/) found in the model / IPAM / hooks layer, one test each, on a
real netmaster and etcd; every test ends with the whole-store consistency check (prefix tfr).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support import consistency

pytestmark = pytest.mark.etcd

T = "tfrt"


@pytest.fixture
def nm(netmaster_factory, etcd_server):
    nm = netmaster_factory()

    def ok(method: str, path: str, body=None):
        status, _, text = nm.request(method, path, body)
        assert status == 200, f"{method} {path} -> {status}: {text}"
        return json.loads(text)

    def err(method: str, path: str, body=None) -> str:
        status, _, text = nm.request(method, path, body)
        assert status == 500, f"{method} {path} -> {status}: {text}"
        return text.strip()

    def check():
        consistency.assert_consistent(consistency.load_etcdctl(etcd_server.etcdctl))

    nm.ok, nm.err, nm.check, nm.etcd = ok, err, check, etcd_server
    nm.ok("POST", f"/api/v1/tenants/{T}/", {"tenantName": T})
    return nm


def _net(nm, name: str, subnet: str, encap: str = "vlan", **kw) -> None:
    body = {"tenantName": T, "networkName": name, "encap": encap, "subnet": subnet, **kw}
    nm.ok("POST", f"/api/v1/networks/{T}:{name}/", body)


def _net_state(nm, name: str) -> dict:
    return json.loads(nm.etcd.etcdctl("get", f"/contiv.io/state/nets/{name}.{T}", "--print-value-only"))


def test_service_update_to_another_address_in_the_same_network(nm):
    """Fuzz: a serviceLB update that changes ipAddress in the same network released the old VIP and
    allocated the new one on two copies of the network record, and put the record twice in one txn
    (etcd: "duplicate key given in txn request", leaked to the client)."""
    _net(nm, "tfrn", "10.71.0.0/24")
    svc = {"tenantName": T, "serviceName": "tfrs", "networkName": "tfrn", "selectors": ["app=web"],
           "ports": ["80:8080:TCP"], "ipAddress": "10.71.0.50"}  # fmt: skip
    nm.ok("POST", f"/api/v1/serviceLBs/{T}:tfrs/", svc)
    nm.ok("POST", f"/api/v1/serviceLBs/{T}:tfrs/", dict(svc, ipAddress="10.71.0.60"))
    st = json.loads(nm.etcd.etcdctl("get", f"/contiv.io/state/serviceLB/tfrs:{T}", "--print-value-only"))
    assert st["ipaddress"] == "10.71.0.60"
    assert _net_state(nm, "tfrn")["epAddrCount"] == 1
    nm.check()
    # the old VIP is free again, the new one is not
    assert nm.ok(
        "POST", "/plugin/allocAddress", {"NetworkID": f"tfrn.{T}", "PreferredIPv4Address": "10.71.0.50"}
    )
    assert "not available" in nm.err(
        "POST", "/plugin/allocAddress", {"NetworkID": f"tfrn.{T}", "PreferredIPv4Address": "10.71.0.60"}
    )
    nm.ok("POST", "/plugin/releaseAddress", {"NetworkID": f"tfrn.{T}", "IPv4Address": "10.71.0.50"})
    nm.ok("DELETE", f"/api/v1/serviceLBs/{T}:tfrs/")
    assert _net_state(nm, "tfrn")["epAddrCount"] == 0
    nm.check()


def test_service_update_to_a_taken_address_changes_nothing(nm):
    _net(nm, "tfrn", "10.72.0.0/24", gateway="10.72.0.1")
    svc = {"tenantName": T, "serviceName": "tfrs", "networkName": "tfrn", "selectors": ["app=web"],
           "ports": ["80:8080:TCP"], "ipAddress": "10.72.0.50"}  # fmt: skip
    nm.ok("POST", f"/api/v1/serviceLBs/{T}:tfrs/", svc)
    before = consistency.load_etcdctl(nm.etcd.etcdctl)
    assert "not available" in nm.err(
        "POST", f"/api/v1/serviceLBs/{T}:tfrs/", dict(svc, ipAddress="10.72.0.1")
    )
    assert consistency.load_etcdctl(nm.etcd.etcdctl) == before
    nm.check()


def test_deleting_a_group_that_rules_match_leaves_no_dangling_link(nm):
    """Fuzz: a group deleted while a rule of another policy names it left the rule's
    links.MatchEndpointGroup pointing at the deleted object."""
    _net(nm, "tfrn", "10.73.0.0/24")
    for g in ("tfrg1", "tfrg2"):
        nm.ok(
            "POST",
            f"/api/v1/endpointGroups/{T}:{g}/",
            {"tenantName": T, "groupName": g, "networkName": "tfrn"},
        )
    nm.ok("POST", f"/api/v1/policys/{T}:tfrp/", {"tenantName": T, "policyName": "tfrp"})
    rule = {"tenantName": T, "policyName": "tfrp", "ruleId": "1", "direction": "in", "action": "allow",
            "fromEndpointGroup": "tfrg1"}  # fmt: skip
    nm.ok("POST", f"/api/v1/rules/{T}:tfrp:1/", rule)
    nm.ok("POST", f"/api/v1/endpointGroups/{T}:tfrg2/",
          {"tenantName": T, "groupName": "tfrg2", "networkName": "tfrn", "policies": ["tfrp"]})  # fmt: skip
    nm.check()
    nm.ok("DELETE", f"/api/v1/endpointGroups/{T}:tfrg1/")  # allowed, as in the original
    got = nm.ok("GET", f"/api/v1/rules/{T}:tfrp:1/")
    assert got["links"]["MatchEndpointGroup"] == {} and got["fromEndpointGroup"] == "tfrg1"
    nm.check()
    # re-created group: the rule can still be deleted, and everything else after it
    nm.ok(
        "POST",
        f"/api/v1/endpointGroups/{T}:tfrg1/",
        {"tenantName": T, "groupName": "tfrg1", "networkName": "tfrn"},
    )
    nm.ok("DELETE", f"/api/v1/rules/{T}:tfrp:1/")
    nm.check()


def test_global_delete_refused_while_networks_hold_tags(nm):
    """Fuzz: deleting the global object removed the VLAN/VXLAN tag records while networks held
    tags; the next global create started from empty bitmaps and handed tag 1 out twice."""
    _net(nm, "tfrn", "10.74.0.0/24", "vlan")
    _net(nm, "tfrx", "10.75.0.0/24", "vxlan")
    before = consistency.load_etcdctl(nm.etcd.etcdctl)
    msg = nm.err("DELETE", "/api/v1/globals/global/")
    assert msg == "Unable to delete global configuration due to existing 1 vlans and 1 vxlans"
    assert consistency.load_etcdctl(nm.etcd.etcdctl) == before
    nm.ok("DELETE", f"/api/v1/networks/{T}:tfrn/")
    nm.ok("DELETE", f"/api/v1/networks/{T}:tfrx/")
    nm.ok("DELETE", "/api/v1/globals/global/")  # no tags in use: allowed
    g = {"name": "global", "fwdMode": "bridge", "vlans": "1-4094", "vxlans": "1-10000", "arpMode": "proxy",
         "networkInfraType": "default", "pvtSubnet": "172.19.0.0/16"}  # fmt: skip
    nm.ok("POST", "/api/v1/globals/global/", g)
    _net(nm, "tfrn", "10.74.0.0/24", "vlan")
    nm.check()


@pytest.mark.parametrize("free_by", ["releaseAddress", "reclaim"])
async def test_record_of_a_group_recreated_with_another_pool_frees_the_network_bit(etcd_kv, free_by):
    """Fuzz ("network X: ipAllocMap extra bit"): allocAddress for a group WITHOUT a pool takes the
    address in the network map and writes a record naming the group. The group is deleted and
    re-created WITH a pool elsewhere. The record was then read as belonging to the new pool's map:
    releaseAddress and the reclaimer deleted it and freed nothing, leaking the network bit."""
    from contivpy.netmaster import reclaim
    from contivpy.netmaster.config import Config
    from contivpy.netmaster.crud import Crud
    from contivpy.netmaster.endpoints import Allocator

    crud = Crud(etcd_kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    await crud.create_or_update("tenant", T, {"tenantName": T})
    net = {"tenantName": T, "networkName": "tfrn", "encap": "vlan", "subnet": "10.76.0.0/28"}
    await crud.create_or_update("network", f"{T}:tfrn", net)
    group = {"tenantName": T, "groupName": "tfrg", "networkName": "tfrn"}
    await crud.create_or_update("endpointGroup", f"{T}:tfrg", group)
    a = Allocator(etcd_kv, alloc_ttl_s=3600)
    got = await a.alloc_address(f"tfrn:tfrg.{T}")
    assert got["IPv4Address"] == "10.76.0.1/28"
    await crud.delete("endpointGroup", f"{T}:tfrg")
    await crud.create_or_update("endpointGroup", f"{T}:tfrg", dict(group, ipPool="10.76.0.3-10.76.0.5"))
    consistency.assert_consistent(await consistency.load_kv(etcd_kv))  # the record explains .1
    if free_by == "releaseAddress":
        await a.release_address(f"tfrn:tfrg.{T}", "10.76.0.1")
    else:
        assert await reclaim.scan_once(a, now=time.time() + 7200) == 1
    assert await etcd_kv.get(f"/contiv.io/state/addrAlloc/tfrn.{T}/10.76.0.1") is None
    consistency.assert_consistent(await consistency.load_kv(etcd_kv))
    assert (await a.alloc_address(f"tfrn.{T}"))["IPv4Address"] == "10.76.0.1/28"  # free again


def test_group_deleted_with_open_pool_allocations_gives_back_their_count(nm):
    """Fuzz: a pool group deleted while allocAddress results in its pool were unclaimed cleared the
    pool from the network map but left those addresses in the network's epAddrCount (inspect's
    allocatedAddressesCount) for good."""
    _net(nm, "tfrn", "10.77.0.0/24")
    group = {"tenantName": T, "groupName": "tfrg", "networkName": "tfrn", "ipPool": "10.77.0.10-10.77.0.20"}
    nm.ok("POST", f"/api/v1/endpointGroups/{T}:tfrg/", group)
    nm.ok("POST", "/plugin/allocAddress", {"NetworkID": f"tfrn.{T}"})
    for _ in range(2):
        nm.ok("POST", "/plugin/allocAddress", {"NetworkID": f"tfrn:tfrg.{T}"})
    assert _net_state(nm, "tfrn")["epAddrCount"] == 3
    nm.ok("DELETE", f"/api/v1/endpointGroups/{T}:tfrg/")
    assert _net_state(nm, "tfrn")["epAddrCount"] == 1
    oper = nm.ok("GET", f"/api/v1/inspect/networks/{T}:tfrn/")["Oper"]
    assert oper["allocatedAddressesCount"] == 1
    nm.check()


def test_alloc_address_refuses_a_group_of_another_network(nm):
    """Fuzz: allocAddress with NetworkID ``n1:g3.<tenant>`` where g3 is a group of n2 set the bit
    in g3's pool map (n2's addresses) and counted it in n1: an unexplained bit in n2's pool, a
    wrong count in n1, and an address n1's endpoints could never hold."""
    _net(nm, "tfrn", "10.78.0.0/24")
    _net(nm, "tfro", "10.79.0.0/24")
    group = {"tenantName": T, "groupName": "tfrg", "networkName": "tfro", "ipPool": "10.79.0.3-10.79.0.5"}
    nm.ok("POST", f"/api/v1/endpointGroups/{T}:tfrg/", group)
    before = consistency.load_etcdctl(nm.etcd.etcdctl)
    msg = nm.err("POST", "/plugin/allocAddress", {"NetworkID": f"tfrn:tfrg.{T}"})
    assert msg == "endpoint group tfrg belongs to network tfro, not tfrn"
    assert consistency.load_etcdctl(nm.etcd.etcdctl) == before
    assert (
        nm.ok("POST", "/plugin/allocAddress", {"NetworkID": f"tfro:tfrg.{T}"})["IPv4Address"]
        == "10.79.0.3/24"
    )
    nm.check()
