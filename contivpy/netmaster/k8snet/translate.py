"""Kubernetes objects -> the contiv objects one namespace should have (pure; no I/O).

The mapping (docs/kubernetes.md; inexact points in docs/decisions.md):

- Tenant ``default`` holds everything. A namespace ``ns`` -> endpoint group ``k8s-<ns>`` in network
  ``default-net`` (the group its unlabelled pods belong to).
- A pod's group is its ``io.contiv.net-group`` label, else ``k8s-<ns>``. Pods labelled with
  another ``io.contiv.tenant`` are not in this tenant: never targets (noted), still peers by IP.
- A NetworkPolicy ``ns/name`` -> contiv policy ``k8s.<ns>.<name>`` (names longer than 64 characters
  end in a hash instead: ``k8s.<ns>.h<sha1[:12]>``), attached to the groups of the pods its
  ``podSelector`` selects (plus the group a ``matchLabels`` ``io.contiv.net-group`` names, and
  ``k8s-<ns>`` for the empty selector, so pods started later are covered from the start). A group
  is the unit contiv enforces on, so the policy applies to every pod of such a group.
- Isolation: a policy type (Ingress / Egress, defaulted as the API does) adds two deny rules at
  priority 1 in that direction, ``tcp`` (the data plane matches only connection set-up, SYN
  without ACK, so replies to the pod's own connections pass) and ``udp``.
- Each ingress/egress rule -> allow rules at priority 2, one per (peer address, port):
  peers are IPv4 addresses: pod IPs for ``podSelector``/``namespaceSelector`` peers (pods with an
  IP, not hostNetwork, not finished), CIDRs for ``ipBlock`` (``except`` applied by splitting the
  block into the CIDRs that remain: exact). No peers = any address; no ports = any protocol.
  ``endPort`` ranges are expanded up to ``MAX_RANGE`` ports.
- Rule ids are ``i-``/``e-`` + a hash of the rule's content, so the same input gives the same
  ids (idempotent restarts) and a changed rule is a new id (rules cannot be updated in contiv).

Parts that cannot be expressed (named ports, SCTP, IPv6 blocks, large port ranges) are left out
and reported in ``problems``; the rest of the policy still applies (fail closed: the isolation
stays, the allow that cannot be expressed is not granted). A policy whose targets cannot be
computed (bad selector) raises ``Untranslatable`` and is skipped as a whole.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

TENANT = "default"
NETWORK = "default-net"
GROUP_LABEL = "io.contiv.net-group"
TENANT_LABEL = "io.contiv.tenant"
GROUP_PREFIX = "k8s-"
POLICY_PREFIX = "k8s."
MAX_NAME = 64
MAX_RANGE = 16
DENY_PRIORITY, ALLOW_PRIORITY = 1, 2


class Untranslatable(ValueError):
    """The object cannot be turned into contiv objects at all."""


@dataclass
class DesiredPolicy:
    rules: dict[str, dict] = field(default_factory=dict)  # ruleId -> rule fields (no tenant/policy)
    groups: set[str] = field(default_factory=set)


@dataclass
class Desired:
    group: str | None = None  # the namespace's group, None when the namespace is gone
    policies: dict[str, DesiredPolicy] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def meta(obj: dict) -> dict:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def labels_of(obj: dict) -> dict[str, str]:
    lab = meta(obj).get("labels")
    return {str(k): str(v) for k, v in lab.items()} if isinstance(lab, dict) else {}


def ns_group(ns: str) -> str:
    return GROUP_PREFIX + ns


def policy_name(ns: str, name: str) -> str:
    full = f"{POLICY_PREFIX}{ns}.{name}"
    if len(full) <= MAX_NAME:
        return full
    short = f"{POLICY_PREFIX}{ns}.h{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    if len(short) > MAX_NAME:
        raise Untranslatable(f"namespace name {ns!r} is too long for a contiv policy name")
    return short


def policy_prefix(ns: str) -> str:
    return f"{POLICY_PREFIX}{ns}."


def ns_of_policy(pname: str) -> str | None:
    if not pname.startswith(POLICY_PREFIX):
        return None
    ns, sep, _ = pname[len(POLICY_PREFIX) :].partition(".")
    return ns if sep else None


# --- label selectors ---------------------------------------------------------------------------


def selector_matches(sel: Any, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; ``{}`` matches everything. Bad selectors raise."""
    if sel is None:
        sel = {}
    if not isinstance(sel, dict):
        raise Untranslatable("a label selector must be an object")
    ml = sel.get("matchLabels") or {}
    if not isinstance(ml, dict):
        raise Untranslatable("matchLabels must be an object")
    for k, v in ml.items():
        if labels.get(str(k)) != str(v):
            return False
    exprs = sel.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise Untranslatable("matchExpressions must be a list")
    for e in exprs:
        if not isinstance(e, dict) or not isinstance(e.get("key"), str):
            raise Untranslatable("a matchExpression needs a key")
        key, op, vals = e["key"], e.get("operator"), e.get("values") or []
        if not isinstance(vals, list):
            raise Untranslatable("matchExpression values must be a list")
        vals = [str(v) for v in vals]
        if op == "In":
            ok = key in labels and labels[key] in vals
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in vals
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise Untranslatable(f"unknown label selector operator {op!r}")
        if not ok:
            return False
    return True


