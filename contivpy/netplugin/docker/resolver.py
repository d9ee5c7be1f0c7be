"""Map Docker's identifiers to contiv's: Docker network id -> (tenant, network, group); PoolID parsing.

Resolution order for a Docker network id (the original looked at docknet state, then the name):
1. the in-memory cache (filled by sync.py when it creates or lists this host's networks);
2. ``/contiv.io/oper/docknet/*`` records whose ``docknetUUID`` is the id (written by netmaster
   for the networks it creates on its own Docker host);
3. the local Docker engine: IPAM options ``tenant``/``network``/``group`` that contiv puts on every
   network it creates, else the name ``<name>[/<tenant>]`` looked up as a network, then as a group.
A result is cached only once found; an unknown id is a ``NotFoundError`` (nothing is created).

PoolIDs are ``<network>.<tenant>|<pool>`` or ``<network>:<group>.<tenant>|<pool>`` (the original's).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from contivpy.common.dockerapi import DockerClient
from contivpy.common.errors import ContivError, NotFoundError, ValidationError
from contivpy.common.kv.base import KVStore
from contivpy.model import keys
from contivpy.model.state import DocknetState, EndpointGroupState

from .backend import ContivNet


@dataclass(frozen=True, slots=True)
class PoolRef:
    net: ContivNet
    pool: str  # CIDR

    @property
    def pool_id(self) -> str:
        return f"{self.net.alloc_id}|{self.pool}"

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.pool, strict=False).prefixlen


def parse_pool_id(pool_id: str) -> PoolRef:
    left, sep, pool = pool_id.partition("|")
    netpart, dot, tenant = left.rpartition(".")
    if not sep or not dot or not netpart or not tenant:
        raise ValidationError(f"invalid PoolID {pool_id!r}: not a contiv pool")
    network, _, group = netpart.partition(":")
    try:
        ipaddress.ip_network(pool, strict=False)
    except ValueError:
        raise ValidationError(f"invalid PoolID {pool_id!r}: bad pool {pool!r}") from None
    if not network:
        raise ValidationError(f"invalid PoolID {pool_id!r}: not a contiv pool")
    return PoolRef(ContivNet(tenant=tenant, network=network, group=group), pool)


def net_from_options(opts: dict) -> ContivNet | None:
    network = opts.get("network") or ""
    if not isinstance(network, str) or not network:
        return None
    tenant = opts.get("tenant") or "default"
    group = opts.get("group") or ""
    return ContivNet(tenant=str(tenant), network=network, group=str(group))


class NetworkResolver:
    def __init__(self, kv: KVStore, engine: DockerClient | None = None) -> None:
        self.kv = kv
        self.engine = engine
        self._cache: dict[str, ContivNet] = {}

    def remember(self, docker_id: str, net: ContivNet) -> None:
        self._cache[docker_id] = net

    def forget(self, docker_id: str) -> None:
        self._cache.pop(docker_id, None)

    def cached(self) -> dict[str, ContivNet]:
        return dict(self._cache)

    async def resolve(self, docker_id: str) -> ContivNet:
        if not docker_id:
            raise ValidationError("NetworkID is required")
        net = self._cache.get(docker_id)
        if net is None:
            net = await self._from_docknet(docker_id)
        if net is None and self.engine is not None:
            net = await self._from_engine(docker_id)
        if net is None:
            raise NotFoundError(f"Could not get network name: docker network {docker_id} not found")
        self._cache[docker_id] = net
        return net

    async def _from_docknet(self, docker_id: str) -> ContivNet | None:
        kvs, _ = await self.kv.get_prefix(keys.OPER_DOCKNET)
        for kvp in kvs:
            rec = DocknetState.parse(kvp.value)
            if rec is not None and rec.docknetUUID == docker_id and rec.networkName:
                return ContivNet(rec.tenantName or "default", rec.networkName, rec.serviceName)
        return None

    async def _from_engine(self, docker_id: str) -> ContivNet | None:
        try:
            info = await self.engine.inspect_network(docker_id)  # type: ignore[union-attr]
        except ContivError:
            return None
        net = net_from_options((info.get("IPAM") or {}).get("Options") or {})
        if net is not None:
            return net
        return await self.from_name(info.get("Name") or "")

    async def from_name(self, name: str) -> ContivNet | None:
        """``<name>[/<tenant>]``: a network of that tenant, else an endpoint group of it."""
        if not name:
            return None
        base, _, tenant = name.partition("/")
        tenant = tenant or "default"
        if await self.kv.get(keys.net_state(keys.network_id(base, tenant))) is not None:
            return ContivNet(tenant=tenant, network=base)
        kvp = await self.kv.get(keys.epg_state(keys.epg_id(base, tenant)))
        group = EndpointGroupState.parse(kvp.value) if kvp is not None else None
        if group is not None and group.networkName:
            return ContivNet(tenant=tenant, network=group.networkName, group=base)
        return None
