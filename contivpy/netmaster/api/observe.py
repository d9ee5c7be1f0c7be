"""netmaster's probes and metrics (docs/rest-api.md, "Health and metrics").

- ``metrics_middleware`` (outermost): every answered request, proxied or refused ones included,
  counts in ``contiv_netmaster_http_requests_total{method,route,code}`` and
  ``contiv_netmaster_http_request_duration_seconds{method,route}``. ``route`` is the matched route
  pattern with the object type filled in when it is a known one (``/api/v1/networks/{key}/``),
  never the raw path, so the label set stays bounded; unmatched paths count as ``unmatched``.
- ``install(app)``: ``/healthz``, ``/readyz`` (etcd answers a read within 2 s, and this netmaster
  is the leader or knows another leader; not while it holds the lock but has not finished taking
  over, when requests would still be refused) and ``/metrics`` with the state gauges
  ``contiv_netmaster_leader`` (1 while leader) and ``contiv_netmaster_leader_known`` (1 while a
  leader, this one or another, holds the lock). These paths are served by the process asked: the
  follower proxy and the auth middleware let them through (common/health.py ``LOCAL_PATHS``).
"""

from __future__ import annotations

from aiohttp import web

from contivpy.common import health, metrics
from contivpy.netmaster.api.keys import CONFIG, KV, STATE
from contivpy.netmaster.registry import BY_PLURAL


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    route = resource.canonical
    plural = request.match_info.get("plural")
    if plural is not None and plural in BY_PLURAL:  # a known object type: name it (bounded set)
        route = route.replace("{plural}", plural)
    return route


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    elapsed = metrics.timer()
    code = 500
    try:
        resp = await handler(request)
        code = resp.status
        return resp
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        metrics.observe_http(request.method, _route(request), code, elapsed())


def install(app: web.Application) -> None:
    state = app[STATE]

    async def checks() -> dict[str, tuple[bool, str]]:
        etcd = await health.etcd_check(app[KV])
        own = getattr(app[CONFIG], "control_url", "")
        if state.is_leader:
            leader = (True, "leader")
        elif state.leader_url and state.leader_url == own:  # lock held, leader start not done yet
            leader = (False, "taking over as leader")
        elif state.leader_url:
            leader = (True, f"follower of {state.leader_url}")
        else:
            leader = (False, "no leader known yet")
        return {"etcd": etcd, "leader": leader}

    def collect():
        return [
            metrics.Family("gauge", "contiv_netmaster_leader", "1 while this netmaster is the leader").add(
                1 if state.is_leader else 0
            ),
            metrics.Family(
                "gauge",
                "contiv_netmaster_leader_known",
                "1 while this netmaster knows a leader (itself or another)",
            ).add(1 if (state.is_leader or state.leader_url) else 0),
        ]

    health.add_routes(app, checks)
    metrics.add_route(app)
    unregister = metrics.register(collect)

    async def _cleanup(_app: web.Application) -> None:
        unregister()

    app.on_cleanup.append(_cleanup)


__all__ = ["install", "metrics_middleware"]
