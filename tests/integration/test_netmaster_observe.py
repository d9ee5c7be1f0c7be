"""netmaster's /healthz, /readyz and /metrics on real processes against the real etcd.

Probes answer for the process asked (a follower does not proxy them), stay open with --auth,
/readyz turns 503 while etcd is down, and the REST and etcd metrics move with the requests made.
"""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.etcd]


def scrape(nm) -> dict[tuple[str, frozenset], float]:
    status, headers, text = nm.request("GET", "/metrics")
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m, name: str, **labels) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


def total(m, name: str, **labels) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


def test_every_contiv_metric_follows_the_naming_conventions(netmaster_factory):
    nm = netmaster_factory()
    nm.request("POST", "/plugin/allocAddress", {"NetworkID": "tob-none.default"})  # an allocation counted
    status, _, text = nm.request("GET", "/metrics")
    assert status == 200
    fams = {f.name: f for f in text_string_to_metric_families(text) if f.name.startswith("contiv_")}
    assert {"contiv_netmaster_address_allocations", "contiv_netmaster_followup_pending", "contiv_netmaster_tags",
            "contiv_netmaster_network_addresses", "contiv_etcd_request_duration_seconds"} <= set(fams)  # fmt: skip
    for name, fam in fams.items():
        assert fam.type in ("counter", "gauge", "histogram"), name
        if fam.type == "counter":
            assert all(s.name == name + "_total" for s in fam.samples), name
        if fam.type == "histogram":
            assert name.endswith("_seconds"), name
        assert "seconds" not in name or name.endswith("_seconds"), name


def test_probes_on_leader_and_follower(netmaster_factory):
    leader = netmaster_factory()
    follower = netmaster_factory()
    assert leader.info()["current-state"] == "leader"
    for nm in (leader, follower):
        status, _, text = nm.request("GET", "/healthz")
        assert (status, text) == (200, "ok\n")
    status, _, text = leader.request("GET", "/readyz")
    assert status == 200, text
    assert json.loads(text) == {
        "ready": True,
        "checks": {"etcd": {"ok": True, "detail": "connected"}, "leader": {"ok": True, "detail": "leader"}},
    }
    status, _, text = follower.request("GET", "/readyz")
    body = json.loads(text)
    assert status == 200 and body["ready"], text
    assert body["checks"]["leader"]["detail"] == f"follower of 127.0.0.1:{leader.port}"
    # /metrics is the follower's own, not the leader's relayed
    assert val(scrape(leader), "contiv_netmaster_leader") == 1
    fm = scrape(follower)
    assert val(fm, "contiv_netmaster_leader") == 0 and val(fm, "contiv_netmaster_leader_known") == 1


