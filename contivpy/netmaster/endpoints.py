"""Endpoint lifecycle and address allocation behind /plugin/* (contiv-reference §2.4, §4.3).

Every operation is one etcd txn: it reads the records it changes (network state, EPG state,
endpoint state), applies ``ipam``, and commits with compares on their mod revisions (endpoint
create: ``version == 0``). A lost race re-runs on fresh state, so concurrent requests and several
netmaster processes never hand out one address twice, and a request that fails half-way leaves
nothing allocated. A per-network ``asyncio.Lock`` keeps one process from racing itself (no CAS
storms under load).

Identifiers: NetworkID ``<net>.<tenant>`` or ``<net>:<epg>.<tenant>`` (names may contain dots: the
split that names an existing network wins); endpoint state id ``<net>.<tenant>-<container>`` (or
``<host>-native-intf`` without a container, as the original).

Fixes (decisions.md): a preferred address already in use is refused; ``releaseAddress`` accepts
the Docker PoolID form ``<NetworkID>|<pool>`` and never frees an address still owned by an
endpoint (a late Docker ReleaseAddress cannot free an address that was handed out again);
``deleteEndpoint`` of an unknown endpoint succeeds (idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contivpy.common import netaddr
from contivpy.common.errors import ConflictError, ContivError, NotFoundError, ValidationError
from contivpy.common.kv.base import Compare, Delete, KeyValue, KVStore, Put
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState, EndpointState, NetworkState, OperEndpoint
from contivpy.netmaster import ipam
from contivpy.netmaster.providers import ProviderBook, check_request

log = logging.getLogger("netmaster.endpoints")

MAX_ATTEMPTS = 50
# allocAddress requests served by one txn. A batch of B requests touches at most B groups: its txn has
# 1 + B compares and 1 + B puts. etcd refuses a txn whose compares, or whose success ops, number more
# than --max-txn-ops (default 128; each list counts on its own), so B must stay below 128; 60 leaves
# room. Test: test_tbm_controlplane_scale.test_alloc_batch_of_one_request_per_pool_group_fits_etcd_txn.
MAX_BATCH = 60


@dataclass
class _Rec:
    """A record read for this attempt (None value = absent)."""

    key: str
    kv: KeyValue | None

    def compare(self) -> Compare:
        if self.kv is None:
            return Compare(self.key, "version", "==", 0)
        return Compare(self.key, "mod", "==", self.kv.mod_revision)


@dataclass
class _AllocReq:
    """One queued allocAddress request (served by whichever request holds the network lock)."""

    network_id: str
    group: str
    preferred: str
    fut: asyncio.Future


class Allocator:
    """Address and endpoint allocation for one netmaster (shared by all /plugin/* requests)."""

    def __init__(
        self,
        kv: KVStore,
        cluster_mode: str = "docker",
        provider_update: Callable[[dict], Awaitable[None]] | None = None,
    ) -> None:
        self.kv = kv
        self.cluster_mode = cluster_mode
        self.provider_update = provider_update  # daemon wires ``self.providers.update``
        self.providers = ProviderBook(kv, self.resolve)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, list[_AllocReq]] = {}

    def _lock(self, net_id: str) -> asyncio.Lock:
        lock = self._locks.get(net_id)
        if lock is None:
            lock = self._locks[net_id] = asyncio.Lock()
        return lock

    async def _read(self, key: str) -> _Rec:
        return _Rec(key, await self.kv.get(key))

    # --- id resolution ----------------------------------------------------------------------
    async def resolve(self, network_id: str) -> tuple[str, str, str]:
        """NetworkID -> (network, group, tenant) of an existing network."""
        net_part, group = network_id, ""
        if ":" in network_id:
            head, _, rest = network_id.partition(":")
            group, _, tenant = rest.rpartition(".")
            if not group:
                raise NotFoundError(f"network {network_id} not found")
            if await self.kv.get(keys.net_state(keys.network_id(head, tenant))) is None:
                raise NotFoundError(f"network {head}.{tenant} not found")
            return head, group, tenant
        idx = len(net_part)
        while True:
            idx = net_part.rfind(".", 0, idx)
            if idx <= 0:
                raise NotFoundError(f"network {network_id} not found")
            net, tenant = net_part[:idx], net_part[idx + 1 :]
            if await self.kv.get(keys.net_state(keys.network_id(net, tenant))) is not None:
                return net, group, tenant

    async def _find_by_pool(self, address_pool: str) -> str | None:
        pool, _, tenant = address_pool.partition(":")
        subnet_ip, _, length = pool.partition("/")
        items, _ = await self.kv.get_prefix(keys.NETS)
        for item in items:
            st = NetworkState.from_json(item.value)
            if tenant and st.tenant != tenant:
                continue
            if str(st.subnetLen) == length and netaddr.is_ipv4(subnet_ip):
                mask = netaddr.mask(st.subnetLen)
                if netaddr.ip_to_int(subnet_ip) & mask == netaddr.ip_to_int(st.subnetIP):
                    return st.id
        return None

    # --- allocAddress / releaseAddress ------------------------------------------------------------
    async def alloc_address(self, network_id: str, address_pool: str = "", preferred: str = "") -> dict:
        if not network_id:
            found = await self._find_by_pool(address_pool) if address_pool else None
            if found is None:
                if self.cluster_mode == "swarm-mode" and address_pool:
                    pool = address_pool.partition(":")[0]
                    ip, _, length = pool.partition("/")
                    first = netaddr.int_to_ip((netaddr.ip_to_int(ip) & netaddr.mask(int(length))) + 1)
                    return {"NetworkID": network_id, "IPv4Address": f"{first}/{length}"}
                raise NotFoundError(f"network with subnet {address_pool} not found")
            network_id = found
        net, group, tenant = await self.resolve(network_id)
        net_id = keys.network_id(net, tenant)
        # Group commit: queue the request, then take the network lock; whoever gets it serves
        # every queued request of the network in ONE read + txn (a waiter finding its own
        # request already served just returns). Same compares and retries as one request.
        req = _AllocReq(network_id, group, preferred, asyncio.get_running_loop().create_future())
        pending = self._pending.setdefault(net_id, [])
        pending.append(req)
        try:
            await self._lock(net_id).acquire()
        except asyncio.CancelledError:
            if req in pending:
                pending.remove(req)
            raise
        try:
            while not req.fut.done():  # (ours may lie beyond the first batch)
                # at most MAX_BATCH per txn: each distinct EPG adds a compare (etcd: <= 128 ops)
                batch, pending[:] = pending[:MAX_BATCH], pending[MAX_BATCH:]
                try:
                    await self._alloc_batch(net_id, tenant, batch)
                finally:
                    for r in batch:  # cancelled half-way: nobody is left waiting forever
                        if not r.fut.done():
                            r.fut.set_exception(ConflictError("concurrent update, please retry"))
        finally:
            self._lock(net_id).release()
        return req.fut.result()

    async def _alloc_batch(self, net_id: str, tenant: str, batch: list[_AllocReq]) -> None:
        for _ in range(MAX_ATTEMPTS):
            nrec = await self._read(keys.net_state(net_id))
            if nrec.kv is None:
                for r in batch:
                    r.fut.set_exception(NotFoundError(f"network {net_id} not found"))
                return
            st = NetworkState.from_json(nrec.kv.value)
            epgs: dict[str, tuple[_Rec, EndpointGroupState | None]] = {}
            done: list[tuple[_AllocReq, str]] = []
            failed: list[tuple[_AllocReq, Exception]] = []
            for r in batch:
                epg = None
                if r.group:
                    if r.group not in epgs:
                        erec = await self._read(keys.epg_state(keys.epg_id(r.group, tenant)))
                        ev = None if erec.kv is None else EndpointGroupState.from_json(erec.kv.value)
                        epgs[r.group] = (erec, ev)
                    epg = epgs[r.group][1]
                    if epg is None:
                        failed.append((r, NotFoundError(f"endpoint group {r.group} not found")))
                        continue
                try:
                    ip = ipam.allocate(st, epg, r.preferred)  # mutates only on success
                except (ContivError, ValueError) as exc:
                    failed.append((r, exc))
                    continue
                done.append((r, f"{ip}/{st.subnetLen}"))
            if done:
                recs = [nrec] + [erec for erec, _ in epgs.values()]
                ops: list[Put | Delete] = [Put(nrec.key, st.to_json())]
                ops += [
                    Put(erec.key, ev.to_json()) for erec, ev in epgs.values() if ev is not None and ev.ipPool
                ]
                if not (await self.kv.txn([r.compare() for r in recs], ops)).succeeded:
                    continue
            for r, addr in done:
                r.fut.set_result({"NetworkID": r.network_id, "IPv4Address": addr})
            for r, exc in failed:
                r.fut.set_exception(exc)
            return
        for r in batch:
            r.fut.set_exception(ConflictError("concurrent update, please retry"))

    async def release_address(self, network_id: str, address: str) -> None:
        network_id = network_id.split("|", 1)[0]
        ip = address.split("/", 1)[0]
        if not netaddr.is_ipv4(ip):
            raise ValidationError(f"invalid ip address {address}")
        net, group, tenant = await self.resolve(network_id)
        net_id = keys.network_id(net, tenant)
        async with self._lock(net_id):
            for _ in range(MAX_ATTEMPTS):
                eps, _ = await self.kv.get_prefix(keys.EPS + net_id + "-")
                if any(EndpointState.from_json(e.value).ipAddress == ip for e in eps):
                    return  # still owned by an endpoint: deleteEndpoint frees it
                nrec = await self._read(keys.net_state(net_id))
                if nrec.kv is None:
                    raise NotFoundError(f"network {net_id} not found")
                st = NetworkState.from_json(nrec.kv.value)
                epg, erec = await self._owner_epg(st, group, tenant, ip)
                if not ipam.release(st, epg, ip):
                    return
                recs = [nrec] + ([erec] if erec else [])
                ops: list[Put | Delete] = [Put(nrec.key, st.to_json())]
                if erec is not None and epg is not None:
                    ops.append(Put(erec.key, epg.to_json()))
                if (await self.kv.txn([r.compare() for r in recs], ops)).succeeded:
                    return
        raise ConflictError("concurrent update, please retry")

    async def _owner_epg(
        self, st: NetworkState, group: str, tenant: str, ip: str
    ) -> tuple[EndpointGroupState | None, _Rec | None]:
        """The EPG whose pool holds ``ip`` (named group first, else any EPG of the network)."""
        if group:
            erec = await self._read(keys.epg_state(keys.epg_id(group, tenant)))
            if erec.kv is not None:
                epg = EndpointGroupState.from_json(erec.kv.value)
                if epg.ipPool:
                    return epg, erec
        items, _ = await self.kv.get_prefix(keys.EPGS)
        epgs = [EndpointGroupState.from_json(i.value) for i in items]
        mine = [e for e in epgs if e.networkName == st.networkName and e.tenantName == st.tenant and e.ipPool]
        owner = ipam.owner_of(st, mine, ip)
        if owner is None:
            return None, None
        erec = await self._read(keys.epg_state(owner.id))
        if erec.kv is None:
            return None, None
        return EndpointGroupState.from_json(erec.kv.value), erec

    # --- endpoints ---------------------------------------------------------------------------------
    @staticmethod
    def endpoint_id(net_id: str, container: str, host: str) -> str:
        return f"{net_id}-{container}" if container else f"{host}-native-intf"

    async def create_endpoint(self, req: dict) -> EndpointState:
        tenant, net = req.get("TenantName", ""), req.get("NetworkName", "")
        cfg = req.get("ConfigEP") or {}
        group = req.get("ServiceName", "") or cfg.get("ServiceName", "")
        container = cfg.get("Container", "") or req.get("EndpointID", "")
        net_id = keys.network_id(net, tenant)
        ep_key = keys.ep_state(self.endpoint_id(net_id, container, cfg.get("Host", "")))
        async with self._lock(net_id):
            for _ in range(MAX_ATTEMPTS):
                eprec = await self._read(ep_key)
                if eprec.kv is not None:
                    return EndpointState.from_json(eprec.kv.value)
                nrec = await self._read(keys.net_state(net_id))
                if nrec.kv is None:
                    raise NotFoundError(f"network {net_id} not found")
                st = NetworkState.from_json(nrec.kv.value)
                epg, erec = None, None
                if group:
                    erec = await self._read(keys.epg_state(keys.epg_id(group, tenant)))
                    if erec.kv is None:
                        raise NotFoundError(f"endpoint group {group} not found")
                    epg = EndpointGroupState.from_json(erec.kv.value)
                ip = cfg.get("IPAddress", "")
                if ip:
                    ipam.reserve(st, epg, ip)
                else:
                    ip = ipam.allocate(st, epg)
                ip6 = cfg.get("IPv6Address", "")
                if st.ipv6SubnetIP:
                    if ip6:
                        ipam.reserve_v6(st, ip6)
                    else:
                        ip6 = ipam.allocate_v6(st)
                st.epCount += 1
                ep = EndpointState(
                    id=ep_key[len(keys.EPS) :],
                    netID=net_id,
                    endpointID=req.get("EndpointID", "") or container,
                    serviceName=group,
                    endpointGroupId=epg.endpointGroupId if epg else 0,
                    endpointGroupKey=epg.id if epg else "",
                    ipAddress=ip,
                    ipv6Address=ip6,
                    macAddress=netaddr.mac_from_ip(ip),
                    homingHost=cfg.get("Host", ""),
                    epCommonName=req.get("EPCommonName", ""),
                )
                recs = [eprec, nrec]
                ops: list[Put | Delete] = [Put(ep_key, ep.to_json()), Put(nrec.key, st.to_json())]
                if epg is not None and erec is not None:
                    epg.epCount += 1
                    recs.append(erec)
                    ops.append(Put(erec.key, epg.to_json()))
                if (await self.kv.txn([r.compare() for r in recs], ops)).succeeded:
                    return ep
        raise ConflictError("concurrent update, please retry")

    async def delete_endpoint(self, req: dict) -> EndpointState:
        tenant, net = req.get("TenantName", ""), req.get("NetworkName", "")
        net_id = keys.network_id(net, tenant)
        ep_key = keys.ep_state(self.endpoint_id(net_id, req.get("EndpointID", ""), req.get("Host", "")))
        async with self._lock(net_id):
            for _ in range(MAX_ATTEMPTS):
                eprec = await self._read(ep_key)
                if eprec.kv is None:  # (a retried delete still drops a provider left behind)
                    await self.providers.remove(tenant, ep_key[len(keys.EPS) :], ep_gone=True)
                    return EndpointState()
                ep = EndpointState.from_json(eprec.kv.value)
                nrec = await self._read(keys.net_state(net_id))
                recs, ops = [eprec], [Delete(ep_key)]
                if nrec.kv is not None:
                    st = NetworkState.from_json(nrec.kv.value)
                    epg, erec = None, None
                    if ep.endpointGroupKey:
                        erec = await self._read(keys.epg_state(ep.endpointGroupKey))
                        if erec.kv is not None:
                            epg = EndpointGroupState.from_json(erec.kv.value)
                            epg.epCount = max(0, epg.epCount - 1)
                    if ep.ipAddress:
                        ipam.release(st, epg, ep.ipAddress)
                    if ep.ipv6Address:
                        ipam.release_v6(st, ep.ipv6Address)
                    st.epCount = max(0, st.epCount - 1)
                    recs.append(nrec)
                    ops.append(Put(nrec.key, st.to_json()))
                    if epg is not None and erec is not None:
                        recs.append(erec)
                        ops.append(Put(erec.key, epg.to_json()))
                if (await self.kv.txn([r.compare() for r in recs], ops)).succeeded:
                    await self.providers.remove(tenant, ep.id, ep_gone=True)  # no longer a provider
                    return ep
        raise ConflictError("concurrent update, please retry")

    async def update_endpoint(self, req: dict) -> dict:
        """Container start/die: the container's id and name go into the endpoint state (what the
        name servers of every host answer from), with its labels on ``start``; service-provider
        bookkeeping (providers.py) is delegated to ``provider_update``. ``EndpointID`` is the
        endpoint state id ``<net>.<tenant>-<epid>``. Every field is checked before any write."""
        ep_id, name, cid = (req.get(f) or "" for f in ("EndpointID", "EPCommonName", "ContainerID"))
        for field, v in (("EndpointID", ep_id), ("EPCommonName", name), ("ContainerID", cid)):
            if not isinstance(v, str):
                raise ValidationError(f"{field} must be a string")
        event, labels = check_request(req)
        if event == "start" and labels:
            await self.providers.check_start(req)
        if ep_id and event != "die" and (name or cid or labels):
            await self._set_container(ep_id, name, cid, labels)
        if self.provider_update is not None:
            await self.provider_update(req)
        return {"IPAddress": req.get("IPAddress", "")}

    async def _set_container(self, ep_id: str, name: str, cid: str, labels: dict | None = None) -> None:
        key = keys.ep_state(ep_id)
        for _ in range(MAX_ATTEMPTS):
            rec = await self._read(key)
            if rec.kv is None:
                raise NotFoundError(f"endpoint {ep_id} not found")
            ep = EndpointState.from_json(rec.kv.value)
            want = (name or ep.epCommonName, cid or ep.containerId, labels or ep.labels)
            if (ep.epCommonName, ep.containerId, ep.labels) == want:
                return
            ep.epCommonName, ep.containerId, ep.labels = want
            if (await self.kv.txn([rec.compare()], [Put(key, ep.to_json())])).succeeded:
                return
        raise ConflictError("concurrent update, please retry")


async def endpoint_inspect(kv: KVStore, key: str) -> dict:
    """``/api/v1/inspect/endpoints/<key>/``: the first endpoint whose endpoint id, container id or
    name contains ``key`` -> ``{"Oper": {...}}`` (virtualPort from the host's oper record)."""
    from contivpy.netmaster.hooks.network import endpoint_oper

    items, _ = await kv.get_prefix(keys.EPS)
    for item in items:
        ep = EndpointState.from_json(item.value)
        if key in ep.endpointID or key in ep.containerId or key in ep.epCommonName:
            oper = await read_oper_endpoint(kv, ep.id)
            port = oper.portName if oper is not None else ""
            return {"Oper": {"key": key, **endpoint_oper(ep, "v" + port if port else "")}}
    raise NotFoundError("endpoint not found")


async def read_oper_endpoint(kv: KVStore, ep_id: str) -> OperEndpoint | None:
    """The owning host's ``/contiv.io/oper/eps/<id>`` record; None when absent or unreadable."""
    item = await kv.get(keys.ep_oper(ep_id))
    if item is None:
        return None
    try:
        return OperEndpoint.from_json(item.value)
    except ValueError:
        log.warning("ignoring malformed oper record of endpoint %s", ep_id)
        return None


__all__ = ["Allocator", "endpoint_inspect", "read_oper_endpoint", "MAX_ATTEMPTS"]
