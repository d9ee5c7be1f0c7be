"""The agent's side of ``netctl trace``: trace one endpoint's packet through this host's OVS.

``run(agent, request)`` (POST ``/debug/trace`` on the debug REST, netplugin/debug_api.py):

1. finds the *local* source endpoint (by its endpoint state id ``<network>.<tenant>-<endpointID>``,
   or a unique endpoint id suffix) among the endpoints the datapath programs, on either bridge; an
   endpoint of another host is refused with a message naming the host to ask (``host`` in the
   request is the endpoint's homing host as netmaster knows it);
2. builds the packet with ofnet's trace helpers (ofnet/trace.py: destination MAC as the agent's
   ARP answers give it, TCP with SYN), runs ``ofproto/trace`` on the endpoint's bridge through the
   ovs-appctl adapter (netplugin/ovsappctl.py, the agent's own vswitchd);
3. explains the result in contiv's words (table names, flow owners from cookies, policy rule,
   final action) with the bridge's port names from OVSDB.

Read-only: nothing is installed or sent (ofproto/trace only simulates). Errors are ``ContivError``
with a plain message (the debug REST answers them as 500 text, never a traceback).
"""

from __future__ import annotations

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.common.jsonwire import Struct
from contivpy.netplugin import ovsappctl
from contivpy.ofnet import trace as oftrace

REQUEST = Struct(
    "debug.TraceRequest",
    {"endpoint": "string", "host": "string", "destination": "string", "protocol": "string", "port": "int"},
)


def _find_local(dp, key: str):
    """(bridge, ep state id, LocalEndpoint) of the local endpoint named by ``key``; None if absent."""
    hits = []
    for br, fp in dp.flows.items():
        for eid, lep in fp.local_endpoints().items():
            if eid == key:
                return br, eid, lep
            if eid.endswith("-" + key) or lep.endpoint_id == key:
                hits.append((br, eid, lep))
    if len(hits) > 1:
        raise ValidationError(f"endpoint {key!r} is ambiguous on this host: give its full id")
    return hits[0] if hits else None


async def run(agent, body: dict) -> dict:
    req = REQUEST.check(body)
    key = req.get("endpoint", "").strip()
    dst_ip = req.get("destination", "").strip()
    proto = (req.get("protocol") or "icmp").lower()
    port = int(req.get("port") or 0)
    if not key:
        raise ValidationError("source endpoint required")
    if not dst_ip:
        raise ValidationError("destination IP address required")
    dp, cfg = agent.dp, agent.cfg
    found = _find_local(dp, key)
    if found is None:
        home = req.get("host", "")
        if home and home != cfg.host:
            raise NotFoundError(
                f"endpoint {key} is on host {home}, not on this host ({cfg.host}): "
                f"ask the agent of {home} (netctl trace --agent http://<{home}'s debug address>:9090)"
            )
        raise NotFoundError(f"endpoint {key} is not a local endpoint of host {cfg.host}")
    bridge, eid, src = found
    of_agent = dp.flows[bridge].agent
    dst_mac, why = oftrace.dst_mac_for(of_agent, src, dst_ip)
    packet = oftrace.packet_for(src, dst_ip, dst_mac, proto, port)
    target = ovsappctl.resolve_target(cfg.ovsdb, getattr(cfg, "ovs_ctl", ""))
    text = await ovsappctl.run(target, "ofproto/trace", bridge, packet)
    ports = await dp.ovs.list_ports(bridge)
    names = {p.ofport: name for name, p in ports.items() if p.ofport}
    result = oftrace.explain(of_agent, oftrace.parse(text, bridge), src.ofport, names)
    return {
        "host": cfg.host,
        "bridge": bridge,
        "source": {
            "endpoint": eid,
            "ip": src.ip,
            "mac": src.mac,
            "port": names.get(src.ofport, str(src.ofport)),
            "ofport": src.ofport,
            "tenant": src.vrf,
            "endpointGroupId": src.epg,
        },
        "destination": {"ip": dst_ip, "mac": dst_mac, "macFrom": why},
        "protocol": proto,
        "port": port,
        "packet": packet,
        **result,
        "ofprotoTrace": text,
    }
