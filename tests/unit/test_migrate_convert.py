"""The v2 -> contivpy converter (netmaster/migrate/convert.py) on the recorded Contiv 1.2.1 dump
(tests/data/contiv-1.2.1-etcd-v2.json, docs/upgrade.md "Test data") and damaged variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contivpy.model import keys
from contivpy.model.state import AddrAllocRecord, NetworkState
from contivpy.netmaster.bitset import Bitset
from contivpy.netmaster.migrate.convert import MigrateError, classify, convert

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str = "contiv-1.2.1-etcd-v2.json") -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="module")
def dump() -> dict:
    return load()


@pytest.fixture(scope="module")
def plan(dump):
    return convert(dump["keys"], now=1000.0, alloc_ttl=300.0)


def test_recorded_dump_converts_without_problems(dump, plan):
    rep = plan.report
    assert rep.problems == [] and rep.unknown == [] and not rep.refused
    assert rep.source_keys == 122
    assert rep.skipped_volatile == sorted(dump["volatile_keys"])
    assert not any(k.startswith((keys.LOCK, keys.SERVICE)) for k in plan.target)
    assert rep.warnings and "127.0.0.1:29599" in rep.warnings[0]


def test_copied_records_are_byte_identical(dump, plan):
    rebuilt = (keys.SERVICE_LB, keys.PROVIDER, keys.POLICY + "")
    for k, v in dump["keys"].items():
        if classify(k) == "volatile" or k.startswith(rebuilt):
            continue
        if k.startswith(keys.POLICY_RULE) and "IcmpType" in plan.target[k]:  # contivpy's addition
            assert {**json.loads(v), "IcmpType": "request"} == json.loads(plan.target[k]), k
            continue
        assert plan.target[k] == v, k


def test_ofnet_rules_equal_the_originals(dump, plan):
    rules = {k: v for k, v in dump["keys"].items() if k.startswith(keys.POLICY_RULE)}
    assert len(rules) == 25
    # contivpy's one addition: a deny icmp rule without port matches ICMP requests only
    # (``IcmpType: "request"``, docs/decisions.md); every other byte is the original's
    want = {}
    for k, v in rules.items():
        r = json.loads(v)
        if r["IpProtocol"] == 1 and r["Action"] == "deny" and k.endswith(("inRx", "outTx")):
            v = json.dumps(dict(r, IcmpType="request"), separators=(",", ":"))
        want[k] = v
    assert sum("IcmpType" in v for v in want.values()) == 1
    assert {k: v for k, v in plan.target.items() if k.startswith(keys.POLICY_RULE)} == want
    assert any("IcmpType request added" in c for c in plan.report.changes)
    pols = [k for k in plan.target if k.startswith(keys.POLICY) and not k.startswith(keys.POLICY_RULE)]
    assert sorted(pols) == sorted(k for k in dump["keys"] if k.startswith(keys.POLICY) and k not in rules)


def test_epg_ids_persisted(plan):
    ids = {k[len(keys.ROOT + "master/epgid/") :]: v for k, v in plan.target.items() if "/master/epgid/" in k}
    assert ids == {
        "1": "db:default",
        "2": "app:default",
        "3": "web:default",
        "4": "blue-db:blue",
        "5": "blue-web:blue",
        "6": "v6-grp:default",
        "7": "ext-grp:default",
        "8": "range-grp:default",
    }


def test_pending_alloc_imported_as_unclaimed_record(plan):
    assert plan.report.unclaimed == [("test-net.default", "10.103.1.3", "")]
    recs = {k: v for k, v in plan.target.items() if k.startswith(keys.ADDR_ALLOC)}
    assert list(recs) == [keys.addr_alloc("test-net.default", "10.103.1.3")]
    rec = AddrAllocRecord.from_json(recs[keys.addr_alloc("test-net.default", "10.103.1.3")])
    assert (rec.networkId, rec.address, rec.group, rec.created, rec.expires) == (
        "test-net.default",
        "10.103.1.3",
        "",
        1000.0,
        1300.0,
    )


def test_provider_candidates_and_kept_provider_lists(dump, plan):
    cands = sorted(k for k in plan.target if k.startswith(keys.SVC_PROVIDER))
    assert len(cands) == 4  # web-1, web-2, db-1, blue-1: the endpoints with labels
    assert json.loads(plan.target[keys.svc_provider_gen("default")]) == {"tenant": "default", "generation": 1}
    for svc in ("websvc:default", "dbsvc:default", "bluesvc:blue"):
        old = json.loads(dump["keys"][keys.PROVIDER + svc])["Providers"]
        assert json.loads(plan.target[keys.PROVIDER + svc])["Providers"] == old
        prov = json.loads(plan.target[keys.SERVICE_LB + svc])["providers"]
        assert sorted(prov) == sorted(json.loads(dump["keys"][keys.SERVICE_LB + svc])["providers"])
        assert all("Services" not in p and p["EpIDKey"] for p in prov.values())
    assert any("dbsvc:default: provider 10.37.1.10 kept" in c for c in plan.report.changes)


def test_conversion_is_deterministic(dump, plan):
    assert convert(dump["keys"], now=1000.0, alloc_ttl=300.0).target == plan.target


# --- damaged inputs -------------------------------------------------------------------------------


def test_damaged_copy_reported_refused_and_repaired():
    src = load("contiv-1.2.1-etcd-v2-damaged.json")["keys"]
    p = convert(src, now=1.0)
    assert p.report.refused
    lines = [f.line() for f in p.report.problems]
    tenant = keys.obj_key("tenant", "default")
    assert (
        f"{tenant}: link-set Networks names missing network default:gone-net [--repair: drop the link]"
        in lines
    )
    assert any("vlan 200 outside the global vlan range 100-150" in x for x in lines)
    assert any("address 10.36.1.4 is marked free in network web-net.default's map" in x for x in lines)
    assert all(f.repair for f in p.report.problems)

    r = convert(src, now=1.0, repair=True)
    assert not r.report.refused
    assert "gone-net" not in r.target[tenant]
    g = json.loads(r.target[keys.obj_key("global", "global")])
    assert g["vlans"] == "100-200"
    assert json.loads(r.target[keys.STATE_GLOBAL])["auto"]["VLANs"] == "100-200"
    web = NetworkState.from_json(r.target[keys.net_state("web-net.default")])
    assert Bitset.decode(web.ipAllocMap).test(4)
    # the repaired tag maps are exactly those of the undamaged original but for the range
    orig = convert(load()["keys"], now=1.0)
    assert r.target[keys.OPER_AUTO_VXLAN] == orig.target[keys.OPER_AUTO_VXLAN]
    assert web.ipAllocMap == NetworkState.from_json(orig.target[keys.net_state("web-net.default")]).ipAllocMap


def test_unknown_key_kinds_are_listed_and_refused(dump):
    src = dict(dump["keys"])
    src["/contiv.io/obj/modeldb/spaceship/x"] = "{}"
    src["/contiv.io/state/weird/y"] = "{}"
    p = convert(src, repair=True)
    assert p.report.unknown == ["/contiv.io/obj/modeldb/spaceship/x", "/contiv.io/state/weird/y"]
    assert p.report.refused
    assert "unknown key kinds" in p.report.render()


def test_model_validation_failure_refused(dump):
    src = dict(dump["keys"])
    k = keys.obj_key("network", "default:test-net")
    obj = json.loads(src[k])
    obj["subnet"] = "10.103.1.0/33"
    src[k] = json.dumps(obj)
    src[keys.obj_key("rule", "default:web-policy:1")] = '{"key":"default:web-policy:1","bogus":1}'
    src[keys.net_state("web-net.default")] = "[1,2"
    p = convert(src, repair=True)
    lines = [f.line() for f in p.report.problems]
    assert f"{k}: fails the model's validation: subnet string invalid format [not repairable]" in lines
    assert any('json: unknown field "bogus"' in x for x in lines)
    assert f"{keys.net_state('web-net.default')}: value is not a JSON object [not repairable]" in lines
    assert p.report.refused


def test_no_contiv_keys_refused():
    with pytest.raises(MigrateError, match="no /contiv.io keys"):
        convert({"/other/x": "1"})


def test_two_endpoints_on_one_address_not_repairable(dump):
    src = dict(dump["keys"])
    k = "/contiv.io/state/eps/web-net.default-7b4790042ffb87b34736ad0647a75156cdd5e119bfacfbff1e957573c2718d08"
    ep = json.loads(src[k])
    ep["ipAddress"] = "10.36.1.1"
    src[k] = json.dumps(ep)
    p = convert(src, repair=True)
    assert p.report.refused
    assert any("address 10.36.1.1 also held by" in f.problem and not f.repair for f in p.report.problems)


def test_native_intf_endpoint_moves_to_per_network_key(dump):
    src = dict(dump["keys"])
    ep = {
        "id": "h1-native-intf",
        "netID": "test-net.default",
        "endpointID": "h1-native-intf",
        "ipAddress": "10.103.1.3",
        "macAddress": "02:02:0a:67:01:03",
        "homingHost": "h1",
    }
    src[keys.ep_state("h1-native-intf")] = json.dumps(ep)
    p = convert(src)
    assert not p.report.refused, p.report.render()
    moved = keys.ep_state("test-net.default-h1-native-intf")
    assert json.loads(p.target[moved])["id"] == "test-net.default-h1-native-intf"
    assert keys.ep_state("h1-native-intf") not in p.target
    assert p.report.unclaimed == []  # 10.103.1.3 is now explained by the endpoint


def test_state_records_with_wrong_types_or_unreadable_bitmaps_refused(dump):
    src = dict(dump["keys"])
    net = json.loads(src[keys.net_state("web-net.default")])
    net["pktTag"] = "2"
    src[keys.net_state("web-net.default")] = json.dumps(net)
    epg = json.loads(src[keys.epg_state("app:default")])
    epg["epgIpAllocMap"] = "!!not base64!!"
    src[keys.epg_state("app:default")] = json.dumps(epg)
    p = convert(src, repair=True)
    lines = [f.line() for f in p.report.problems]
    assert (
        f"{keys.net_state('web-net.default')}: field pktTag has the wrong type (string) [not repairable]"
        in lines
    )
    assert (
        f"{keys.epg_state('app:default')}: unreadable address bitmap, subnet or range [not repairable]"
        in lines
    )
    assert p.report.refused


def test_oper_endpoint_records_get_the_group(dump):
    src = dict(dump["keys"])
    ep_id = "web-net.default-c4719afa76fa448b5eca99e6736885846501d17956f2fcb2de5c916d723f3a87"
    src[keys.ep_oper(ep_id)] = json.dumps({"id": ep_id, "netID": "web-net.default", "ipAddress": "10.36.1.1"})
    src[keys.ep_oper("web-net.default-gone")] = json.dumps({"id": "web-net.default-gone"})
    p = convert(src)
    assert [f.line() for f in p.report.problems] == [
        f"{keys.ep_oper('web-net.default-gone')}: oper record of an endpoint that does not exist [--repair: drop it]"
    ]
    r = convert(src, repair=True)
    oper = json.loads(r.target[keys.ep_oper(ep_id)])
    assert (oper["endpointGroupId"], oper["endpointGroupKey"]) == (3, "web:default")
    assert keys.ep_oper("web-net.default-gone") not in r.target


def test_unexplained_pool_address_becomes_a_group_record(dump):
    from contivpy.model.state import EndpointGroupState

    src = dict(dump["keys"])
    k = keys.epg_state("db:default")
    g = EndpointGroupState.from_json(src[k])
    bm = Bitset.decode(g.epgIpAllocMap)
    bm.set(15)  # 10.37.1.15, inside db's pool 10.37.1.10-20, no endpoint
    g.epgIpAllocMap = bm.encode()
    src[k] = g.to_json()
    p = convert(src, now=7.0)
    assert not p.report.refused
    assert sorted(p.report.unclaimed) == [
        ("db-net.default", "10.37.1.15", "db"),
        ("test-net.default", "10.103.1.3", ""),
    ]
    rec = AddrAllocRecord.from_json(p.target[keys.addr_alloc("db-net.default", "10.37.1.15")])
    assert (rec.group, rec.expires) == ("db", 307.0)


def test_malformed_links_refused(dump):
    src = dict(dump["keys"])
    k = keys.obj_key("tenant", "blue")
    obj = json.loads(src[k])
    obj["link-sets"]["Networks"] = ["blue:blue-net"]
    src[k] = json.dumps(obj)
    p = convert(src, repair=True)
    assert f"{k}: link-sets or links are not objects of {{type, key}} links [not repairable]" in [
        f.line() for f in p.report.problems
    ]


ODD_VALUES = [
    "null",
    "[]",
    '"x"',
    "{}",
    '{"id":5}',
    '{"ipAllocMap":5}',
    '{"labels":{"a":1}}',
    '{"providers":{"x":5}}',
    '{"providers":{"x":{"Labels":[1]}}}',
    '{"link-sets":{"A":{"b":5}}}',
]


def test_odd_values_never_crash_the_converter(dump):
    """One key of every kind replaced by odd JSON: a report (or MigrateError), never an exception."""
    seen, sample = set(), []
    for k in dump["keys"]:
        kind = k.rsplit("/", 1)[0]
        if kind not in seen:
            seen.add(kind)
            sample.append(k)
    for k in sample:
        for v in ODD_VALUES:
            src = dict(dump["keys"])
            src[k] = v
            p = convert(src, repair=True)
            if k.startswith((keys.LOCK, keys.SERVICE)) or v in ("{}", '{"link-sets":{"A":{"b":5}}}'):
                continue
            derived = k.startswith((keys.POLICY, keys.PROVIDER)) and not k.startswith(keys.POLICY_RULE)
            assert p.report.problems or p.report.unknown or (derived and p.report.changes), (k, v)
