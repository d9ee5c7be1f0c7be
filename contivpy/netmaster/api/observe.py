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
  leader, this one or another, holds the lock); on the leader, before each scrape, one read of
  etcd (``allocation_families``, bounded by ``REFRESH_TIMEOUT``) gives
  ``contiv_netmaster_network_addresses{tenant,network,state=used|free}``,
  ``contiv_netmaster_tags{type=vlan|vxlan,state}``, ``contiv_netmaster_followup_pending`` and
  ``contiv_netmaster_address_allocations_unclaimed`` (followers leave them out, so a sum over the
  netmasters counts each once). These paths are served by the process asked: the
  follower proxy and the auth middleware let them through (common/health.py ``LOCAL_PATHS``).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from contivpy.common import health, metrics
from contivpy.common.kv.base import KVStore
from contivpy.model import keys
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


REFRESH_TIMEOUT = 2.0  # seconds: a scrape while etcd is away still answers (without these gauges)


async def allocation_families(kv: KVStore) -> list[metrics.Family]:
    """State gauges read from etcd at scrape time: addresses per network, tags, follow-up backlog."""
    from contivpy.model.state import NetworkState
    from contivpy.netmaster import followup, ipam
    from contivpy.netmaster.tags import VlanResource, VxlanResource

    nets, _ = await kv.get_prefix(keys.NETS)
    addrs = metrics.Family(
        "gauge",
        "contiv_netmaster_network_addresses",
        "IPv4 host addresses of a network, used (endpoints, allocations, gateway, group pools) or free",
        ("tenant", "network", "state"),
    )
    for item in nets:
        st = NetworkState.parse(item.value)
        if st is None or not st.subnetIP:
            continue
        try:
            used, free = ipam.address_counts(st)
        except (ValueError, KeyError):  # a record this version cannot read: skipped, not a failed scrape
            continue
        addrs.add(used, st.tenant, st.networkName, "used").add(free, st.tenant, st.networkName, "free")
    tags = metrics.Family(
        "gauge",
        "contiv_netmaster_tags",
        "Packet tags of the global pools (vlan: VLAN ids, vxlan: VNIs), used or free",
        ("type", "state"),
    )
    vl_st, vl_op, vx_st, vx_op = await kv.get_many(
        [keys.STATE_AUTO_VLAN, keys.OPER_AUTO_VLAN, keys.STATE_AUTO_VXLAN, keys.OPER_AUTO_VXLAN]
    )
    if vl_st is not None and vl_op is not None:
        vl = VlanResource.load(vl_st.value, vl_op.value)
        tags.add(len(vl.in_use()), "vlan", "used").add(
            (vl.cfg.bits & vl.free.bits).bit_count(), "vlan", "free"
        )
    if vx_st is not None and vx_op is not None:
        vx = VxlanResource.load(vx_st.value, vx_op.value)
        tags.add(len(vx.in_use()), "vxlan", "used").add(
            (vx.cfg.bits & vx.free.bits).bit_count(), "vxlan", "free"
        )
    pending, _ = await kv.get_prefix(followup.PENDING_PREFIX)
    backlog = metrics.Family(
        "gauge",
        "contiv_netmaster_followup_pending",
        "Follow-up jobs committed (intent key in etcd) and not finished yet",
    ).add(len(pending))
    unclaimed, _ = await kv.get_prefix(keys.ADDR_ALLOC)
    records = metrics.Family(
        "gauge",
        "contiv_netmaster_address_allocations_unclaimed",
        "Addresses handed out by allocAddress that no endpoint has claimed yet (allocation records)",
    ).add(len(unclaimed))
    return [addrs, tags, backlog, records]


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

    stored: list[metrics.Family] = []  # the allocation gauges of the last refresh (leader only)

    async def refresh() -> None:
        stored[:] = []
        if state.is_leader:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                stored[:] = await allocation_families(app[KV])

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
            *stored,
        ]

    health.add_routes(app, checks)
    metrics.add_route(app, before=refresh)
    unregister = metrics.register(collect)

    async def _cleanup(_app: web.Application) -> None:
        unregister()

    app.on_cleanup.append(_cleanup)


__all__ = ["install", "metrics_middleware"]
