"""``DELETE /debug/epcleanup/tenant/{tenant}/{category}/{id}`` (docs/original.md §2.4, PR #958).

Removes stale endpoints a dead or confused netplugin left behind:

- ``category`` ``net``: every endpoint of network ``{id}`` of the tenant; ``group``: every
  endpoint of group ``{id}`` (its ``endpointGroupKey`` is ``<id>:<tenant>``); ``ep``: the tenant's
  endpoint whose state id, endpoint id or container id is ``{id}``. Anything else answers 500
  ``invalid category <c>`` and changes nothing.
- Each endpoint is deleted exactly like ``/plugin/deleteEndpoint`` (``Allocator.delete_endpoint``:
  one CAS txn per endpoint that deletes its state, releases its addresses in the network/group
  pools and decrements the counters -- bounded whatever the number of endpoints).
- Then, best effort, the owning host's netplugin is asked to drop its datapath state:
  ``DELETE http://<ctrl ip>:<port>/debug/reclaimEndpoint/<ep state id>`` where the ctrl ip is
  the ``HostAddr`` of the ``netplugin`` service registered with ``Hostname`` = the endpoint's
  ``homingHost`` and the port is 9090 (``CONTIVPY_NETPLUGIN_DEBUG_PORT`` overrides it, for test
  beds running several agents on one address). Unreachable hosts are logged, not errors.

Answer: ``{"endpoints": [<ep state id>...], "reclaimed": [<ep state id>...]}`` (sorted).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from contivpy.common.errors import ValidationError
from contivpy.common.registry import ServiceInfo
from contivpy.model import keys
from contivpy.netmaster.api.keys import CRUD, KV
from contivpy.netmaster.api.plugin_routes import ALLOCATOR, allocator_of

if TYPE_CHECKING:
    from contivpy.model.state import EndpointState
    from contivpy.netmaster.endpoints import Allocator

log = logging.getLogger("netmaster.epcleanup")

RECLAIM_TIMEOUT = 3.0
CATEGORIES = ("net", "group", "ep")


def debug_port() -> int:
    try:
        return int(os.environ.get("CONTIVPY_NETPLUGIN_DEBUG_PORT", "9090"))
    except ValueError:
        return 9090


def matches(ep: EndpointState, tenant: str, category: str, ident: str) -> bool:
    if category == "net":
        return ep.netID == keys.network_id(ident, tenant)
    if category == "group":
        return ep.endpointGroupKey == keys.epg_id(ident, tenant)
    if not ep.netID.endswith("." + tenant):
        return False
    return ident in (ep.id, ep.endpointID, ep.containerId) or ep.id == f"{ep.netID}-{ident}"


def _delete_request(ep: EndpointState) -> dict:
    net, _, tenant = ep.netID.rpartition(".")
    prefix = ep.netID + "-"
    epid = ep.id[len(prefix) :] if ep.id.startswith(prefix) else ""
    return {"TenantName": tenant, "NetworkName": net, "EndpointID": epid, "Host": ep.homingHost}


async def _host_addrs(kv) -> dict[str, str]:
    items, _ = await kv.get_prefix(keys.service_prefix(keys.SVC_NETPLUGIN))
    out: dict[str, str] = {}
    for item in items:
        try:
            info = ServiceInfo.from_json(item.value)
        except ValueError:
            continue
        if info.hostname and info.host_addr:
            out.setdefault(info.hostname, info.host_addr)
    return out


async def _reclaim(session: aiohttp.ClientSession, addr: str, ep_id: str) -> bool:
    url = f"http://{addr}:{debug_port()}/debug/reclaimEndpoint/{ep_id}"
    try:
        async with session.delete(url) as resp:
            if resp.status == 200:
                return True
            log.warning("reclaim %s on %s: HTTP %d", ep_id, addr, resp.status)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.warning("reclaim %s on %s failed: %s", ep_id, addr, exc)
    return False


async def cleanup(kv, allocator: Allocator, tenant: str, category: str, ident: str) -> dict:
    from contivpy.model.state import EndpointState  # on first use (netmaster's start-up)
    from contivpy.netmaster.endpoints import read_oper_endpoint

    if category not in CATEGORIES:
        raise ValidationError(f"invalid category {category}")
    items, _ = await kv.get_prefix(keys.EPS)
    found = [
        ep for ep in (EndpointState.from_json(i.value) for i in items) if matches(ep, tenant, category, ident)
    ]
    deleted: list[EndpointState] = []
    for ep in found:
        gone = await allocator.delete_endpoint(_delete_request(ep))
        if gone.id:
            deleted.append(ep)
    hosts = await _host_addrs(kv) if deleted else {}
    targets: list[tuple[str, str]] = []
    for ep in deleted:
        host = ep.homingHost
        if not host:
            oper = await read_oper_endpoint(kv, ep.id)
            host = oper.homingHost if oper else ""
        if host in hosts:
            targets.append((hosts[host], ep.id))
        else:
            log.warning("endpoint %s: no netplugin registered for host %r", ep.id, host)
    reclaimed: list[str] = []
    if targets:
        timeout = aiohttp.ClientTimeout(total=RECLAIM_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            results = await asyncio.gather(*(_reclaim(session, a, e) for a, e in targets))
        reclaimed = [e for (_, e), ok in zip(targets, results, strict=True) if ok]
    return {"endpoints": sorted(ep.id for ep in deleted), "reclaimed": sorted(reclaimed)}


async def handle(request: web.Request) -> web.Response:
    m = request.match_info
    kv = request.app[KV]
    allocator = request.app.get(ALLOCATOR)  # the same instance as /plugin/* (its per-network locks)
    if allocator is None:
        allocator = allocator_of(request.app[CRUD])
    out = await cleanup(kv, allocator, m["tenant"], m["category"], m["id"])
    return web.json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_delete("/debug/epcleanup/tenant/{tenant}/{category}/{id}", handle)


__all__ = ["add_routes", "cleanup", "matches", "debug_port"]