# --- the cache the translator reads ------------------------------------------------------------


class Cache:
    """Latest objects by kind and ``(namespace, name)`` (namespaces: ``("", name)``)."""

    def __init__(self) -> None:
        self.objs: dict[str, dict[tuple[str, str], dict]] = {}

    @staticmethod
    def key(obj: dict) -> tuple[str, str]:
        m = meta(obj)
        name = m.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("object without metadata.name")
        ns = m.get("namespace") or ""
        return (str(ns), name)

    def kind(self, kind: str) -> dict[tuple[str, str], dict]:
        return self.objs.setdefault(kind, {})

    def put(self, kind: str, obj: dict) -> tuple[str, str]:
        k = self.key(obj)
        self.kind(kind)[k] = obj
        return k

    def drop(self, kind: str, obj: dict) -> tuple[str, str]:
        k = self.key(obj)
        self.kind(kind).pop(k, None)
        return k

    def replace(self, kind: str, items: list[dict]) -> set[tuple[str, str]]:
        """Load a full list; returns the keys that were or are present (all may have changed)."""
        old = set(self.kind(kind))
        new: dict[tuple[str, str], dict] = {}
        for obj in items:
            try:
                new[self.key(obj)] = obj
            except ValueError:
                continue
        self.objs[kind] = new
        return old | set(new)

    def namespaces(self) -> dict[str, dict]:
        return {name: o for (_, name), o in self.kind("Namespace").items()}

    def pods(self, ns: str | None = None) -> list[dict]:
        return [o for (pns, _), o in sorted(self.kind("Pod").items()) if ns is None or pns == ns]

    def policies(self, ns: str) -> list[tuple[str, dict]]:
        return [(name, o) for (pns, name), o in sorted(self.kind("NetworkPolicy").items()) if pns == ns]

    def has_ns_selector(self, ns: str) -> bool:
        """Some policy of ``ns`` selects peers by namespace (other namespaces' pods matter)."""
        for _, np in self.policies(ns):
            spec = np.get("spec") if isinstance(np.get("spec"), dict) else {}
            for sect, peer_key in (("ingress", "from"), ("egress", "to")):
                for rule in spec.get(sect) or []:
                    for peer in (rule.get(peer_key) or []) if isinstance(rule, dict) else []:
                        if isinstance(peer, dict) and "namespaceSelector" in peer:
                            return True
        return False


