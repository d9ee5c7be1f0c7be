"""Non-model netmaster endpoints (docs/original.md §2.4).

    GET /version        {"GitCommit","Version","BuildTime"}           (text/plain, no newline)
    GET /info           {"current-state","leader-ip","local-ip","netmaster-nodes","netplugin-nodes"}
    GET /services       [service-LB state, ...]   GET /service/{id}   one service-LB state
    GET /debug/ofnet    ofnet master dump (contivpy.netmaster.rpc)
    GET /debug/docknets Docker network reconciler (docker mode, leader): {"running", "synced",
                        "networks": {<docker name>: {"state": ok|pending|retrying, "attempts",
                        "lastError", "nextRetryIn"}}} (a contivpy addition)

Like the original these answer ``text/plain; charset=utf-8`` (Go's content sniffing of a body
written without a Content-Type) and carry no trailing newline.
"""

from __future__ import annotations

import json

from aiohttp import web

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.common.registry import ServiceInfo
from contivpy.model import keys
from contivpy.netmaster.api.keys import CONFIG, CRUD, KV, STATE
from contivpy.netmaster.config import version_info

RPC: web.AppKey[object] = web.AppKey("rpc", object)


def _plain(obj) -> web.Response:
    return web.Response(
        text=json.dumps(obj, separators=(",", ":")), content_type="text/plain", charset="utf-8"
    )


async def get_version(request: web.Request) -> web.Response:
    return _plain(version_info())


async def _service_ips(kv, name: str) -> list[str]:
    kvs, _ = await kv.get_prefix(keys.service_prefix(name))
    ips: list[str] = []
    for item in kvs:
        try:
            ip = ServiceInfo.from_json(item.value).host_addr
        except ValidationError:
            ip = item.key.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        if ip and ip not in ips:
            ips.append(ip)
    return ips


async def get_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    kv = request.app[KV]
    return _plain(
        {
            "current-state": "leader" if state.is_leader else "follower",
            "leader-ip": state.leader_url,
            "local-ip": state.local_ip or request.app[CONFIG].control_ip,
            "netmaster-nodes": await _service_ips(kv, keys.SVC_NETMASTER),
            "netplugin-nodes": await _service_ips(kv, keys.SVC_NETPLUGIN),
        }
    )


async def get_services(request: web.Request) -> web.Response:
    kvs, _ = await request.app[KV].get_prefix(keys.SERVICE_LB)
    return _plain([json.loads(k.value) for k in kvs])


async def get_service(request: web.Request) -> web.Response:
    item = await request.app[KV].get(keys.SERVICE_LB + request.match_info["id"])
    if item is None:
        raise NotFoundError("service not found")
    return _plain(json.loads(item.value))


async def get_ofnet(request: web.Request) -> web.Response:
    rpc = request.app.get(RPC)
    cfg = request.app[CONFIG]
    if rpc is None:
        dump = {
            "MyAddr": cfg.control_ip,
            "MyPort": cfg.rpc_port,
            "AgentDb": {},
            "EndpointDb": {},
            "PolicyDb": {},
            "AgentStats": None,
        }
    else:
        dump = rpc.dump()
    return _plain(dump)


async def get_docknets(request: web.Request) -> web.Response:
    rec = request.app[CRUD].extras.get("docknet")
    if rec is None:
        return _plain({"running": False, "synced": False, "networks": {}})
    return _plain({"running": True, **rec.status()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/version", get_version)
    app.router.add_get("/info", get_info)
    app.router.add_get("/services", get_services)
    app.router.add_get("/service/{id}", get_service)
    app.router.add_get("/debug/ofnet", get_ofnet)
    app.router.add_get("/debug/docknets", get_docknets)


__all__ = ["add_routes", "RPC"]
