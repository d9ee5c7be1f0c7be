"""netplugin's /healthz, /readyz and /metrics on a real agent (test bed host: its own OVS, real etcd
and netmaster).

While the global configuration is missing the agent cannot finish its first sync: /healthz is
200, /readyz 503 (sync in progress), the other debug routes 503. Once the configuration is back it
becomes ready; endpoints, flows per table, Docker plugin and CNI calls, requests to netmaster and
etcd requests then show in /metrics and move with the actions taken, and a VTEP registration that OVS refuses moves the
reconcile failure and retry counters.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.testbed import http_json, wait_for

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

GLOBAL = "/contiv.io/master/config/global"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(host) -> dict[tuple[str, frozenset], float]:
    status, text = get(host.debug_url + "/metrics")
    assert status == 200, text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m, name: str, **labels) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


def total(m, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


def plugin_call(host, method: str, socket: str = "") -> int:
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket or host.plugin_socket,
         "-XPOST", f"http://x/{method}", "-d", "{}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return int(out)


def test_netplugin_probes_and_metrics():
    from tests.fixtures.testbed import Testbed

    with Testbed(1) as bed:
        h = bed.hosts[1]
        saved = bed.etcdctl("get", GLOBAL, "--print-value-only").strip()
        assert saved
        bed.etcdctl("del", GLOBAL)
        h.start_netplugin(wait=False)
        wait_for(lambda: get(h.debug_url + "/healthz") == (200, "ok\n"), 30, 0.1, "netplugin /healthz")
        status, text = get(h.debug_url + "/readyz")
        body = json.loads(text)
        assert status == 503 and body["ready"] is False, text
        assert body["checks"]["etcd"] == {"ok": True, "detail": "connected"}
        assert body["checks"]["sync"] == {"ok": False, "detail": "first sync in progress"}
        assert get(h.debug_url + "/inspect/driver")[0] == 503  # other routes wait for the sync
        assert val(scrape(h), "contiv_netplugin_ready") == 0

        bed.etcdctl("put", GLOBAL, saved)
        h.wait_ready()
        wait_for(lambda: get(h.debug_url + "/readyz")[0] == 200, 30, 0.1, "netplugin /readyz")
        body = json.loads(get(h.debug_url + "/readyz")[1])
        assert body == {
            "ready": True,
            "checks": {
                "etcd": {"ok": True, "detail": "connected"},
                "sync": {"ok": True, "detail": "first sync done"},
            },
        }

        m0 = scrape(h)
        assert val(m0, "contiv_netplugin_ready") == 1
        assert val(m0, "contiv_netplugin_ovsdb_connected") == 1
        for br in ("contivVxlanBridge", "contivVlanBridge"):
            assert val(m0, "contiv_netplugin_openflow_connected", bridge=br) == 1
            assert total(m0, "contiv_netplugin_flows", bridge=br) > 0  # the base pipeline
        recs = {dict(ls)["reconciler"] for (n, ls) in m0 if n == "contiv_netplugin_reconcile_failures_total"}
        assert {"networks", "vteps", "services", "global"} <= recs, recs
        assert recs == {
            dict(ls)["reconciler"] for (n, ls) in m0 if n == "contiv_netplugin_reconcile_queue_depth"
        }
        assert val(m0, "contiv_netplugin_endpoints", kind="local") == 0

        bed.create_network("obsnet", "10.107.1.0/24")
        st, info = http_json(
            "POST", h.debug_url + "/debug/endpoints",
            {"tenant": "default", "network": "obsnet", "group": "", "endpointID": "obs1"}, timeout=30,
        )  # fmt: skip
        assert st == 200, info
        m1 = scrape(h)
        assert val(m1, "contiv_netplugin_endpoints", kind="local") == 1
        nmreq = "contiv_netplugin_netmaster_requests_total"
        ce = dict(path="/plugin/createEndpoint", result="ok")
        assert val(m1, nmreq, **ce) == val(m0, nmreq, **ce) + 1
        assert total(m1, "contiv_netplugin_flows", bridge="contivVxlanBridge") > total(
            m0, "contiv_netplugin_flows", bridge="contivVxlanBridge"
        )
        grew = [
            dict(ls)["table"]
            for (n, ls), v in m1.items()
            if n == "contiv_netplugin_flows" and v > m0.get((n, ls), 0)
        ]
        assert grew, "no table gained a flow"
        assert total(m1, "contiv_etcd_request_duration_seconds_count") > total(
            m0, "contiv_etcd_request_duration_seconds_count"
        )
        assert total(m1, "contiv_netplugin_reconcile_queue_depth") >= 0

        # Docker plugin calls, known and unknown, are counted and timed
        assert plugin_call(h, "Plugin.Activate") == 200
        assert plugin_call(h, "NoSuch.Method") == 404
        m2 = scrape(h)
        act = dict(call="Plugin.Activate", code="200")
        assert (
            val(m2, "contiv_netplugin_plugin_requests_total", **act)
            == val(m1, "contiv_netplugin_plugin_requests_total", **act) + 1
        )
        assert val(m2, "contiv_netplugin_plugin_requests_total", call="unknown", code="404") >= 1
        assert val(m2, "contiv_netplugin_plugin_request_duration_seconds_count", call="Plugin.Activate") >= 1
        # CNI calls too (same metric, the CNI method as call): a CheckPod of an unknown pod fails
        assert plugin_call(h, "ContivCNI.CheckPod", h.cni_socket) == 500
        m2 = scrape(h)
        cni = dict(call="ContivCNI.CheckPod", code="500")
        assert val(m2, "contiv_netplugin_plugin_requests_total", **cni) == 1

        st, out = http_json("DELETE", f"{h.debug_url}/debug/endpoints/default/obsnet/obs1", timeout=30)
        assert st == 200, out
        m3 = scrape(h)
        de = dict(path="/plugin/deleteEndpoint", result="ok")
        assert val(m3, nmreq, **de) == val(m2, nmreq, **de) + 1
        assert val(m3, "contiv_netplugin_endpoints", kind="local") == 0

        # A VTEP registration OVS refuses (remote_ip is no address): the vteps reconciler fails,
        # retries with backoff, and the counters move; deleting the key clears the backoff gauge.
        bad = "/contiv.io/service/netplugin.vtep/obs-bad-peer:4789"
        bed.etcdctl("put", bad, json.dumps({"ServiceName": "netplugin.vtep", "HostAddr": "obs-bad-peer"}))
        fails = "contiv_netplugin_reconcile_failures_total"
        f0 = val(m3, fails, reconciler="vteps")
        r0 = val(m3, "contiv_netplugin_reconcile_retries_total", reconciler="vteps")

        def failing():
            m = scrape(h)
            return m if val(m, fails, reconciler="vteps") >= f0 + 2 else None

        m4 = wait_for(failing, 30, 0.2, "vteps failures counted")
        assert val(m4, "contiv_netplugin_reconcile_retries_total", reconciler="vteps") >= r0 + 1
        assert val(m4, fails, reconciler="networks") == val(m3, fails, reconciler="networks")
        bed.etcdctl("del", bad)
        wait_for(
            lambda: val(scrape(h), "contiv_netplugin_reconcile_backoff_keys", reconciler="vteps") == 0,
            30, 0.2, "vteps backoff cleared",
        )  # fmt: skip
        assert h.netplugin.poll() is None


def test_cyclic_gc_is_on_again_after_the_start_up():
    """The entry point pauses the cyclic GC (common/startup.py); the ready agent resumes it
    ``STARTUP_GC_DELAY`` later: the Python collector's counts in /metrics then move (a paused
    collector never runs a generation-0 pass; the resume runs one full collection)."""
    from tests.fixtures.testbed import Testbed

    with Testbed(1) as bed:
        h = bed.hosts[1]
        h.start_netplugin()
        gen = "python_gc_collections_total"

        def collected() -> bool:
            m = scrape(h)
            return val(m, gen, generation="2") >= 1 and val(m, gen, generation="0") >= 1

        wait_for(collected, 15, 0.2, "the cyclic GC running again in the agent")
        first = val(scrape(h), gen, generation="0")
        wait_for(lambda: val(scrape(h), gen, generation="0") > first, 15, 0.2, "generation-0 passes")