def _live(pod: dict) -> bool:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    status = pod.get("status") if isinstance(pod.get("status"), dict) else {}
    return not spec.get("hostNetwork") and status.get("phase") not in ("Succeeded", "Failed")


def pod_group(pod: dict) -> str:
    return labels_of(pod).get(GROUP_LABEL) or ns_group(str(meta(pod).get("namespace") or ""))


def pod_ipv4(pod: dict) -> str | None:
    status = pod.get("status") if isinstance(pod.get("status"), dict) else {}
    ips = [status.get("podIP")] + [i.get("ip") for i in status.get("podIPs") or [] if isinstance(i, dict)]
    for ip in ips:
        if isinstance(ip, str) and ip:
            try:
                if ipaddress.ip_address(ip).version == 4:
                    return ip
            except ValueError:
                continue
    return None


# --- NetworkPolicy ---------------------------------------------------------------------------


def _addr(net: ipaddress.IPv4Network) -> str:
    if net.prefixlen == 32:
        return str(net.network_address)
    return "" if net.prefixlen == 0 else str(net)


def _ipblock(block: Any, problems: list[str], where: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("cidr"), str):
        problems.append(f"{where}: ipBlock without cidr left out")
        return []
    try:
        net = ipaddress.ip_network(block["cidr"], strict=False)
        excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
    except (ValueError, TypeError):
        problems.append(f"{where}: invalid ipBlock {block.get('cidr')!r} left out")
        return []
    if net.version != 4:
        problems.append(f"{where}: IPv6 ipBlock {net} left out (contiv rules are IPv4)")
        return []
    nets = [net]
    for ex in excepts:
        if ex.version != 4:
            continue
        out: list[ipaddress.IPv4Network] = []
        for n in nets:
            if ex.subnet_of(n):  # type: ignore[arg-type]
                out += list(n.address_exclude(ex))  # type: ignore[arg-type]
            elif n.subnet_of(ex):  # type: ignore[arg-type]
                continue
            else:
                out.append(n)
        nets = out
    return sorted({_addr(n) for n in nets})  # type: ignore[arg-type]


def _peer_pods(cache: Cache, ns: str, peer: dict) -> list[dict]:
    if "namespaceSelector" in peer:
        nss = {
            n
            for n, o in cache.namespaces().items()
            if selector_matches(peer["namespaceSelector"], labels_of(o))
        }
    else:
        nss = {ns}
    pod_sel = peer.get("podSelector")
    return [
        p
        for p in cache.pods()
        if meta(p).get("namespace") in nss and _live(p) and selector_matches(pod_sel, labels_of(p))
    ]


def _peers(cache: Cache, ns: str, peers: Any, problems: list[str], where: str) -> list[str] | None:
    """Addresses ("" = any) of a rule's peers; None = no peer list (any source/destination)."""
    if not peers:
        return None
    if not isinstance(peers, list):
        problems.append(f"{where}: peers must be a list; left out")
        return []
    out: set[str] = set()
    for peer in peers:
        if not isinstance(peer, dict):
            problems.append(f"{where}: a peer must be an object; left out")
            continue
        if "ipBlock" in peer:
            out.update(_ipblock(peer["ipBlock"], problems, where))
            continue
        try:
            pods = _peer_pods(cache, ns, peer)
        except Untranslatable as exc:
            problems.append(f"{where}: peer left out: {exc}")
            continue
        out.update(ip for ip in (pod_ipv4(p) for p in pods) if ip)
    return sorted(out)


