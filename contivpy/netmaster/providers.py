"""Service-LB provider bookkeeping (docs/original.md §2.3 "ServiceLB create", §2.4 updateEndpoint).

A *provider* of a service LB is an endpoint of the service's tenant, on the service's network
(``ServiceLBState.subnet`` is the network name), whose container labels hold every selector
``k=v`` of the service. The original kept the containers' labels in an in-memory provider DB; we
persist it so any leader (and a service created later) sees containers that already run:

    /contiv.io/state/svcProvider/<tenant>/<endpoint id>  ProviderCandidate (labels, IP, container)
    /contiv.io/state/svcProviderGen/<tenant>             ProviderGeneration (the fence)
    /contiv.io/state/serviceLB/<svc>:<tenant>            .providers {"<ip>:<tenant>": candidate dict}
    /contiv.io/state/provider/<svc>:<tenant>             {"ServiceName", "Providers": [sorted IPs]}

Invariants
- The provider lists of every service equal ``match(service, candidates of its tenant)``.
- Every txn that changes a tenant's candidates or provider lists compares AND bumps the tenant's
  generation record, and reads (lists) candidates / services only after reading it. Hence a
  container start and a service create that run concurrently cannot miss each other: whichever
  commits second saw a stale generation, fails its compare and re-runs on fresh state. A start
  also compares the endpoint state (a concurrently deleted endpoint never becomes a provider) and
  every service it rewrites (a concurrently deleted service is never resurrected).
- No counters in memory; one ``asyncio.Lock`` per tenant only avoids CAS storms inside one process.
- Removal (``die``, ``deleteEndpoint``) is idempotent: it drops the candidate and every provider
  entry whose ``EpIDKey`` is the endpoint (an IP handed out again to a newer endpoint is kept).

Limit: a container matching more than ~60 services of its tenant would need a txn beyond etcd's
128 ops; not handled (the original had no such case either in its tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Iterable

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.common.kv.base import Compare, Delete, KeyValue, KVStore, Put
from contivpy.model import keys
from contivpy.model.state import (
    EndpointState,
    ProviderCandidate,
    ProviderGeneration,
    ProviderState,
    ServiceLBState,
)
from contivpy.netmaster import addridx

MAX_ATTEMPTS = 50
EVENTS = ("", "start", "die")

# --- pure helpers (also used by the service_lb hooks) ---------------------------------------


def matches(svc: ServiceLBState, cand: ProviderCandidate) -> bool:
    """Same tenant, same network, every selector present in the labels with an equal value."""
    if not svc.selectors or cand.Tenant != svc.tenantname or cand.Network != svc.subnet:
        return False
    return all(cand.Labels.get(k) == v for k, v in svc.selectors.items())


def entry(cand: ProviderCandidate) -> dict:
    return cand.to_dict()


def entry_key(cand: ProviderCandidate) -> str:
    return f"{cand.IPAddress}:{cand.Tenant}"


def match_all(svc: ServiceLBState, cands: Iterable[ProviderCandidate]) -> dict[str, dict]:
    """The providers bookkeeping of ``svc`` given every candidate of its tenant."""
    return {entry_key(c): entry(c) for c in sorted(cands, key=lambda c: c.EpIDKey) if matches(svc, c)}


def ip_key(ip: str) -> tuple[int, str]:
    try:
        return (int(ipaddress.ip_address(ip)), ip)
    except ValueError:
        return (1 << 128, ip)


def provider_state(svc: ServiceLBState) -> ProviderState:
    ips = {p.get("IPAddress", "") for p in svc.providers.values()} - {""}
    return ProviderState(ServiceName=svc.id, Providers=sorted(ips, key=ip_key))


def gen_put(tenant: str, cur: ProviderGeneration | None) -> Put:
    nxt = ProviderGeneration(tenant=tenant, generation=(cur.generation if cur else 0) + 1)
    return Put(keys.svc_provider_gen(tenant), nxt.to_json())


def _compare(key: str, kv: KeyValue | None) -> Compare:
    if kv is None:
        return Compare(key, "version", "==", 0)
    return Compare(key, "mod", "==", kv.mod_revision)


# --- request checks ---------------------------------------------------------------------------


def check_request(req: dict) -> tuple[str, dict[str, str]]:
    """Validate the provider fields of an updateEndpoint request -> (event, labels)."""
    for f in ("IPAddress", "Tenant", "Network", "Event", "ContainerID", "EndpointID"):
        if req.get(f) is not None and not isinstance(req.get(f), str):
            raise ValidationError(f"{f} must be a string")
    event = req.get("Event") or ""
    if event not in EVENTS:
        raise ValidationError(f"invalid event '{event}': start or die expected")
    labels = req.get("Labels")
    if labels is None:
        labels = {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValidationError("Labels must be an object of string values")
    return event, labels


class ProviderBook:
    """Provider candidates and service provider lists of one netmaster (shared by all requests)."""

    def __init__(self, kv: KVStore, resolve, index_built=None) -> None:
        self.kv = kv
        self.resolve = resolve  # Allocator.resolve: NetworkID -> (network, group, tenant)
        # Allocator._index_built: the address index (addridx.py) can answer "who holds this address"
        self.index_built = index_built
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, tenant: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant, asyncio.Lock())

    # --- /plugin/updateEndpoint ------------------------------------------------------------
    async def update(self, req: dict) -> None:
        """The ``provider_update`` hook of ``Allocator.update_endpoint`` (request already checked)."""
        event, labels = check_request(req)
        if event == "die":
            await self._die(req)
        elif event == "start" and labels:
            await self._start(req, labels)

    async def _find_endpoint(self, req: dict) -> str:
        ep_id = req.get("EndpointID") or ""
        if ep_id:
            return ep_id
        tenant, net, ip = (req.get(f) or "" for f in ("Tenant", "Network", "IPAddress"))
        if not (tenant and net and ip):
            raise ValidationError("EndpointID, or Tenant, Network and IPAddress, required")
        net_id = keys.network_id(net, tenant)
        if self.index_built is not None and await self.index_built():  # one read of that address's keys
            held = await addridx.holders(self.kv, net_id, ip, v6=":" in ip)
            if held:
                return held[0]
            raise NotFoundError(f"endpoint with address {ip} not found in network {net_id}")
        items, _ = await self.kv.get_prefix(keys.EPS + net_id + "-")
        for item in items:
            ep = EndpointState.parse(item.value)
            if ep is not None and ep.netID == net_id and ip in (ep.ipAddress, ep.ipv6Address):
                return ep.id
        raise NotFoundError(f"endpoint with address {ip} not found in network {net_id}")

    async def check_start(self, req: dict) -> tuple[str, str, str]:
        """A start's endpoint, checked against the request -> (endpoint id, tenant, network).
        ``Allocator.update_endpoint`` calls it before writing anything."""
        ep_id = await self._find_endpoint(req)
        item = await self.kv.get(keys.ep_state(ep_id))
        ep = None if item is None else EndpointState.parse(item.value)
        if ep is None:
            raise NotFoundError(f"endpoint {ep_id} not found")
        net, _, tenant = await self.resolve(ep.netID)
        for field, given, real in (
            ("Tenant", req.get("Tenant"), tenant),
            ("Network", req.get("Network"), net),
        ):
            if given and given != real:
                raise ValidationError(f"{field} {given} does not match endpoint {ep_id} ({real})")
        ip = req.get("IPAddress") or ""
        if ip and ip not in (ep.ipAddress, ep.ipv6Address):
            raise ValidationError(f"IPAddress {ip} does not match endpoint {ep_id} ({ep.ipAddress})")
        return ep_id, tenant, net

    async def _start(self, req: dict, labels: dict[str, str]) -> None:
        ep_id, tenant, net = await self.check_start(req)

        def make(cur: EndpointState) -> ProviderCandidate:
            return ProviderCandidate(
                EpIDKey=ep_id,
                IPAddress=cur.ipAddress,
                ContainerID=req.get("ContainerID") or cur.containerId,
                Container=req.get("EPCommonName") or cur.epCommonName,
                Tenant=tenant,
                Network=net,
                Labels=labels,
            )

        await self._sync(tenant, ep_id, make)

    async def _die(self, req: dict) -> None:
        tenant = req.get("Tenant") or ""
        prefix = keys.svc_provider_prefix(tenant) if tenant else keys.SVC_PROVIDER
        ep_id, cid, ip = (req.get(f) or "" for f in ("EndpointID", "ContainerID", "IPAddress"))
        if not (ep_id or cid or ip):
            raise ValidationError("EndpointID, ContainerID or IPAddress required")
        items, _ = await self.kv.get_prefix(prefix)
        for item in items:
            c = ProviderCandidate.parse(item.value)
            if c is None:
                continue
            if (ep_id and c.EpIDKey == ep_id) or (
                not ep_id and (c.ContainerID == cid if cid else c.IPAddress == ip)
            ):
                await self.remove(c.Tenant, c.EpIDKey)

    # --- deleteEndpoint / die ------------------------------------------------------------------
    async def remove(self, tenant: str, ep_id: str, ep_gone: bool = False) -> None:
        """The endpoint stops being a provider (idempotent). ``ep_gone``: only while its endpoint
        state is absent (deleteEndpoint, prune: a re-created endpoint keeps its new candidate)."""
        await self._sync(tenant, ep_id, None, ep_gone)

    async def prune(self) -> int:
        """Leader start: drop candidates whose endpoint is gone (a netmaster that died between a
        deleteEndpoint commit and its provider removal). Returns how many were removed."""
        items, _ = await self.kv.get_prefix(keys.SVC_PROVIDER)
        n = 0
        for item in items:
            c = ProviderCandidate.parse(item.value)
            if c is not None and c.EpIDKey and await self.kv.get(keys.ep_state(c.EpIDKey)) is None:
                await self.remove(c.Tenant, c.EpIDKey, ep_gone=True)
                n += 1
        return n

    # --- the one writer ---------------------------------------------------------------------------
    async def _sync(self, tenant: str, ep_id: str, make, ep_gone: bool = False) -> None:
        ckey = keys.svc_provider(tenant, ep_id)
        gkey = keys.svc_provider_gen(tenant)
        async with self._lock(tenant):
            for attempt in range(MAX_ATTEMPTS):
                gitem, citem = await self.kv.get_many([gkey, ckey])  # one request (one per delete)
                gen = None if gitem is None else ProviderGeneration.parse(gitem.value)
                compares = [_compare(gkey, gitem)]
                cand = None
                if make is not None:
                    eitem = await self.kv.get(keys.ep_state(ep_id))
                    ep = None if eitem is None else EndpointState.parse(eitem.value)
                    if ep is None:
                        raise NotFoundError(f"endpoint {ep_id} not found")
                    compares.append(_compare(eitem.key, eitem))
                    cand = make(ep)
                elif ep_gone:
                    compares.append(Compare(keys.ep_state(ep_id), "version", "==", 0))
                if cand is None and citem is None:
                    return  # every provider entry has its candidate: nothing refers to ep_id
                compares.append(_compare(ckey, citem))
                ops: list[Put | Delete] = []
                old = None if citem is None else ProviderCandidate.parse(citem.value)
                if cand is not None and (old is None or old.to_dict() != cand.to_dict()):
                    ops.append(Put(ckey, cand.to_json()))
                elif cand is None and citem is not None:
                    ops.append(Delete(ckey))
                items, _ = await self.kv.get_prefix(keys.SERVICE_LB)
                for item in items:
                    svc = ServiceLBState.parse(item.value)
                    if svc is None or svc.tenantname != tenant:
                        continue
                    want = {k: v for k, v in svc.providers.items() if v.get("EpIDKey") != ep_id}
                    if cand is not None and matches(svc, cand):
                        want[entry_key(cand)] = entry(cand)
                    if want == svc.providers:
                        continue
                    svc.providers = want
                    compares.append(_compare(item.key, item))
                    ops.append(Put(item.key, svc.to_json()))
                    ops.append(Put(keys.PROVIDER + svc.id, provider_state(svc).to_json()))
                if not ops:
                    return
                ops.append(gen_put(tenant, gen))
                if (await self.kv.txn(compares, ops)).succeeded:
                    return
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise ConflictError("concurrent update, please retry")


__all__ = [
    "ProviderBook",
    "check_request",
    "entry",
    "entry_key",
    "gen_put",
    "ip_key",
    "match_all",
    "matches",
    "provider_state",
]
