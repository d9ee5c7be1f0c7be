"""Prometheus metrics of both daemons: the one module that imports ``prometheus_client``.

Names follow the Prometheus conventions (``contiv_`` prefix, ``_total`` counters, ``_seconds``
durations); docs/rest-api.md ("Health and metrics") lists every metric. Two kinds:

- event metrics (``Counter``, ``Histogram`` below), updated where the event happens through the
  ``observe_*`` functions and ``.inc()``/``.observe()`` (etcd requests in common/kv/etcd.py,
  netmaster REST requests, allocations and follow-up jobs, Docker plugin calls);
- state metrics, read at scrape time from the live objects by collectors that a daemon registers
  with ``register(collect)``: ``collect()`` returns ``Family`` values (plain data) and
  ``register`` returns the function that unregisters it. ``add_route(app, before=...)`` can run
  an async refresh (an etcd read, say) before each scrape for the collectors to read.

Start-up cost (docs/benchmarks.md): importing ``prometheus_client`` costs 12-18 ms of CPU, paid
on the daemons' start-up path when it was imported here at load time. It is now imported on the
first scrape only (``exposition()``): the event metrics are our own small counters and
histograms (plain dicts, one per metric, keyed by label values; a histogram keeps per-bucket
counts, sum and count), so no observation made before the first scrape is lost, and at scrape
time they, and the registered collectors, are handed to the client's default registry through
one bridge collector. That registry also carries the client's process and Python collectors
(``process_*``, ``python_*``), which read their values at scrape time too. A collector that
raises is logged and skipped; a scrape never fails. netctl never imports this module.

Invariant: the observe path is a dict update (no lock: the daemons observe from their event
loop thread only).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiohttp only for /metrics: the etcd adapter imports this module too
    from aiohttp import web

log = logging.getLogger(__name__)

# Request latencies here are mostly sub-millisecond to a few seconds.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class Counter:
    """A labelled counter: ``C.inc(*label_values, amount=1)``. ``name`` without ``_total``."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.doc, self.labels = name.removesuffix("_total"), doc, labels
        self.values: dict[tuple[str, ...], float] = {}
        _EVENT_METRICS.append(self)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def _family(self, core: Any, _fmt: Callable[[float], str]) -> Any:
        m = core.CounterMetricFamily(self.name, self.doc, labels=list(self.labels))
        for labels, v in list(self.values.items()):
            m.add_metric(list(labels), v)
        return m


class Histogram:
    """A labelled histogram: ``H.observe(seconds, *label_values)`` (cumulative at scrape time)."""

    def __init__(
        self, name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = _BUCKETS
    ) -> None:
        self.name, self.doc, self.labels, self.buckets = name, doc, labels, buckets
        # per label values: [count per bucket (last one: +Inf), sum]
        self.values: dict[tuple[str, ...], list[Any]] = {}
        _EVENT_METRICS.append(self)

    def observe(self, value: float, *labels: str) -> None:
        v = self.values.get(labels)
        if v is None:
            v = self.values[labels] = [[0] * (len(self.buckets) + 1), 0.0]
        v[0][bisect.bisect_left(self.buckets, value)] += 1
        v[1] += value

    def count(self, *labels: str) -> int:
        v = self.values.get(labels)
        return sum(v[0]) if v else 0

    def _family(self, core: Any, fmt: Callable[[float], str]) -> Any:
        m = core.HistogramMetricFamily(self.name, self.doc, labels=list(self.labels))
        bounds = [fmt(b) for b in self.buckets] + ["+Inf"]
        for labels, (counts, total) in list(self.values.items()):
            acc, cum = 0, []
            for bound, n in zip(bounds, counts, strict=True):
                acc += n
                cum.append((bound, acc))
            m.add_metric(list(labels), cum, total)
        return m


_EVENT_METRICS: list[Counter | Histogram] = []
_COLLECTORS: list[Callable[[], Iterable[Family]]] = []