def _ports(ports: Any, problems: list[str], where: str) -> list[tuple[str, int]]:
    if not ports:
        return [("", 0)]
    if not isinstance(ports, list):
        problems.append(f"{where}: ports must be a list; left out")
        return []
    out: list[tuple[str, int]] = []
    for p in ports:
        if not isinstance(p, dict):
            problems.append(f"{where}: a port must be an object; left out")
            continue
        proto = str(p.get("protocol") or "TCP").lower()
        if proto not in ("tcp", "udp"):
            problems.append(f"{where}: protocol {proto.upper()} left out (contiv rules: TCP, UDP)")
            continue
        port = p.get("port")
        if port is None:
            out.append((proto, 0))
            continue
        if isinstance(port, str) and not port.isdigit():
            problems.append(f"{where}: named port {port!r} left out (contiv rules need a number)")
            continue
        try:
            lo = int(port)
            hi = int(p.get("endPort") or lo)
        except (TypeError, ValueError):
            problems.append(f"{where}: invalid port {port!r} left out")
            continue
        if not (1 <= lo <= hi <= 65535):
            problems.append(f"{where}: invalid port range {lo}-{hi} left out")
            continue
        if hi - lo + 1 > MAX_RANGE:
            problems.append(f"{where}: port range {lo}-{hi} left out (more than {MAX_RANGE} ports)")
            continue
        out += [(proto, n) for n in range(lo, hi + 1)]
    return sorted(set(out))


def _rule(
    direction: str, action: str, priority: int, proto: str, port: int, addr: str, target: str = ""
) -> tuple[str, dict]:
    """A contiv rule; ``addr`` is the peer, ``target`` the selected pod ("" = the whole group)."""
    r: dict[str, Any] = {"direction": direction, "action": action, "priority": priority}
    if proto:
        r["protocol"] = proto
    if port:
        r["port"] = port
    peer_key, target_key = (
        ("fromIpAddress", "toIpAddress") if direction == "in" else ("toIpAddress", "fromIpAddress")
    )
    if addr:
        r[peer_key] = addr
    if target:
        r[target_key] = target
    digest = hashlib.sha1(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]
    return f"{'i' if direction == 'in' else 'e'}-{digest}", r


def scoped_policy_name(ns: str, name: str, group: str) -> str:
    """The contiv policy of NetworkPolicy ``ns/name`` for its selected pods in ``group``: the
    namespace's group gets ``k8s.<ns>.<name>``, another group ``k8s.<ns>.<name>.G.<group>``
    (NetworkPolicy names are lower case, so ``.G.`` cannot be part of one), hashed when too long."""
    if group == ns_group(ns):
        return policy_name(ns, name)
    full = f"{POLICY_PREFIX}{ns}.{name}.G.{group}"
    if len(full) <= MAX_NAME:
        return full
    short = f"{POLICY_PREFIX}{ns}.h{hashlib.sha1(f'{name}/{group}'.encode()).hexdigest()[:12]}"
    if len(short) > MAX_NAME:
        raise Untranslatable(f"namespace name {ns!r} is too long for a contiv policy name")
    return short


