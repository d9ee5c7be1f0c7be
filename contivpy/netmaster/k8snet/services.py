"""Kubernetes Services -> contiv service load balancers; pods -> provider candidates (pure; no I/O).

- A Service ``ns/name`` with a cluster IP (not headless) and a ``selector`` -> serviceLB
  ``k8s.<ns>.<name>`` in tenant ``default`` on network ``default-net`` with
  ``selectors`` = the Service's selector as ``k=v``, ``ports`` = ``<port>:<targetPort>:<TCP|UDP>``
  (a named targetPort is resolved through the Service's Endpoints, whose ports carry the name
  and the number), and ``ipAddress`` = the cluster IP when it lies in the network's subnet
  (contiv's VIP must come from the network's IPAM; otherwise contiv picks the VIP: noted).
- Providers are matched by contiv exactly as for Docker containers: the candidates of the
  tenant whose labels hold every selector. A pod is a candidate (its labels, its address) while it
  is Ready, has an IPv4 address and is not hostNetwork; that is what the Service's Endpoints list
  as ready addresses for a selector Service.
Not translated (noted): headless Services, Services without a selector (hand-made Endpoints),
SCTP ports, unresolvable named ports, ExternalName.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from contivpy.netmaster.k8snet import translate as T


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


def service_lb(
    svc: dict, endpoints: dict | None, subnet: str, problems: list[str]
) -> tuple[str, dict[str, Any]] | None:
    """(serviceLB key, body) for ``svc``, or None when it is not translated (reason in problems)."""
    m = T.meta(svc)
    ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
    where = f"Service {ns}/{name}"
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        problems.append(f"{where} skipped: spec is not an object")
        return None
    if spec.get("type") == "ExternalName":
        return None
    cip = spec.get("clusterIP") or ""
    if cip in ("", "None"):
        problems.append(f"{where}: headless, no load balancer")
        return None
    sel = spec.get("selector")
    if not isinstance(sel, dict) or not sel:
        problems.append(f"{where}: no selector (hand-made Endpoints are not translated)")
        return None
    named = _named_ports(endpoints)
    ports: list[str] = []
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
    if not ports:
        problems.append(f"{where}: no port contiv can balance; skipped")
        return None
    vip = ""
    try:
        if subnet and ipaddress.ip_address(cip) in ipaddress.ip_network(subnet, strict=False):
            vip = cip
        else:
            problems.append(
                f"{where}: cluster IP {cip} is outside {T.NETWORK} ({subnet}); contiv picks the VIP"
            )
    except ValueError:
        problems.append(f"{where}: invalid cluster IP {cip!r}; contiv picks the VIP")
    sname = service_name(ns, name)
    body: dict[str, Any] = {
        "tenantName": T.TENANT,
        "serviceName": sname,
        "networkName": T.NETWORK,
        "ports": sorted(ports),
        "selectors": sorted(f"{k}={v}" for k, v in sel.items()),
    }
    if vip:
        body["ipAddress"] = vip
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
        "Network": labels.get("io.contiv.network") or T.NETWORK,
        "IPAddress": ip,
        "EPCommonName": str(T.meta(pod).get("name") or ""),
        "Labels": labels,
    }


__all__ = ["parse_service_name", "provider", "service_lb", "service_name"]
