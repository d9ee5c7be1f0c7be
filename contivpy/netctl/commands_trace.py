"""Action of ``netctl trace`` (contivpy addition, not in the original; docs/cli.md).

``netctl trace [--proto tcp|udp|icmp] [--port N] [--agent URL] [--json] SOURCE DESTINATION-IP``

1. checks the arguments (exit 1 + help, no request sent);
2. asks netmaster which endpoint SOURCE is (``GET /api/v1/inspect/endpoints/SOURCE/``: a container
   name, container id or endpoint id, as ``netctl endpoint inspect``) and on which host it lives;
3. asks that host's agent (``--agent``, default ``http://127.0.0.1:9090``, the agent's debug REST)
   to trace the packet: ``POST /debug/trace`` (netplugin/trace.py runs ``ofproto/trace`` on its own
   OVS and explains it); an agent of another host refuses, naming the endpoint's host;
4. prints the path table by table, the policy decision and the final action (``--json``: the
   agent's answer as indented JSON).

Only HTTP: netctl imports nothing of the agent or of OVS; ``json`` and ``ipaddress`` are imported
only where they are needed. Exit codes as the other commands: 1 usage,
2 no HTTP answer, 3 an HTTP error (the server's message is printed).
"""

from __future__ import annotations

from contivpy.netctl import client
from contivpy.netctl.api import EXIT_HELP, EXIT_INVALID, EXIT_REQUEST, Api
from contivpy.netctl.output import fail, out
from contivpy.netctl.tabwriter import format_table
from contivpy.netctl.tree import DEFAULT_AGENT


def _check_args(ctx) -> tuple[str, str, str, int]:
    import ipaddress

    if len(ctx.args) != 2:
        fail(EXIT_HELP, "Source endpoint and destination IP address required", ctx)
    src, dst = ctx.args
    try:
        if ipaddress.ip_address(dst).version != 4:
            raise ValueError
    except ValueError:
        fail(EXIT_HELP, f"Invalid destination IP address {dst!r} (want an IPv4 address)", ctx)
    proto = (ctx.string("proto") or "icmp").lower()
    port = ctx.int("port")
    if proto not in ("tcp", "udp", "icmp"):
        fail(EXIT_HELP, f"Invalid protocol {proto!r} (want tcp, udp or icmp)", ctx)
    if proto == "icmp" and port:
        fail(EXIT_HELP, "A port needs --proto tcp or udp", ctx)
    if proto != "icmp" and not 1 <= port <= 65535:
        fail(EXIT_HELP, f"--proto {proto} needs --port 1-65535", ctx)
    return src, dst, proto, port


def _agent_url(ctx) -> str:
    url = (ctx.string("agent") or DEFAULT_AGENT).rstrip("/")
    if not url.startswith(("http://", "https://")):
        fail(EXIT_HELP, f"Invalid agent URL {url!r}: write it as --agent http://HOST:9090", ctx)
    return url


def trace(ctx) -> None:
    import json

    src, dst, proto, port = _check_args(ctx)
    agent = _agent_url(ctx)
    oper = Api(ctx).inspect("Endpoint", "endpoints", src).get("Oper", {})
    network, epid = oper.get("network", ""), oper.get("endpointID", "")
    if not network or not epid:
        fail(EXIT_INVALID, f"endpoint {src} has no network or endpoint id in netmaster")
    body = {
        "endpoint": f"{network}-{epid}",
        "host": oper.get("homingHost", ""),
        "destination": dst,
        "protocol": proto,
        "port": port,
    }
    url = agent + "/debug/trace"
    try:
        status, _reason, data = client.request("POST", url, json.dumps(body).encode(), (), ctx.insecure)
    except client.TransportError as e:
        fail(EXIT_REQUEST, f"cannot reach the agent of host {body['host'] or '?'} at {agent}: {e}")
    text = data.decode("utf-8", "replace")
    if status != 200:
        fail(EXIT_INVALID, f"trace failed on {agent}: {text.strip() or status}")
    try:
        res = json.loads(text)
    except ValueError:
        fail(EXIT_INVALID, f"trace failed on {agent}: the answer is not JSON")
    if ctx.bool("json"):
        return out(json.dumps(res, indent=2) + "\n")
    out(render(res))


def _describe_final(f: dict) -> str:
    kind = f.get("kind", "")
    if kind == "tunnel":
        return f"tunnel to VTEP {f.get('vtep', '')} (port {f.get('port', '')}, VNI {f.get('vni', 0)})"
    if kind == "output":
        note = f", {f['note']}" if f.get("note") else ""
        return f"output to port {f.get('port', '')}{note}"
    if kind == "flood":
        return "flood to " + ", ".join(_describe_final(o) for o in f.get("outputs", []))
    if kind == "normal":
        detail = f" ({f['detail']})" if f.get("detail") else ""
        return f"OVS NORMAL switching{detail}"
    if kind == "controller":
        why = f": {f['why']}" if f.get("why") else ""
        return f"sent to the agent (controller) from table {f.get('table', '')}{why}"
    where = f" in table {f['table']}" if f.get("table") else ""
    return f"drop{where}"


def _describe_policy(p: dict) -> str:
    verdict = {"allow": "allowed", "deny": "denied"}.get(p.get("verdict", ""), p.get("verdict", ""))
    r = p.get("rule")
    if not r:
        return f"{verdict}: {p.get('reason', 'no rule')}" if verdict != "not reached" else "not reached"
    if "policy" in r:
        what = (
            f"rule {r['ruleId']} of policy {r['tenant']}/{r['policy']} "
            f"(group {r['group']}, {r['direction']}, priority {r.get('priority', '')}, action {r.get('action', '')})"
        )
    else:
        what = f"rule {r.get('id', '')} (action {r.get('action', '')})"
    return f"{verdict} by {what}"


def render(res: dict) -> str:
    s, d = res.get("source", {}), res.get("destination", {})
    proto, port = res.get("protocol", ""), res.get("port", 0)
    what = f"{proto} {s.get('ip', '')} -> {d.get('ip', '')}" + (f" port {port}" if port else "")
    lines = [
        f"Host:         {res.get('host', '')} ({res.get('bridge', '')})",
        f"Source:       {s.get('endpoint', '')} {s.get('ip', '')} {s.get('mac', '')} "
        f"port {s.get('port', '')} (ofport {s.get('ofport', '')})",
        f"Destination:  {d.get('ip', '')} {d.get('mac', '')} ({d.get('macFrom', '')})",
        f"Packet:       {what}",
        "",
    ]
    table = "Table\tName\tPriority\tOwner\tActions\n-----\t----\t--------\t-----\t-------\n"
    for st in res.get("steps", []):
        prio = "" if st.get("priority") is None else str(st["priority"])
        acts = "; ".join(st.get("actions", []))
        table += f"{st.get('table', '')}\t{st.get('tableName', '')}\t{prio}\t{st.get('owner', '') or '-'}\t{acts}\n"
    out_text = "\n".join(lines) + "\n" + format_table(table)
    out_text += "\n" + f"Policy:       {_describe_policy(res.get('policy', {}))}\n"
    out_text += f"Result:       {_describe_final(res.get('final', {}))}\n"
    return out_text