ETCD_SECONDS = Histogram(
    "contiv_etcd_request_duration_seconds",
    "Duration of etcd requests by operation (get, put, delete, txn, lease_grant, ...), failed ones included",
    ("operation",),
)
ETCD_ERRORS = Counter(
    "contiv_etcd_request_errors_total",
    "etcd requests that failed (unreachable, timeout, refused)",
    ("operation",),
)
ETCD_REQUESTS = Counter(
    "contiv_etcd_requests_total",
    "etcd requests sent by the JSON-gateway client, by kind: range (one key), range_prefix (a key "
    "range), txn_read (get_many: a read-only txn), txn_check (a txn that writes only if its compares "
    "fail: the service registry's periodic check), txn (any other txn), put, deleterange, "
    "lease_grant, lease_keepalive, lease_revoke, watch (a watch stream opened), status, compaction",
    ("kind",),
)
ETCD_BYTES = Counter(
    "contiv_etcd_bytes_total",
    "JSON bytes sent to and received from etcd's gateway, by kind (as contiv_etcd_requests_total; "
    "watch: the events streamed) and direction (sent, received)",
    ("kind", "direction"),
)
ETCD_WATCH_EVENTS = Counter(
    "contiv_etcd_watch_events_total",
    "Watch events delivered to this process by etcd, by watched prefix",
    ("prefix",),
)
HTTP_REQUESTS = Counter(
    "contiv_netmaster_http_requests_total",
    "REST requests answered by netmaster, by method, route pattern and status code",
    ("method", "route", "code"),
)
HTTP_SECONDS = Histogram(
    "contiv_netmaster_http_request_duration_seconds",
    "Time netmaster took to answer a REST request, by method and route pattern",
    ("method", "route"),
)
PLUGIN_REQUESTS = Counter(
    "contiv_netplugin_plugin_requests_total",
    "Docker plugin calls (NetworkDriver.*, IpamDriver.*, Plugin.Activate) by call and status code",
    ("call", "code"),
)
PLUGIN_SECONDS = Histogram(
    "contiv_netplugin_plugin_request_duration_seconds",
    "Time netplugin took to answer a Docker plugin call",
    ("call",),
)
ADDR_ALLOCS = Counter(
    "contiv_netmaster_address_allocations_total",
    "IPv4 address allocations committed (result ok) or refused (result failed), by API "
    "(allocAddress, createEndpoint)",
    ("via", "result"),
)
ADDR_RELEASES = Counter(
    "contiv_netmaster_address_releases_total",
    "IPv4 addresses freed, by API (releaseAddress, deleteEndpoint)",
    ("via",),
)
FOLLOWUP_JOBS = Counter(
    "contiv_netmaster_followup_jobs_total",
    "Follow-up jobs run after their request's commit (or at leader start), by kind and result",
    ("kind", "result"),
)
NETMASTER_CALLS = Counter(
    "contiv_netplugin_netmaster_requests_total",
    "netplugin's requests to netmaster (/plugin/*) by path and result: ok, refused (an error "
    "answer), unreachable (every attempt failed to connect)",
    ("path", "result"),
)
NETMASTER_RETRIES = Counter(
    "contiv_netplugin_netmaster_retries_total",
    "Attempts to reach netmaster repeated after a connection failure or timeout, by path",
    ("path",),
)
WATCH_EVENTS = Counter(
    "contiv_netplugin_watch_events_total",
    "etcd keys netplugin received (initial listing and watch events), by watched prefix: the load "
    "every other host's changes put on this agent",
    ("prefix",),
)


def observe_etcd(operation: str, seconds: float, failed: bool) -> None:
    op = operation.replace(" ", "_")
    ETCD_SECONDS.observe(seconds, op)
    if failed:
        ETCD_ERRORS.inc(op)


def observe_http(method: str, route: str, code: int, seconds: float) -> None:
    HTTP_REQUESTS.inc(method, route, str(code))
    HTTP_SECONDS.observe(seconds, method, route)


def observe_plugin(call: str, code: int, seconds: float) -> None:
    PLUGIN_REQUESTS.inc(call, str(code))
    PLUGIN_SECONDS.observe(seconds, call)


def observed_plugin_calls(dispatch: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Wrap a plugin server's ``dispatch(request) -> response`` (the Docker plugin's and the CNI
    server's) so that every call is counted and timed in ``contiv_netplugin_plugin_*``, labelled by
    the route's ``{method}``; calls to unknown methods (404) share the label ``unknown`` so that the
    label set stays bounded whatever clients send."""

    async def observed(request: Any) -> Any:
        elapsed = timer()
        resp = await dispatch(request)
        call = request.match_info["method"] if resp.status != 404 else "unknown"
        observe_plugin(call, resp.status, elapsed())
        return resp

    return observed


def register(collect: Callable[[], Iterable[Family]]) -> Callable[[], None]:
    _COLLECTORS.append(collect)

    def unregister() -> None:
        try:
            _COLLECTORS.remove(collect)
        except ValueError:
            pass

    return unregister


class _Bridge:
    """The one collector of ours in the client's registry: event metrics, then state families."""

    def __init__(self, core: Any, fmt: Callable[[float], str]) -> None:
        self._core, self._fmt = core, fmt

    def describe(self) -> list[Any]:  # no up-front description: the families depend on live state
        return []

    def collect(self) -> Iterator[Any]:
        core = self._core
        for em in list(_EVENT_METRICS):
            yield em._family(core, self._fmt)
        for collect in list(_COLLECTORS):
            try:
                fams = list(collect())
            except Exception:  # a broken collector must not break the scrape
                log.exception("metrics collector failed")
                continue
            for f in fams:
                cls = core.GaugeMetricFamily if f.kind == "gauge" else core.CounterMetricFamily
                m = cls(f.name, f.doc, labels=list(f.labels))
                for labels, value in f.samples:
                    m.add_metric(list(labels), value)
                yield m


_REGISTRY: Any = None


def _registry() -> Any:
    """Import prometheus_client (first scrape only) and hook our bridge into its default registry."""
    global _REGISTRY
    if _REGISTRY is None:
        from prometheus_client import REGISTRY, core, utils

        REGISTRY.register(_Bridge(core, utils.floatToGoString))
        _REGISTRY = REGISTRY
    return _REGISTRY


# The classic text format every Prometheus version reads (our names are plain ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition() -> tuple[bytes, str]:
    from prometheus_client import generate_latest

    return generate_latest(_registry()), CONTENT_TYPE


def add_route(app: web.Application, before: Callable[[], Awaitable[None]] | None = None) -> None:
    """``GET /metrics`` on an aiohttp application; ``before()`` (if given) runs first, errors logged."""
    from aiohttp import web

    async def metrics(_req: web.Request) -> web.Response:
        if before is not None:
            try:
                await before()
            except Exception:  # the event metrics are still worth serving
                log.exception("metrics refresh failed")
        body, ctype = exposition()
        return web.Response(body=body, headers={"Content-Type": ctype})

    app.router.add_get("/metrics", metrics)


def timer() -> Callable[[], float]:
    """``t = timer(); ...; t()`` -> seconds since the call (monotonic)."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


__all__ = [
    "Counter",
    "Family",
    "Histogram",
    "add_route",
    "exposition",
    "observe_etcd",
    "observe_http",
    "observe_plugin",
    "register",
]
