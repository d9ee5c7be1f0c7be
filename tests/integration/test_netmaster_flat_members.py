"""Adding a member to a parent costs the same whatever the parent's size (issue 11: "a group with
1,000 endpoints, a policy with 500 rules"), and the parent still reads byte for byte as before.

A network's and a netprofile's ``EndpointGroups``, a policy's ``Rules`` and ``EndpointGroups`` are
indexed link sets (netmaster/registry.py): one link key per member, the owner's record is not
rewritten, the set is built on read. Checked against a real netmaster + etcd:

- etcd's bytes in and out per member create are the same with 5 and with 205 members in the
  parent (before, each create rewrote the parent's record listing every member, and every watcher
  received it again: ~80 bytes more per member per create);
- GET / list / POST answers show the sets exactly as the original did, the stored owner record
  has no members and is not rewritten, deletes and the "has N endpoint groups" refusal work;
- a record that still stores members (the original's layout, an import) keeps them, unioned
  with the link keys; removing such a member removes it from the record;
- attaching the Nth group to a policy rebuilds only that (group, policy) pair's rule state.
"""

from __future__ import annotations

import json
import re
import statistics
import urllib.request

import pytest

from contivpy.model import keys
from tests.support import consistency

pytestmark = pytest.mark.etcd

T = "default"

_METRICS = {
    "range": r'^grpc_server_handled_total\{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV".*\} (\S+)$',
    "sent": r"^etcd_network_client_grpc_sent_bytes_total (\S+)$",
    "received": r"^etcd_network_client_grpc_received_bytes_total (\S+)$",
}