def test_readyz_503_while_etcd_is_down(netmaster_factory, etcd_server):
    nm = netmaster_factory()
    assert nm.request("GET", "/readyz")[0] == 200
    before = scrape(nm)
    etcd_server.stop()
    try:
        t0 = time.monotonic()
        status, _, text = nm.request("GET", "/readyz")
        assert time.monotonic() - t0 < 5  # a probe never hangs on the store
        body = json.loads(text)
        assert status == 503 and body["ready"] is False, text
        assert body["checks"]["etcd"]["ok"] is False and body["checks"]["etcd"]["detail"]
        assert "Traceback" not in text
        assert nm.request("GET", "/healthz")[:1] == (200,)  # alive all the same
        # the daemon's own etcd requests (leader lease keepalive, ...) fail and are counted
        errors = "contiv_etcd_request_errors_total"
        deadline = time.monotonic() + 30
        while total(scrape(nm), errors) <= total(before, errors):
            assert time.monotonic() < deadline, "no etcd error counted while etcd is down"
            time.sleep(0.5)
    finally:
        etcd_server.start()
    deadline = time.monotonic() + 30
    while nm.request("GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline, nm.request("GET", "/readyz")
        time.sleep(0.2)


def test_metrics_move_with_requests(netmaster_factory):
    nm = netmaster_factory()
    route = "/api/v1/networks/{key}/"
    m0 = scrape(nm)
    body = {"tenantName": "default", "networkName": "tob-net", "encap": "vxlan", "subnet": "10.37.1.0/24"}
    status, _, text = nm.request("POST", "/api/v1/networks/default:tob-net/", body)
    assert status == 200, text
    missing, _, _ = nm.request("GET", "/api/v1/networks/default:nonexistent/")
    assert missing >= 400  # an error status (the original's: 500 for a missing object)
    nm.request("GET", "/no/such/path")
    m1 = scrape(nm)
    ok = dict(method="POST", route=route, code="200")
    assert (
        val(m1, "contiv_netmaster_http_requests_total", **ok)
        == val(m0, "contiv_netmaster_http_requests_total", **ok) + 1
    )
    nf = dict(method="GET", route=route, code=str(missing))
    assert (
        val(m1, "contiv_netmaster_http_requests_total", **nf)
        == val(m0, "contiv_netmaster_http_requests_total", **nf) + 1
    )
    assert val(m1, "contiv_netmaster_http_requests_total", method="GET", route="unmatched", code="404") >= 1
    hc = "contiv_netmaster_http_request_duration_seconds_count"
    assert val(m1, hc, method="POST", route=route) == val(m0, hc, method="POST", route=route) + 1
    assert val(m1, "contiv_netmaster_http_request_duration_seconds_sum", method="POST", route=route) > val(
        m0, "contiv_netmaster_http_request_duration_seconds_sum", method="POST", route=route
    )
    # the create wrote to etcd in transactions
    tc = "contiv_etcd_request_duration_seconds_count"
    assert val(m1, tc, operation="txn") > val(m0, tc, operation="txn")
    assert val(m1, "contiv_netmaster_leader") == 1
    # the scrape itself is counted, under its own route
    assert val(m1, "contiv_netmaster_http_requests_total", method="GET", route="/metrics", code="200") >= 1


def test_probes_and_metrics_need_no_token_with_auth(netmaster_factory, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("tob-secret-pw\n")
    nm = netmaster_factory(
        args=[
            "--tls-auto",
            "--tls-dir",
            str(tmp_path / "tls"),
            "--auth",
            "--auth-admin-password-file",
            str(pw),
        ]
    )
    assert nm.request("GET", "/api/v1/networks/")[0] == 401
    deadline = time.monotonic() + 20
    while nm.request("GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline, nm.request("GET", "/readyz")
        time.sleep(0.1)
    assert nm.request("GET", "/healthz")[:1] == (200,)
    assert "contiv_netmaster_http_requests_total" in nm.request("GET", "/metrics")[2]
    m = scrape(nm)
    assert (
        val(m, "contiv_netmaster_http_requests_total", method="GET", route="/api/v1/networks/", code="401")
        >= 1
    )


def test_allocation_and_followup_metrics_move(netmaster_factory, etcd_server):
    nm = netmaster_factory()
    follower = netmaster_factory()
    allocs, rels = "contiv_netmaster_address_allocations_total", "contiv_netmaster_address_releases_total"
    addrs, tags = "contiv_netmaster_network_addresses", "contiv_netmaster_tags"
    m0 = scrape(nm)
    assert val(m0, "contiv_netmaster_followup_pending") == 0
    assert val(m0, "contiv_netmaster_address_allocations_unclaimed") == 0
    vlan_used = val(m0, tags, type="vlan", state="used")
    vlan_free = val(m0, tags, type="vlan", state="free")
    assert vlan_free > 0
    body = {"tenantName": "default", "networkName": "tob-anet", "encap": "vlan", "subnet": "10.38.1.0/24",
            "gateway": "10.38.1.254"}  # fmt: skip
    assert nm.request("POST", "/api/v1/networks/default:tob-anet/", body)[0] == 200
    m1 = scrape(nm)
    net = dict(tenant="default", network="tob-anet")
    # 254 hosts, the gateway used
    assert (val(m1, addrs, state="used", **net), val(m1, addrs, state="free", **net)) == (1, 253)
    assert (val(m1, tags, type="vlan", state="used"), val(m1, tags, type="vlan", state="free")) == (
        vlan_used + 1,
        vlan_free - 1,
    )

    req = {"NetworkID": "tob-anet.default", "AddressPool": "", "PreferredIPv4Address": ""}
    st, _, text = nm.request("POST", "/plugin/allocAddress", req)
    assert st == 200, text
    ip = json.loads(text)["IPv4Address"]
    st, _, _ = nm.request("POST", "/plugin/allocAddress", dict(req, NetworkID="tob-nonet.default"))
    assert st != 200
    m2 = scrape(nm)
    ok, failed = dict(via="allocAddress", result="ok"), dict(via="allocAddress", result="failed")
    assert val(m2, allocs, **ok) == val(m1, allocs, **ok) + 1
    assert val(m2, allocs, **failed) == val(m1, allocs, **failed) + 1
    assert (val(m2, addrs, state="used", **net), val(m2, addrs, state="free", **net)) == (2, 252)
    assert val(m2, "contiv_netmaster_address_allocations_unclaimed") == 1

    st, _, text = nm.request(
        "POST", "/plugin/releaseAddress", {"NetworkID": "tob-anet.default", "IPv4Address": ip}
    )
    assert st == 200, text
    m3 = scrape(nm)
    assert val(m3, rels, via="releaseAddress") == val(m2, rels, via="releaseAddress") + 1
    assert (val(m3, addrs, state="used", **net), val(m3, addrs, state="free", **net)) == (1, 253)
    assert val(m3, "contiv_netmaster_address_allocations_unclaimed") == 0

    # an endpoint taking a free address counts as an allocation, its delete as a release
    ep = {"TenantName": "default", "NetworkName": "tob-anet", "ServiceName": "", "EndpointID": "tobep1",
          "EPCommonName": "tobctr", "ConfigEP": {"Container": "tobep1", "Host": "tobhost"}}  # fmt: skip
    assert nm.request("POST", "/plugin/createEndpoint", ep)[0] == 200
    m4 = scrape(nm)
    epok = dict(via="createEndpoint", result="ok")
    assert val(m4, allocs, **epok) == val(m3, allocs, **epok) + 1
    assert val(m4, addrs, state="used", **net) == 2
    delete = {"TenantName": "default", "NetworkName": "tob-anet", "EndpointID": "tobep1", "Host": "tobhost"}
    assert nm.request("POST", "/plugin/deleteEndpoint", delete)[0] == 200
    m5 = scrape(nm)
    assert val(m5, rels, via="deleteEndpoint") == val(m4, rels, via="deleteEndpoint") + 1
    assert val(m5, addrs, state="used", **net) == 1

    # follow-up jobs: an app profile create runs one after its commit
    jobs = "contiv_netmaster_followup_jobs_total"
    app = {"tenantName": "default", "appProfileName": "tob-app", "endpointGroups": []}
    assert nm.request("POST", "/api/v1/appProfiles/default:tob-app/", app)[0] == 200
    m6 = scrape(nm)
    assert val(m6, jobs, kind="appProfile", result="ok") == val(m5, jobs, kind="appProfile", result="ok") + 1
    assert val(m6, "contiv_netmaster_followup_pending") == 0
    # the backlog is what etcd holds: an intent key left by a leader that died mid-job
    key = "/contiv.io/master/pending/appProfile/default:tob-stuck"
    etcd_server.etcdctl("put", key, json.dumps({"kind": "appProfile", "id": "default:tob-stuck"}))
    try:
        assert val(scrape(nm), "contiv_netmaster_followup_pending") == 1
    finally:
        etcd_server.etcdctl("del", key)
    assert val(scrape(nm), "contiv_netmaster_followup_pending") == 0

    # a follower leaves the cluster-wide gauges to the leader (a sum counts them once)
    fm = scrape(follower)
    assert not any(n in (addrs, tags, "contiv_netmaster_followup_pending") for n, _ in fm)
    assert nm.request("DELETE", "/api/v1/appProfiles/default:tob-app/")[0] == 200
    assert nm.request("DELETE", "/api/v1/networks/default:tob-anet/")[0] == 200
