"""Packet traces through contiv's pipeline: what ``ovs-appctl ofproto/trace`` says, in contiv's words.

Three pure steps (the caller runs ofproto/trace itself, through its OVS adapter):

1. :func:`packet_for` builds the flow description of the packet a local endpoint would send to a
   destination IP: ``in_port`` = the endpoint's OpenFlow port, its MAC/IP as source, and as
   destination MAC the one the agent's ARP answers would have given the container
   (:func:`dst_mac_for`: the destination endpoint's MAC on the subnet, the router MAC
   ``arp.GATEWAY_MAC`` off the subnet or in routing mode, a service VIP's MAC).  TCP packets carry
   SYN (a connection's first packet: policy rules may match ``syn,!ack``).
2. :func:`parse` turns ofproto/trace's text into :class:`Step` values, one per table visited on the
   traced bridge (nested bridges, e.g. ``br-phy`` after a tunnel output, are not ours and skipped),
   plus the final datapath actions.
3. :func:`explain` names every step by the table declarations of :mod:`.pipeline` (never a second
   list), maps each matching flow's cookie back to its owner (:func:`.cookies.owner_of` over the
   agent's current owners: ``rule:<id>``, ``lep:<ofport>``, ``base`` ...), reports the policy
   decision (the rule that allowed or denied, or the policy table's default) and the final action
   (output port, tunnel to which VTEP with which VNI, back out of the input port, OVS NORMAL
   switching on the vlan bridge, controller, drop).

Invariant: nothing here talks to OVS or mutates the agent; bad input raises ``ValidationError``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from contivpy.common.errors import ValidationError

from . import cookies
from .arp import GATEWAY_MAC
from .pipeline import ARP_RESPONDER, INPUT, POLICY, SVC_DNAT, table_by_id
from .types import PROTOCOLS, LocalEndpoint

__all__ = ["Step", "Trace", "packet_for", "dst_mac_for", "parse", "explain", "SRC_PORT"]

#: source port of traced TCP/UDP packets (an ephemeral port, as a container's first connection uses)
SRC_PORT = 49152

_STEP = re.compile(r"^(?P<indent>\s*)(?P<table>\d+)\. (?P<rest>.*)$")
_BRIDGE = re.compile(r'^\s*bridge\("(?P<name>[^"]+)"\)\s*$')
_PRIO = re.compile(r"(?:^|, )priority (?P<prio>\d+)(?:, cookie (?P<cookie>0x[0-9a-fA-F]+))?$")
_OUTPUT = re.compile(r"^output:(?P<port>.+)$")
_TUN = re.compile(r"^set_field:(?P<v>0x[0-9a-fA-F]+|\d+)->tun_id$")


@dataclass
class Step:
    """One table visited: the matching flow (its match text, priority, cookie) and its actions."""

    table_id: int
    match: str = ""
    priority: int | None = None
    cookie: int = 0
    actions: list[str] = field(default_factory=list)
    no_match: bool = False
    notes: list[str] = field(default_factory=list)  # OVS's "-> ..." remarks (NORMAL's decision, tunnels)


@dataclass
class Trace:
    flow: str = ""
    steps: list[Step] = field(default_factory=list)
    datapath_actions: str = ""


def dst_mac_for(agent, src: LocalEndpoint, dst_ip: str) -> tuple[str, str]:
    """(destination MAC, why) of a packet ``src`` sends to ``dst_ip``: what the agent's ARP answer
    (or OVS's arp_responder flows, which the agent installs) would have taught the container."""
    try:
        dst = ipaddress.IPv4Address(dst_ip)
    except ValueError:
        raise ValidationError(f"invalid destination IP address {dst_ip!r}") from None
    if dst_ip == src.ip:
        raise ValidationError(f"destination {dst_ip} is the source endpoint's own address")
    if agent.routing:
        return GATEWAY_MAC, "router MAC (routing mode)"
    local, remote = agent._endpoint(dst_ip, src.vrf)
    net = agent._networks.get(src.vlan)
    on_subnet = bool(net and net.subnet and dst in ipaddress.IPv4Network(net.subnet, strict=False))
    found = local or remote
    if found is not None and (on_subnet or not (net and net.subnet)):
        kind = "local" if local is not None else "remote"
        return found.mac, f"{kind} endpoint {dst_ip}"
    vmac = agent.svc.vip_mac(dst_ip, src.vrf)
    if vmac is not None:
        return vmac, f"service VIP {dst_ip}"
    if on_subnet:
        raise ValidationError(
            f"no endpoint has address {dst_ip} in tenant {src.vrf}: the container could not resolve its MAC"
        )
    if agent.datapath != "vxlan":
        raise ValidationError(
            f"{dst_ip} is outside the network's subnet: on a vlan network the next hop is an external "
            "router whose MAC the agent does not know"
        )
    return GATEWAY_MAC, "router MAC (destination outside the subnet)"


def packet_for(src: LocalEndpoint, dst_ip: str, dst_mac: str, proto: str = "icmp", port: int = 0) -> str:
    """The ofproto/trace flow description of ``src``'s packet (untagged, as the container sends it)."""
    proto = (proto or "icmp").lower()
    if proto not in ("tcp", "udp", "icmp"):
        raise ValidationError(f"invalid protocol {proto!r} (want tcp, udp or icmp)")
    if proto == "icmp" and port:
        raise ValidationError("a port needs protocol tcp or udp")
    if proto != "icmp" and not 1 <= port <= 65535:
        raise ValidationError(f"{proto} needs a destination port 1-65535 (--port)")
    assert PROTOCOLS[proto]
    parts = [
        proto,
        f"in_port={src.ofport}",
        f"dl_src={src.mac}",
        f"dl_dst={dst_mac}",
        f"nw_src={src.ip}",
        f"nw_dst={dst_ip}",
        "nw_ttl=64",
    ]
    if proto == "icmp":
        parts += ["icmp_type=8", "icmp_code=0"]
    else:
        # the protocol's own field names: ofproto/trace refuses tp_src/tp_dst after "udp"
        parts += [f"{proto}_src={SRC_PORT}", f"{proto}_dst={port}"]
        if proto == "tcp":
            parts.append("tcp_flags=syn")
    return ",".join(parts)


def parse(text: str, bridge: str) -> Trace:
    """The steps of ``ofproto/trace`` output that happen on ``bridge`` (in order) and the final
    datapath actions.  Lines of other (nested) bridges are skipped; conntrack recirculations on
    ``bridge`` come back as further steps."""
    tr = Trace()
    current = None
    step: Step | None = None
    step_indent = 0
    for line in text.splitlines():
        if line.startswith("Flow: ") and not tr.flow:
            tr.flow = line[6:].strip()
            continue
        if line.startswith("Datapath actions: "):
            tr.datapath_actions = line[len("Datapath actions: ") :].strip()
            continue
        m = _BRIDGE.match(line)
        if m:
            current, step = m.group("name"), None
            continue
        if current != bridge:
            continue
        m = _STEP.match(line)
        if m:
            step = _step(int(m.group("table")), m.group("rest").strip())
            step_indent = len(m.group("indent"))
            tr.steps.append(step)
            continue
        if step is None:
            continue
        stripped = line.strip()
        if not stripped or set(stripped) == {"-"}:
            continue
        indent = len(line) - len(stripped)
        if indent <= step_indent:
            step = None
        elif stripped.startswith("->"):
            step.notes.append(stripped[2:].strip())
        else:
            step.actions.append(stripped)
    return tr


def _step(table_id: int, rest: str) -> Step:
    if rest.rstrip(".") == "No match":
        return Step(table_id, no_match=True)
    m = _PRIO.search(rest)
    if not m:
        return Step(table_id, match=rest)
    match = rest[: m.start()].strip().rstrip(",")
    cookie = int(m.group("cookie"), 16) if m.group("cookie") else 0
    return Step(table_id, match=match, priority=int(m.group("prio")), cookie=cookie)


def _rule_view(rule_id: str, rule) -> dict:
    """A policy rule's id, its action and priority, and the parts of the id netmaster composes
    (``<tenant>:<group>:<tenant>:<policy>:<tenant>:<policy>:<ruleId>:<direction>``)."""
    out = {"id": rule_id}
    if rule is not None:
        out.update(action=rule.action, priority=rule.priority)
    parts = rule_id.split(":")
    if len(parts) == 8:
        out.update(tenant=parts[0], group=parts[1], policy=parts[3], ruleId=parts[6], direction=parts[7])
    return out


def explain(agent, tr: Trace, in_port: int, port_names: dict[int, str]) -> dict:
    """The trace in contiv's terms: steps with table names and owners, policy, final action."""
    owners = agent.cache.owners()
    ofport_of = {v: k for k, v in port_names.items()}
    vtep_of = {vt.ofport: ip for ip, vt in agent._vteps.items()}
    steps = []
    outputs: list[dict] = []
    tun_id = None
    to_controller = ""  # the table whose flow punts to the agent
    normal: dict | None = None
    for st in tr.steps:
        t = table_by_id(st.table_id)
        owner = cookies.owner_of(st.cookie, owners) if st.cookie else None
        if st.no_match:
            owner = None
        steps.append(
            {
                "table": t.id,
                "tableName": t.name,
                "match": st.match,
                "priority": st.priority,
                "cookie": f"0x{st.cookie:x}",
                "owner": owner or "",
                "actions": list(st.actions) if not st.no_match else ["no match: drop"],
                "notes": list(st.notes),
            }
        )
        for a in st.actions:
            m = _TUN.match(a)
            if m:
                tun_id = int(m.group("v"), 0)
            m = _OUTPUT.match(a)
            if m:
                outputs.append(_output(m.group("port").strip('"'), ofport_of, port_names, vtep_of, tun_id))
            elif a == "IN_PORT" or a.startswith("in_port"):
                outputs.append({"kind": "output", "port": port_names.get(in_port, str(in_port)), "ofport": in_port,
                                "note": "back out of the input port"})  # fmt: skip
            elif (a.startswith("CONTROLLER") or a.startswith("controller")) and not to_controller:
                to_controller = t.name
            elif a == "NORMAL" and normal is None:  # the vlan bridge's mac_dest miss: OVS L2 switching
                normal = {"kind": "normal", "detail": "; ".join(st.notes)}
    if outputs:
        final = outputs[0] if len(outputs) == 1 else {"kind": "flood", "outputs": outputs}
    elif normal is not None:
        final = normal
    elif to_controller:
        final = {"kind": "controller", "table": to_controller, "why": _PUNTS.get(to_controller, "")}
    else:
        last = steps[-1] if steps else None
        final = {
            "kind": "drop",
            "table": last["tableName"] if last else "",
            "owner": last["owner"] if last else "",
        }
    return {
        "steps": steps,
        "policy": _policy(agent, steps),
        "final": final,
        "datapathActions": tr.datapath_actions,
        "flow": tr.flow,
    }


#: why a table sends a packet to the agent (docs/ovs-pipeline.md)
_PUNTS = {
    INPUT.name: "DNS query: answered by the agent's name server",
    SVC_DNAT.name: "first packet to a service VIP: the agent picks a provider and installs its NAT flows",
    ARP_RESPONDER.name: "ARP request no flow answers: the agent decides",
}


def _output(port: str, ofport_of, port_names, vtep_of, tun_id) -> dict:
    if port.isdigit():
        ofport = int(port)
        name = port_names.get(ofport, port)
    else:
        name, ofport = port, ofport_of.get(port, 0)
    vtep = vtep_of.get(ofport)
    if vtep is not None:
        return {"kind": "tunnel", "port": name, "ofport": ofport, "vtep": vtep, "vni": tun_id or 0}
    return {"kind": "output", "port": name, "ofport": ofport}


def _policy(agent, steps: list[dict]) -> dict:
    st = next((s for s in steps if s["table"] == POLICY.id), None)
    if st is None:
        return {"verdict": "not reached", "rule": None}
    denied = any(a == "drop" or a.startswith("no match") for a in st["actions"])
    verdict = "deny" if denied else "allow"
    owner = st["owner"]
    if owner.startswith("rule:"):
        rid = owner[len("rule:") :]
        return {"verdict": verdict, "rule": _rule_view(rid, agent._rules.get(rid))}
    return {"verdict": verdict, "rule": None, "reason": "no policy rule matched, the policy table's default"}