def _metrics(etcd_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(etcd_url + "/metrics", timeout=10).read().decode()
    return {k: float(m.group(1)) if (m := re.search(p, text, re.M)) else 0.0 for k, p in _METRICS.items()}


def _bytes_per_create(nm, etcd_url: str, reqs: list[tuple[str, dict]]) -> dict[str, float]:
    deltas = []
    for path, body in reqs:
        before = _metrics(etcd_url)
        nm.json("POST", path, body)
        after = _metrics(etcd_url)
        deltas.append({k: after[k] - before[k] for k in after})
    return {k: statistics.median(d[k] for d in deltas) for k in deltas[0]}


def _net(nm, name: str, i: int) -> None:
    body = {"networkName": name, "tenantName": T, "encap": "vxlan", "subnet": f"10.{i}.0.0/16"}
    nm.json("POST", f"/api/v1/networks/{T}:{name}/", body)


def _grp(name: str, net: str, **extra) -> tuple[str, dict]:
    return f"/api/v1/endpointGroups/{T}:{name}/", dict(
        {"groupName": name, "networkName": net, "tenantName": T}, **extra
    )


def _rule(policy: str, i: int) -> tuple[str, dict]:
    body = {
        "policyName": policy,
        "tenantName": T,
        "ruleId": str(i),
        "direction": "in",
        "action": "allow",
        "protocol": "tcp",
        "port": 1000 + i,
        "priority": 1,
    }
    return f"/api/v1/rules/{T}:{policy}:{i}/", body


def _stored(etcd, key: str) -> tuple[dict, int]:
    out = json.loads(etcd.etcdctl("get", key, "-w", "json"))
    kv = out["kvs"][0]
    import base64

    return json.loads(base64.b64decode(kv["value"])), int(kv["mod_revision"])


@pytest.mark.parametrize("series", ["network groups", "netprofile groups", "policy groups", "policy rules"])
def test_member_create_cost_does_not_grow_with_members(netmaster, etcd_server, series):
    nm = netmaster
    _net(nm, "fmn", 31)
    nm.json(
        "POST",
        f"/api/v1/netprofiles/{T}:fmnp/",
        {"profileName": "fmnp", "tenantName": T, "bandwidth": "1Mbps"},
    )
    nm.json("POST", f"/api/v1/policys/{T}:fmp/", {"policyName": "fmp", "tenantName": T})

    def reqs(lo: int, hi: int) -> list[tuple[str, dict]]:
        if series == "network groups":
            return [_grp(f"fmg{i}", "fmn") for i in range(lo, hi)]
        if series == "netprofile groups":
            return [_grp(f"fmg{i}", "fmn", netProfile="fmnp") for i in range(lo, hi)]
        if series == "policy groups":
            return [_grp(f"fmg{i}", "fmn", policies=["fmp"]) for i in range(lo, hi)]
        return [_rule("fmp", i) for i in range(lo + 1, hi + 1)]

    for path, body in reqs(0, 5):
        nm.json("POST", path, body)
    small = _bytes_per_create(nm, etcd_server.url, reqs(5, 15))
    for path, body in reqs(15, 215):
        nm.json("POST", path, body)
    large = _bytes_per_create(nm, etcd_server.url, reqs(215, 225))
    # before: +200 members made each create move ~16-30 kB more (the parent rewritten and re-sent)
    # the same etcd reads per create (before, a policy's Nth group re-read every pair: +2 per group)
    assert abs(large["range"] - small["range"]) <= 0.5, (series, small, large)
    for k in ("sent", "received"):
        assert large[k] <= small[k] * 1.15 + 600, (series, k, small, large)
    parent = {
        "network groups": ("networks", "fmn", "EndpointGroups"),
        "netprofile groups": ("netprofiles", "fmnp", "EndpointGroups"),
        "policy groups": ("policys", "fmp", "EndpointGroups"),
        "policy rules": ("policys", "fmp", "Rules"),
    }[series]
    got = nm.json("GET", f"/api/v1/{parent[0]}/{T}:{parent[1]}/")
    assert len(got["link-sets"][parent[2]]) == 225
    consistency.assert_consistent(consistency.load_etcdctl(etcd_server.etcdctl), settled=False)


def test_indexed_sets_read_as_before_and_the_owner_is_not_rewritten(netmaster, etcd_server):
    nm = netmaster
    _net(nm, "fmw", 41)
    nkey = keys.obj_key("network", f"{T}:fmw")
    stored0, rev0 = _stored(etcd_server, nkey)
    for g in ("fmb", "fma"):
        path, body = _grp(g, "fmw")
        nm.json("POST", path, body)
    stored1, rev1 = _stored(etcd_server, nkey)
    assert rev1 == rev0 and stored1 == stored0 and stored1["link-sets"] == {}
    expect = (
        f'{{"key":"{T}:fmw","encap":"vxlan","networkName":"fmw","nwType":"data","subnet":"10.41.0.0/16",'
        f'"tenantName":"{T}","link-sets":{{"EndpointGroups":{{'
        f'"{T}:fma":{{"type":"endpointGroup","key":"{T}:fma"}},'
        f'"{T}:fmb":{{"type":"endpointGroup","key":"{T}:fmb"}}}}}},'
        f'"links":{{"Tenant":{{"type":"tenant","key":"{T}"}}}}}}\n'
    )
    status, _, text = nm.request("GET", f"/api/v1/networks/{T}:fmw/")
    got = json.loads(text)
    assert status == 200 and set(got["link-sets"]) == {"EndpointGroups"}
    assert list(got["link-sets"]["EndpointGroups"]) == [f"{T}:fma", f"{T}:fmb"]
    assert text == expect  # byte for byte as the original wrote it (members sorted, in link-sets)
    status, _, listing = nm.request("GET", "/api/v1/networks/")
    assert status == 200 and text.rstrip("\n") in listing
    # a netprofile update sees its groups (it pushes the new bandwidth to them) and answers them
    npkey = keys.obj_key("netprofile", f"{T}:fmwp")
    nm.json(
        "POST",
        f"/api/v1/netprofiles/{T}:fmwp/",
        {"profileName": "fmwp", "tenantName": T, "bandwidth": "1Mbps"},
    )
    path, body = _grp("fmc", "fmw", netProfile="fmwp")
    nm.json("POST", path, body)
    upd = nm.json(
        "POST",
        f"/api/v1/netprofiles/{T}:fmwp/",
        {"profileName": "fmwp", "tenantName": T, "bandwidth": "2Mbps"},
    )
    assert list(upd["link-sets"]["EndpointGroups"]) == [f"{T}:fmc"]
    assert _stored(etcd_server, npkey)[0]["link-sets"] == {}
    state = json.loads(
        etcd_server.etcdctl("get", "--print-value-only", keys.epg_state(keys.epg_id("fmc", T)))
    )
    assert state["Bandwidth"] == "2Mbps"
    status, _, text = nm.request("DELETE", f"/api/v1/netprofiles/{T}:fmwp/")
    assert status == 500 and "NetProfile is being used" in text
    nm.json("DELETE", f"/api/v1/endpointGroups/{T}:fmc/")
    nm.json("DELETE", f"/api/v1/netprofiles/{T}:fmwp/")
    status, _, text = nm.request("DELETE", f"/api/v1/networks/{T}:fmw/")
    assert status == 500 and "cannot delete fmw has 2 endpoint groups" in text
    nm.json("DELETE", f"/api/v1/endpointGroups/{T}:fmb/")
    assert list(nm.json("GET", f"/api/v1/networks/{T}:fmw/")["link-sets"]["EndpointGroups"]) == [f"{T}:fma"]
    nm.json("DELETE", f"/api/v1/endpointGroups/{T}:fma/")
    assert nm.json("GET", f"/api/v1/networks/{T}:fmw/")["link-sets"] == {}
    assert (
        etcd_server.etcdctl("get", "--prefix", "--keys-only", keys.link_prefix("network", f"{T}:fmw")).strip()
        == ""
    )
    nm.json("DELETE", f"/api/v1/networks/{T}:fmw/")


def test_policy_delete_removes_its_link_keys(netmaster, etcd_server):
    nm = netmaster
    nm.json("POST", f"/api/v1/policys/{T}:fmd/", {"policyName": "fmd", "tenantName": T})
    for i in (1, 2, 3):
        path, body = _rule("fmd", i)
        nm.json("POST", path, body)
    assert sorted(nm.json("GET", f"/api/v1/policys/{T}:fmd/")["link-sets"]["Rules"]) == [
        f"{T}:fmd:{i}" for i in (1, 2, 3)
    ]
    nm.json("DELETE", f"/api/v1/policys/{T}:fmd/")
    assert etcd_server.etcdctl("get", "--prefix", "--keys-only", keys.LINKS).strip() == ""
    assert (
        etcd_server.etcdctl("get", "--prefix", "--keys-only", keys.obj_key("rule", f"{T}:fmd:")).strip() == ""
    )


def test_stored_members_of_an_older_record_are_kept_and_removable(netmaster, etcd_server):
    """The original (and an import) store the members in the owner's record: they still count."""
    nm = netmaster
    _net(nm, "fml", 42)
    path, body = _grp("fmo", "fml")
    nm.json("POST", path, body)
    nkey = keys.obj_key("network", f"{T}:fml")
    # plant the old layout: the member in the record, no link key
    rec, _ = _stored(etcd_server, nkey)
    rec["link-sets"] = {"EndpointGroups": {f"{T}:fmo": {"type": "endpointGroup", "key": f"{T}:fmo"}}}
    etcd_server.etcdctl("put", nkey, json.dumps(rec, separators=(",", ":")))
    etcd_server.etcdctl("del", keys.link_key("network", f"{T}:fml", "EndpointGroups", f"{T}:fmo"))
    path, body = _grp("fmp2", "fml")
    nm.json("POST", path, body)
    got = nm.json("GET", f"/api/v1/networks/{T}:fml/")
    assert list(got["link-sets"]["EndpointGroups"]) == [f"{T}:fmo", f"{T}:fmp2"]
    consistency.assert_consistent(consistency.load_etcdctl(etcd_server.etcdctl), settled=False)
    status, _, text = nm.request("DELETE", f"/api/v1/networks/{T}:fml/")
    assert status == 500 and "has 2 endpoint groups" in text
    nm.json("DELETE", f"/api/v1/endpointGroups/{T}:fmo/")  # removed from the stored record
    assert _stored(etcd_server, nkey)[0]["link-sets"] == {}
    assert list(nm.json("GET", f"/api/v1/networks/{T}:fml/")["link-sets"]["EndpointGroups"]) == [f"{T}:fmp2"]
    nm.json("DELETE", f"/api/v1/endpointGroups/{T}:fmp2/")
    nm.json("DELETE", f"/api/v1/networks/{T}:fml/")


def test_attaching_a_group_rebuilds_only_its_own_policy_pair(netmaster, etcd_server):
    nm = netmaster
    _net(nm, "fmq", 43)
    nm.json("POST", f"/api/v1/policys/{T}:fmr/", {"policyName": "fmr", "tenantName": T})
    for i in (1, 2):
        path, body = _rule("fmr", i)
        nm.json("POST", path, body)
    path, body = _grp("fmx", "fmq", policies=["fmr"])
    nm.json("POST", path, body)
    first = keys.POLICY + f"{T}:fmx:{T}:fmr"
    _, rev_first = _stored(etcd_server, first)
    path, body = _grp("fmy", "fmq", policies=["fmr"])
    nm.json("POST", path, body)
    second, _ = _stored(etcd_server, keys.POLICY + f"{T}:fmy:{T}:fmr")
    assert sorted(second["RuleMaps"]) == [f"{T}:fmr:1", f"{T}:fmr:2"]
    assert _stored(etcd_server, first)[1] == rev_first  # the other pair was not rewritten
    rules = etcd_server.etcdctl("get", "--prefix", "--keys-only", keys.POLICY_RULE + f"{T}:fmy:").split()
    assert len(rules) == 4  # inRx + inTx per tcp rule with a port
    assert etcd_server.etcdctl("get", "--prefix", "--keys-only", "/contiv.io/master/pending/").strip() == ""
    # detaching removes that pair only
    nm.json("POST", path, dict(body, policies=[]))
    assert etcd_server.etcdctl("get", "--prefix", "--keys-only", keys.POLICY_RULE + f"{T}:fmy:").strip() == ""
    assert _stored(etcd_server, first)[1] == rev_first
    assert list(nm.json("GET", f"/api/v1/policys/{T}:fmr/")["link-sets"]["EndpointGroups"]) == [f"{T}:fmx"]
    consistency.assert_consistent(consistency.load_etcdctl(etcd_server.etcdctl), settled=False)
    for g in ("fmx", "fmy"):
        nm.json("DELETE", f"/api/v1/endpointGroups/{T}:{g}/")
    nm.json("DELETE", f"/api/v1/policys/{T}:fmr/")
    nm.json("DELETE", f"/api/v1/networks/{T}:fmq/")
