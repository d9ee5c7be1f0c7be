"""contivpy.common.metrics (the prometheus_client adapter): event metrics, scrape-time collectors
and the exposition served at /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from contivpy.common import metrics

ROOT = Path(__file__).resolve().parents[2]


def samples() -> dict[tuple[str, frozenset], float]:
    body, ctype = metrics.exposition()
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }


def test_event_metrics_follow_conventions_and_count():
    before = samples()
    metrics.observe_etcd("lease grant", 0.002, failed=True)
    metrics.observe_http("GET", "/api/v1/networks/", 200, 0.01)
    metrics.observe_plugin("NetworkDriver.Join", 500, 0.3)
    after = samples()

    def delta(name, **labels):
        k = (name, frozenset(labels.items()))
        return after.get(k, 0) - before.get(k, 0)

    assert delta("contiv_etcd_request_duration_seconds_count", operation="lease_grant") == 1
    assert delta("contiv_etcd_request_errors_total", operation="lease_grant") == 1
    assert (
        delta("contiv_netmaster_http_requests_total", method="GET", route="/api/v1/networks/", code="200")
        == 1
    )
    assert delta("contiv_netplugin_plugin_requests_total", call="NetworkDriver.Join", code="500") == 1
    assert (
        delta("contiv_netplugin_plugin_request_duration_seconds_bucket", call="NetworkDriver.Join", le="0.5")
        == 1
    )
    assert (
        delta("contiv_netplugin_plugin_request_duration_seconds_bucket", call="NetworkDriver.Join", le="0.25")
        == 0
    )
    names = {n for n, _ in after if n.startswith("contiv_")}
    assert all(n.startswith("contiv_") for n in names)
    assert {n for n in names if "seconds" in n} <= {
        n
        for n in names
        if n.endswith(("_seconds_bucket", "_seconds_count", "_seconds_sum", "_seconds_created"))
    }


def test_collectors_are_read_at_scrape_time_and_unregistered():
    state = {"n": 1}

    def collect():
        return [
            metrics.Family("gauge", "contiv_test_things", "things", ("kind",)).add(state["n"], "a"),
            metrics.Family("counter", "contiv_test_events", "events").add(7),
        ]

    unregister = metrics.register(collect)
    try:
        assert samples()[("contiv_test_things", frozenset({("kind", "a")}))] == 1
        state["n"] = 5
        s = samples()
        assert s[("contiv_test_things", frozenset({("kind", "a")}))] == 5
        assert s[("contiv_test_events_total", frozenset())] == 7
    finally:
        unregister()
    assert ("contiv_test_things", frozenset({("kind", "a")})) not in samples()
    unregister()  # twice: harmless


def test_a_broken_collector_does_not_break_the_scrape():
    def broken():
        raise RuntimeError("boom")

    unregister = metrics.register(broken)
    try:
        body, _ = metrics.exposition()
        assert b"python_info" in body
    finally:
        unregister()


def test_prometheus_client_is_imported_at_the_first_scrape_only():
    """Start-up path: the daemons' modules import no prometheus_client; events observed before the
    first scrape are all in it (docs/benchmarks.md, start-up)."""
    code = (
        "import sys\n"
        "from contivpy.common import fastweb; fastweb.install()\n"
        "import contivpy.netmaster.daemon, contivpy.netmaster.api.observe, contivpy.common.kv.etcd\n"
        "import contivpy.netplugin.observe, contivpy.netplugin.docker.server, contivpy.netplugin.cni.server\n"
        "from contivpy.common import metrics\n"
        "assert 'prometheus_client' not in sys.modules, 'imported on the start-up path'\n"
        "metrics.observe_etcd('txn', 0.003, failed=False)\n"
        "metrics.observe_etcd('txn', 20.0, failed=True)\n"
        "metrics.ADDR_ALLOCS.inc('allocAddress', 'ok')\n"
        "body, _ = metrics.exposition()\n"
        "assert 'prometheus_client' in sys.modules\n"
        "sys.stdout.write(body.decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(out.stdout)
        for s in fam.samples
    }
    txn = frozenset({("operation", "txn")})
    assert got[("contiv_etcd_request_duration_seconds_count", txn)] == 2
    assert got[("contiv_etcd_request_duration_seconds_sum", txn)] == 20.003
    assert got[("contiv_etcd_request_duration_seconds_bucket", txn | {("le", "0.005")})] == 1
    assert got[("contiv_etcd_request_duration_seconds_bucket", txn | {("le", "10.0")})] == 1
    assert got[("contiv_etcd_request_duration_seconds_bucket", txn | {("le", "+Inf")})] == 2
    assert got[("contiv_etcd_request_errors_total", txn)] == 1
    assert (
        got[
            (
                "contiv_netmaster_address_allocations_total",
                frozenset({("via", "allocAddress"), ("result", "ok")}),
            )
        ]
        == 1
    )
    assert any(name.startswith("process_") for name, _ in got)  # the client's own collectors too
