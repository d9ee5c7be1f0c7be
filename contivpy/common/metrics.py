"""Prometheus metrics of both daemons: the one module that imports ``prometheus_client``.

Names follow the Prometheus conventions (``contiv_`` prefix, ``_total`` counters, ``_seconds``
durations); docs/rest-api.md ("Health and metrics") lists every metric. Two kinds:

- event metrics, updated where the event happens through the ``observe_*`` functions below
  (etcd requests in common/kv/etcd.py, netmaster REST requests, Docker plugin calls);
- state metrics, read at scrape time from the live objects by collectors that a daemon registers
  with ``register(collect)``: ``collect()`` returns ``Family`` values (plain data, so callers
  need not import prometheus_client) and ``register`` returns the function that unregisters it.

Everything lives in the process-wide default registry, which also carries the client's process
and Python collectors (``process_*``, ``python_*``). ``add_route(app)`` serves ``GET /metrics`` in
the text exposition format. A collector that raises is logged and skipped; a scrape never fails.
netctl never imports this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:  # aiohttp only for /metrics: the etcd adapter imports this module too
    from aiohttp import web

log = logging.getLogger(__name__)

# Request latencies here are mostly sub-millisecond to a few seconds.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ETCD_SECONDS = Histogram(
    "contiv_etcd_request_duration_seconds",
    "Duration of etcd requests by operation (get, put, delete, txn, lease_grant, ...), failed ones included",
    ["operation"],
    buckets=_BUCKETS,
)
ETCD_ERRORS = Counter(
    "contiv_etcd_request_errors_total",
    "etcd requests that failed (unreachable, timeout, refused)",
    ["operation"],
)
HTTP_REQUESTS = Counter(
    "contiv_netmaster_http_requests_total",
    "REST requests answered by netmaster, by method, route pattern and status code",
    ["method", "route", "code"],
)
HTTP_SECONDS = Histogram(
    "contiv_netmaster_http_request_duration_seconds",
    "Time netmaster took to answer a REST request, by method and route pattern",
    ["method", "route"],
    buckets=_BUCKETS,
)
PLUGIN_REQUESTS = Counter(
    "contiv_netplugin_plugin_requests_total",
    "Docker plugin calls (NetworkDriver.*, IpamDriver.*, Plugin.Activate) by call and status code",
    ["call", "code"],
)
PLUGIN_SECONDS = Histogram(
    "contiv_netplugin_plugin_request_duration_seconds",
    "Time netplugin took to answer a Docker plugin call",
    ["call"],
    buckets=_BUCKETS,
)


def observe_etcd(operation: str, seconds: float, failed: bool) -> None:
    op = operation.replace(" ", "_")
    ETCD_SECONDS.labels(op).observe(seconds)
    if failed:
        ETCD_ERRORS.labels(op).inc()


def observe_http(method: str, route: str, code: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(code)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)


def observe_plugin(call: str, code: int, seconds: float) -> None:
    PLUGIN_REQUESTS.labels(call, str(code)).inc()
    PLUGIN_SECONDS.labels(call).observe(seconds)


@dataclass
class Family:
    """One state metric at scrape time: ``kind`` "gauge" or "counter" (name without ``_total``)."""

    kind: str
    name: str
    doc: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, value: float, *labels: str) -> Family:
        self.samples.append((tuple(labels), float(value)))
        return self


class _Collector:
    def __init__(self, collect: Callable[[], Iterable[Family]]) -> None:
        self._collect = collect

    def describe(self) -> list[Metric]:  # no up-front description: the families depend on live state
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            fams = list(self._collect())
        except Exception:  # a broken collector must not break the scrape
            log.exception("metrics collector failed")
            return
        for f in fams:
            cls = GaugeMetricFamily if f.kind == "gauge" else CounterMetricFamily
            m = cls(f.name, f.doc, labels=list(f.labels))
            for labels, value in f.samples:
                m.add_metric(list(labels), value)
            yield m


def register(collect: Callable[[], Iterable[Family]]) -> Callable[[], None]:
    c = _Collector(collect)
    REGISTRY.register(c)

    def unregister() -> None:
        try:
            REGISTRY.unregister(c)
        except KeyError:
            pass

    return unregister


# The classic text format every Prometheus version reads (our names are plain ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE


def add_route(app: web.Application) -> None:
    """``GET /metrics`` on an aiohttp application."""
    from aiohttp import web

    async def metrics(_req: web.Request) -> web.Response:
        body, ctype = exposition()
        return web.Response(body=body, headers={"Content-Type": ctype})

    app.router.add_get("/metrics", metrics)


def timer() -> Callable[[], float]:
    """``t = timer(); ...; t()`` -> seconds since the call (monotonic)."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


__all__ = ["Family", "add_route", "exposition", "observe_etcd", "observe_http", "observe_plugin", "register"]
