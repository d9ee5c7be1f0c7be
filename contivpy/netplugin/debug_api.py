"""Debug/inspect REST API of the agent on :9090 (docs/original.md §5.4).

GET ``/inspect/driver`` -> ``{"vxlan": <agent state>, "vlan": <agent state>}`` where each state has the
original's keys (``LocalIp``, ``MyPort``, ``MyAddr``, ``IsConnected``, ``DpName``, ``VtepTable{ip: ofport}``,
``EndpointDb{id: endpoint}``, ``FwdMode``, ``ArpMode``, ...); DELETE ``/debug/reclaimEndpoint/{id}``.
contivpy additions (used by tests and benchmarks, same semantics as the Docker plugin's calls):
POST ``/debug/endpoints`` ``{"tenant","network","group","endpointID","ip"}`` -> EndpointInfo JSON,
GET/DELETE ``/debug/endpoints/{tenant}/{network}/{endpointID}``; GET ``/svcstats`` -> per service LB: VIP,
tenant, ports, providers (known ones) and the client -> provider choices of this host;
GET ``/inspect/reconcile`` -> ``{<reconciler>: {<key>: {"state": ok|pending|retrying|failed, "attempts",
"lastError", "nextRetryIn"}}}`` (common/reconcile.py); POST ``/debug/trace``
``{"endpoint","host","destination","protocol","port"}`` -> the packet's path through this host's OVS
(``netctl trace``; netplugin/trace.py, docs/rest-api.md).
Served by the guarded server (common/httpserve.py) on ``--debug-listen`` (127.0.0.1:9090 by default:
it can create and delete endpoints; docs/security.md). Bodies: whole, at most 1 MiB, decoded and
type-checked by common/jsonwire (``CREATE_EP``), Go wording.
Errors: HTTP 500 with a plain-text message (the original's convention), router refusals as gorilla
mux words them (``404 page not found``, ``405 method not allowed``); never a traceback, and
client errors are not logged as failures.
Probes and metrics: ``/healthz``, ``/readyz``, ``/metrics`` (netplugin/observe.py), answered from
start-up on; every other route answers 503 until the agent's first sync is done.
"""

from __future__ import annotations

import logging

from aiohttp import web

from contivpy.common import jsonwire
from contivpy.common.errors import ContivError, NotFoundError
from contivpy.common.health import LOCAL_PATHS
from contivpy.common.httpserve import read_body
from contivpy.common.jsonwire import Struct
from contivpy.netplugin import observe
from contivpy.netplugin import trace as eptrace
from contivpy.netplugin.datapath import RPC_PORTS, VLAN_BRIDGE, VXLAN_BRIDGE

log = logging.getLogger(__name__)


CREATE_EP = Struct(
    "debug.EndpointRequest",
    {"tenant": "string", "network": "string", "group": "string", "endpointID": "string", "ip": "string"},
)


def _text(status: int, msg: str) -> web.Response:
    return web.Response(status=status, text=msg + "\n", content_type="text/plain", charset="utf-8")


@web.middleware
async def _errors(request: web.Request, handler):
    """The one error mapping of the debug REST server."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _text(404, "404 page not found")
    except web.HTTPMethodNotAllowed:
        return _text(405, "405 method not allowed")
    except web.HTTPException:
        raise
    except ContivError as e:
        return _text(500, str(e))
    except Exception:
        log.exception("debug API %s %s failed", request.method, request.path)
        return _text(500, "internal error")


def make_app(agent) -> web.Application:
    @web.middleware
    async def _starting(request: web.Request, handler):
        if agent.ready.is_set() or request.path in LOCAL_PATHS:
            return await handler(request)
        return web.Response(status=503, text="netplugin is starting (first sync in progress)")

    app = web.Application(middlewares=[_starting, _errors])
    observe.install(app, agent)  # /healthz, /readyz, /metrics

    async def inspect_driver(_req):
        out = {}
        for key, br in (("vxlan", VXLAN_BRIDGE), ("vlan", VLAN_BRIDGE)):
            st = {
                "LocalIp": agent.cfg.vtep_ip,
                "MyPort": RPC_PORTS[br],
                "MyAddr": agent.cfg.ctrl_ip,
                "IsConnected": agent.dp.connected(br),
                "DpName": key,
                "FwdMode": agent.cfg.fwdmode,
                "ArpMode": agent.arp_mode,
                "VtepTable": {},
                "EndpointDb": {},
            }
            st.update(agent.dp.inspect(br))
            if br == VXLAN_BRIDGE:
                st["VtepTable"] = dict(agent.vteps.applied)
            out[key] = st
        return web.json_response(out)

    async def reclaim(req):
        await agent.endpoints.reclaim(req.match_info["id"])
        return web.json_response({})

    async def create_ep(req):
        b = CREATE_EP.check(jsonwire.loads(await read_body(req), empty="EOF"))
        info = await agent.endpoints.create_endpoint(
            b.get("tenant") or "default",
            b.get("network", ""),
            b.get("group", ""),
            b.get("endpointID", ""),
            b.get("ip") or None,
        )
        return web.json_response(info.as_dict())

    async def get_ep(req):
        m = req.match_info
        info = await agent.endpoints.get_endpoint(m["tenant"], m["network"], m["ep"])
        if info is None:
            raise NotFoundError("endpoint not found")
        return web.json_response(info.as_dict())

    async def delete_ep(req):
        m = req.match_info
        await agent.endpoints.delete_endpoint(m["tenant"], m["network"], req.query.get("group", ""), m["ep"])
        return web.json_response({})

    async def inspect_reconcile(_req):  # per reconciler, per key: state, attempts, lastError, nextRetryIn
        return web.json_response(agent.reconcile_status())

    async def svcstats(_req):  # service LB state (contivpy: client -> provider map, not flow counters)
        return web.json_response(agent.services.stats())

    async def trace(req):  # netctl trace: simulate one packet of a local endpoint (read-only)
        return web.json_response(await eptrace.run(agent, jsonwire.loads(await read_body(req), empty="EOF")))

    async def inspect_bgp(_req):  # the Bgp object's oper (netmaster hooks/bgp.py reads Peers/Dsts)
        return web.json_response(agent.bgp.inspect())

    app.router.add_get("/inspect/driver", inspect_driver)
    app.router.add_get("/inspect/bgp", inspect_bgp)
    app.router.add_get("/svcstats", svcstats)
    app.router.add_get("/inspect/reconcile", inspect_reconcile)
    app.router.add_delete("/debug/reclaimEndpoint/{id}", reclaim)
    app.router.add_post("/debug/endpoints", create_ep)
    app.router.add_get("/debug/endpoints/{tenant}/{network}/{ep}", get_ep)
    app.router.add_delete("/debug/endpoints/{tenant}/{network}/{ep}", delete_ep)
    app.router.add_post("/debug/trace", trace)
    return app
