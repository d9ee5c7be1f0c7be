"""Kubernetes Services -> contiv service load balancers; pods -> provider candidates (pure; no I/O).

- A Service ``ns/name`` with a cluster IP (not headless) and a ``selector`` -> serviceLB
  ``k8s.<ns>.<name>`` in tenant ``default`` on the network of its selected pods (their
  ``io.contiv.network`` label; ``default-net`` when there are none yet or they disagree) with
  ``selectors`` = the Service's selector as ``k=v``, ``ports`` = ``<port>:<targetPort>:<TCP|UDP>``
  (a named targetPort is resolved through the Service's Endpoints, whose ports carry the name
  and the number), and ``ipAddress`` = the cluster IP when it lies in the network's subnet
  (contiv's VIP must come from the network's IPAM; otherwise contiv picks the VIP: noted).
- Providers are matched by contiv exactly as for Docker containers: the candidates of the
  tenant whose labels hold every selector. A pod is a candidate (its labels, its address) while it
  is Ready, has an IPv4 address and is not hostNetwork; that is what the Service's Endpoints list
  as ready addresses for a selector Service.
- NodePort and LoadBalancer Services: ``nodePorts`` = ``<nodePort>:<port>:<TCP|UDP>`` per port, which
  netplugin DNATs in the host's ``CONTIV-NODEPORT`` chain to the VIP (docs/kubernetes.md); the field is
  sent only when the model has it.
Not translated: headless Services and ExternalName (deliberate, an info line: there is nothing to
balance), Services without a selector (hand-made Endpoints), SCTP ports, unresolvable named ports
(warnings).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from contivpy.netmaster.k8snet import translate as T

NETWORK_LABEL = "io.contiv.network"


def service_name(ns: str, name: str) -> str:
    return f"{T.POLICY_PREFIX}{ns}.{name}"


def parse_service_name(svc: str) -> tuple[str, str] | None:
    if not svc.startswith(T.POLICY_PREFIX):
        return None
    ns, sep, name = svc[len(T.POLICY_PREFIX) :].partition(".")
    return (ns, name) if sep and name else None


def _named_ports(endpoints: dict | None) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for subset in (endpoints or {}).get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        for p in subset.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("port"), int):
                out[(str(p.get("name") or ""), str(p.get("protocol") or "TCP").upper())] = p["port"]
    return out


def service_network(cache: T.Cache, ns: str, sel: dict) -> tuple[str, list[str]]:
    """The contiv network of a Service: the one its selected pods use (their ``io.contiv.network``
    label, default ``default-net``). Pods on several networks, or none yet: ``default-net``."""
    nets = set()
    for p in cache.pods(ns):
        labels = T.labels_of(p)
        if all(labels.get(str(k)) == str(v) for k, v in sel.items()):
            nets.add(labels.get(NETWORK_LABEL) or T.NETWORK)
    if len(nets) == 1:
        return nets.pop(), []
    if len(nets) > 1:
        return T.NETWORK, [f"its pods are on several networks ({', '.join(sorted(nets))}); {T.NETWORK} used"]
    return T.NETWORK, []


def service_lb(
    svc: dict,
    endpoints: dict | None,
    subnet: str,
    problems: list[str],
    network: str = T.NETWORK,
    notes: list[str] | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """(serviceLB key, body) for ``svc`` on ``network`` (whose subnet is ``subnet``), or None when
    it is not translated: warnings in ``problems``, deliberate skips (ExternalName, headless) in
    ``notes``."""
    notes = notes if notes is not None else []
    m = T.meta(svc)
    ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
    where = f"Service {ns}/{name}"
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        problems.append(f"{where} skipped: spec is not an object")
        return None
    if spec.get("type") == "ExternalName":
        notes.append(
            f"{where}: ExternalName ({spec.get('externalName', '')}) is DNS only; nothing to balance"
        )
        return None
    cip = spec.get("clusterIP") or ""
    if cip in ("", "None"):
        notes.append(f"{where}: headless (clusterIP None); no load balancer, pods are reached directly")
        return None
    sel = spec.get("selector")
    if not isinstance(sel, dict) or not sel:
        problems.append(f"{where}: no selector (hand-made Endpoints are not translated)")
        return None
    named = _named_ports(endpoints)
    ports: list[str] = []
    node_ports: list[str] = []
    with_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    for p in spec.get("ports") or []:
        if not isinstance(p, dict):
            continue
        proto = str(p.get("protocol") or "TCP").upper()
        if proto not in ("TCP", "UDP"):
            problems.append(f"{where}: {proto} port left out")
            continue
        port, target = p.get("port"), p.get("targetPort", p.get("port"))
        if isinstance(target, str) and not target.isdigit():
            resolved = named.get((str(p.get("name") or ""), proto))
            if resolved is None:
                problems.append(f"{where}: named targetPort {target!r} not resolved yet; port left out")
                continue
            target = resolved
        try:
            ports.append(f"{int(port)}:{int(target)}:{proto}")
        except (TypeError, ValueError):
            problems.append(f"{where}: invalid port {port!r} left out")
            continue
        node = p.get("nodePort")
        if with_node_ports and node is not None:
            if isinstance(node, int) and 0 < node < 65536:
                node_ports.append(f"{node}:{int(port)}:{proto}")
            else:
                problems.append(f"{where}: invalid nodePort {node!r} left out")
    if not ports:
        problems.append(f"{where}: no port contiv can balance; skipped")
        return None
    vip = ""
    try:
        if subnet and ipaddress.ip_address(cip) in ipaddress.ip_network(subnet, strict=False):
            vip = cip
        else:
            problems.append(
                f"{where}: cluster IP {cip} is outside {network} ({subnet}); contiv picks the VIP"
            )
    except ValueError:
        problems.append(f"{where}: invalid cluster IP {cip!r}; contiv picks the VIP")
    sname = service_name(ns, name)
    body: dict[str, Any] = {
        "tenantName": T.TENANT,
        "serviceName": sname,
        "networkName": network,
        "ports": sorted(ports),
        "selectors": sorted(f"{k}={v}" for k, v in sel.items()),
    }
    if vip:
        body["ipAddress"] = vip
    if node_ports:
        body["nodePorts"] = sorted(node_ports)
    return f"{T.TENANT}:{sname}", body


def _ready(pod: dict) -> bool:
    status = pod.get("status") if isinstance(pod.get("status"), dict) else {}
    for c in status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def provider(pod: dict) -> dict[str, Any] | None:
    """The /plugin/updateEndpoint ``start`` request that makes ``pod`` a provider candidate, or
    None when it should not be one (not ready, no IPv4 address, hostNetwork, no labels)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    ip = T.pod_ipv4(pod)
    labels = T.labels_of(pod)
    if spec.get("hostNetwork") or not ip or not labels or not _ready(pod):
        return None
    return {
        "Event": "start",
        "Tenant": labels.get(T.TENANT_LABEL) or T.TENANT,
        "Network": labels.get(NETWORK_LABEL) or T.NETWORK,
        "IPAddress": ip,
        "EPCommonName": str(T.meta(pod).get("name") or ""),
        "Labels": labels,
    }


__all__ = ["parse_service_name", "provider", "service_lb", "service_name", "service_network"]
