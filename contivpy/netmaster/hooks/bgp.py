"""Bgp hooks: the config is mirrored to ``/contiv.io/state/bgp/<hostname>`` as
``{"hostname","router-ip","as","neighbor-as","neighbor"}`` (watched by the host's netplugin, which
runs the BGP speaker in routing mode); delete removes it. Oper (routes, neighbor status) comes live
from the host's netplugin ``:9090/inspect/bgp``; when it cannot be reached the oper part is empty
(the original failed the whole inspect).

Create/update refuses (state untouched): an AS or neighbor AS that is not a number 1..4294967295
("Invalid AS number ..."), and a host no netplugin has registered as (``unknown host <name>``): such a
config would never be acted on. The router-ip and neighbor formats are checked by the model
(``routerip string invalid format``)."""

from __future__ import annotations

import json

from contivpy.common.errors import ValidationError
from contivpy.common.kv.base import Delete, Put
from contivpy.common.registry import ServiceInfo
from contivpy.model import keys
from contivpy.model.oper import BgpOper
from contivpy.netmaster.txn import Plan, TxnContext


def _state(obj: dict) -> Put:
    st = {
        "hostname": obj.get("hostname", ""),
        "router-ip": obj.get("routerip", ""),
        "as": obj.get("as", ""),
        "neighbor-as": obj.get("neighbor-as", ""),
        "neighbor": obj.get("neighbor", ""),
    }
    return Put(keys.BGP + obj["hostname"], json.dumps(st, separators=(",", ":")))


def _check_as(what: str, v) -> None:
    s = str(v or "")
    if not s.isdigit() or not 0 < int(s) < 2**32:
        raise ValidationError(f"Invalid AS number {what}: {s!r} (want 1..4294967295)")


async def _known_hosts(ctx: TxnContext) -> set[str]:
    kvs, _ = await ctx.kv.get_prefix(keys.service_prefix(keys.SVC_NETPLUGIN))
    out = set()
    for item in kvs:
        try:
            out.add(ServiceInfo.from_json(item.value).hostname)
        except ValidationError:
            continue
    return out


async def on_create(ctx: TxnContext, obj: dict) -> Plan:
    if not obj.get("hostname"):
        raise ValidationError("Invalid host name")
    _check_as("as", obj.get("as"))
    _check_as("neighbor-as", obj.get("neighbor-as"))
    if obj["hostname"] not in await _known_hosts(ctx):
        raise ValidationError(
            f"unknown host {obj['hostname']}: no netplugin is registered with this host name"
        )
    return Plan(ops=[_state(obj)])


async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan:
    return await on_create(ctx, new)


async def on_delete(ctx: TxnContext, obj: dict) -> Plan:
    return Plan(ops=[Delete(keys.BGP + obj["hostname"])])


async def oper(ctx: TxnContext, obj: dict) -> dict:
    kvs, _ = await ctx.kv.get_prefix(keys.service_prefix(keys.SVC_NETPLUGIN))
    host = ""
    for item in kvs:
        try:
            svc = ServiceInfo.from_json(item.value)
        except ValidationError:
            continue
        if svc.hostname == obj.get("hostname"):
            host = svc.host_addr
    if not host:
        return {}
    try:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s:
            async with s.get(f"http://{host}:9090/inspect/bgp") as r:
                if r.status != 200:
                    return {}
                data = await r.json(content_type=None)
    except Exception:
        return {}
    if not isinstance(data, dict):
        return {}
    peers = data.get("Peers")
    peer = peers[0] if isinstance(peers, list) and peers and isinstance(peers[0], dict) else {}
    st = peer.get("State") if isinstance(peer.get("State"), dict) else {}
    dsts = data.get("Dsts")
    routes = [str(r) for r in dsts] if isinstance(dsts, list) else []
    return BgpOper(
        adminStatus=str(st.get("AdminState", "")),
        neighborStatus=str(st.get("SessionState", "")),
        numRoutes=len(routes),
        routes=routes,
    ).to_dict()