def translate_policy(
    cache: Cache, np: dict, problems: list[str], member: Any = None
) -> dict[str, DesiredPolicy]:
    """The contiv policies of one NetworkPolicy, by name (docs/kubernetes.md, "Mapping").

    Scope: contiv enforces a policy on a group, so the rules say which pods of the group they are
    for. The empty ``podSelector`` selects every pod of the namespace: the policy of group
    ``k8s-<ns>`` has group-wide rules (pods started later are covered at once). Any other selected
    pod is a *target*: the policy of its group gets its rules once per target address
    (``toIpAddress`` on ``in`` rules, ``fromIpAddress`` on ``out`` rules), so the other pods of the
    group are not isolated. ``member(ip, group)`` says whether a pod's address is a contiv endpoint
    of that group (contiv accepts a target address only then); None = assume so.
    """
    m = meta(np)
    ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
    where = f"NetworkPolicy {ns}/{name}"
    spec = np.get("spec")
    if not isinstance(spec, dict):
        raise Untranslatable("spec is not an object")
    pod_sel = spec.get("podSelector") or {}
    group_wide = (
        isinstance(pod_sel, dict) and not pod_sel.get("matchLabels") and not pod_sel.get("matchExpressions")
    )
    targets: dict[str, set[str]] = {}  # group -> target addresses ("" = the whole group)
    if group_wide:
        targets[ns_group(ns)] = {""}
    for pod in cache.pods(ns):
        if not _live(pod) or not selector_matches(pod_sel, labels_of(pod)):
            continue
        tenant = labels_of(pod).get(TENANT_LABEL) or TENANT
        if tenant != TENANT:
            problems.append(f"{where}: pod {meta(pod).get('name')} is in tenant {tenant}: not a target")
            continue
        g = pod_group(pod)
        if group_wide and g == ns_group(ns):
            continue
        ip = pod_ipv4(pod)
        if not ip:
            continue  # no address yet: targeted once it has one
        if member is not None and not member(ip, g):
            problems.append(f"{where}: pod {meta(pod).get('name')} ({ip}) is not an endpoint of {g} yet")
            continue
        targets.setdefault(g, set()).add(ip)
    types = spec.get("policyTypes")
    if types is None:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    if not isinstance(types, list) or any(t not in ("Ingress", "Egress") for t in types):
        raise Untranslatable(f"invalid policyTypes {types!r}")
    # (direction, action, priority, proto, port, peer) once; multiplied by the targets below
    shape: list[tuple[str, str, int, str, int, str]] = []
    for ptype, direction, sect, peer_key in (
        ("Ingress", "in", "ingress", "from"),
        ("Egress", "out", "egress", "to"),
    ):
        if ptype not in types:
            continue
        for proto in ("tcp", "udp", "icmp"):
            shape.append((direction, "deny", DENY_PRIORITY, proto, 0, ""))
        rules = spec.get(sect) or []
        if not isinstance(rules, list):
            problems.append(f"{where}: {sect} must be a list; left out")
            continue
        for i, rule in enumerate(rules):
            w = f"{where} {sect}[{i}]"
            if not isinstance(rule, dict):
                problems.append(f"{w}: not an object; left out")
                continue
            addrs = _peers(cache, ns, rule.get(peer_key), problems, w)
            ports = _ports(rule.get("ports"), problems, w)
            for addr in [""] if addrs is None else addrs:
                for proto, port in ports:
                    shape.append((direction, "allow", ALLOW_PRIORITY, proto, port, addr))
    out: dict[str, DesiredPolicy] = {}
    for g, addrs in sorted(targets.items()):
        dp = DesiredPolicy(groups={g})
        for target in sorted(addrs):
            for direction, action, prio, proto, port, addr in shape:
                rid, r = _rule(direction, action, prio, proto, port, addr, target)
                dp.rules[rid] = r
        out[scoped_policy_name(ns, name, g)] = dp
    return out


def translate_namespace(cache: Cache, ns: str, member: Any = None) -> Desired:
    """Everything namespace ``ns`` should have in contiv (nothing once it is deleted);
    ``member`` as in :func:`translate_policy`."""
    d = Desired()
    if ns not in cache.namespaces():
        return d
    d.group = ns_group(ns)
    if len(d.group) > MAX_NAME:
        d.problems.append(f"Namespace {ns}: name too long for a contiv group; skipped")
        return Desired(problems=d.problems)
    for name, np in cache.policies(ns):
        try:
            policy_name(ns, name)
            d.policies.update(translate_policy(cache, np, d.problems, member))
        except Untranslatable as exc:
            d.problems.append(f"NetworkPolicy {ns}/{name} skipped: {exc}")
    return d


__all__ = [
    "ALLOW_PRIORITY",
    "Cache",
    "DENY_PRIORITY",
    "Desired",
    "DesiredPolicy",
    "GROUP_PREFIX",
    "NETWORK",
    "POLICY_PREFIX",
    "TENANT",
    "Untranslatable",
    "ns_group",
    "ns_of_policy",
    "policy_name",
    "policy_prefix",
    "scoped_policy_name",
    "selector_matches",
    "translate_namespace",
    "translate_policy",
]
