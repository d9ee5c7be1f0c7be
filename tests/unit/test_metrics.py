"""contivpy.common.metrics (the prometheus_client adapter): event metrics, scrape-time collectors
and the exposition served at /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from contivpy.common import metrics


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
