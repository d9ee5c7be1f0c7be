"""Netmaster-side Docker networks (docker cluster mode): the Engine API client and the mapping.

In ``docker`` mode every contiv network and endpoint group is also a Docker network
(contiv-reference §5.5/5.6, transcripts §4.8 fake-engine log), created by netmaster through the
Engine API v1.23 on a unix socket (default ``/var/run/docker.sock``):

    name      ``<group or network>`` for tenant ``default``, else ``<group or network>/<tenant>``
    driver    = IPAM driver = the plugin name (default ``netplugin``); CheckDuplicate, Attachable
    options   tenant, encap, pkt-tag (VNI for vxlan, VLAN for vlan)
    IPAM      options tenant, network[, group]; Config [{Subnet: <net addr>/<len>[, Gateway]}]

The Docker network id is recorded in ``/contiv.io/oper/docknet/<tenant>.<network>.<group>``.
Create is idempotent (an existing network with our driver is adopted; another driver gives
"network name used by another driver"); delete treats "not found" as done.

``reconcile_docker_networks`` re-creates missing Docker networks for every network/EPG state (run
by the leader at start: closes the window where netmaster died between the etcd commit and the
Docker call). See docs/decisions.md "Docker networks".
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from contivpy.common.errors import ExternalServiceError
from contivpy.common.kv.base import KVStore
from contivpy.model import keys
from contivpy.model.state import DocknetState, EndpointGroupState, NetworkState

log = logging.getLogger("netmaster.dockernet")

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
API = "/v1.23"


class DockerClient:
    """Minimal async Docker Engine API client (networks only) over a unix socket."""

    def __init__(self, host: str = DEFAULT_DOCKER_HOST, timeout: float = 30.0) -> None:
        if not host.startswith("unix://"):
            raise ValueError(f"unsupported docker host {host}")
        self.host = host
        self.path = host[len("unix://") :]
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: Any) -> DockerClient:
        return cls(getattr(config, "docker_host", "") or DEFAULT_DOCKER_HOST)

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path), timeout=self.timeout
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _req(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            async with self._sess().request(
                method, "http://docker" + API + path, json=body if body is not None else None
            ) as resp:
                text = await resp.text()
                data: Any = None
                if text.strip():
                    try:
                        data = json.loads(text)
                    except ValueError:
                        data = {"message": text.strip()}
                return resp.status, data
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise ExternalServiceError(
                f"Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?"
            ) from exc
        except TimeoutError as exc:
            raise ExternalServiceError(f"Docker daemon at {self.host} timed out") from exc

    @staticmethod
    def _err(status: int, data: Any) -> ExternalServiceError:
        msg = data.get("message") if isinstance(data, dict) else None
        return ExternalServiceError(msg or f"docker engine error (HTTP {status})")

    async def inspect_network(self, name: str) -> dict | None:
        status, data = await self._req("GET", "/networks/" + quote(name, safe=""))
        if status == 404:
            return None
        if status != 200:
            raise self._err(status, data)
        return data

    async def create_network(self, body: dict) -> str:
        status, data = await self._req("POST", "/networks/create", body)
        if status not in (200, 201):
            raise self._err(status, data)
        return data.get("Id", "")

    async def delete_network(self, name_or_id: str) -> bool:
        status, data = await self._req("DELETE", "/networks/" + quote(name_or_id, safe=""))
        if status == 404:
            return False
        if status not in (200, 204):
            raise self._err(status, data)
        return True


def docker_net_name(tenant: str, network: str, group: str = "") -> str:
    name = group or network
    return name if tenant == "default" else f"{name}/{tenant}"


def plugin_name(config: Any) -> str:
    return getattr(config, "plugin_name", "") or "netplugin"


def create_body(plugin: str, net: NetworkState, group: str = "") -> dict:
    ipam_opts = {"network": net.networkName, "tenant": net.tenant}
    if group:
        ipam_opts = {"group": group, **ipam_opts}
    cfg: dict[str, str] = {"Subnet": f"{net.subnetIP}/{net.subnetLen}"}
    if net.gateway:
        cfg["Gateway"] = net.gateway
    configs = [cfg]
    if net.ipv6SubnetIP:
        v6 = {"Subnet": f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}"}
        if net.ipv6Gateway:
            v6["Gateway"] = net.ipv6Gateway
        configs.append(v6)
    tag = net.extPktTag if net.pktTagType == "vxlan" else net.pktTag
    return {
        "CheckDuplicate": True,
        "Driver": plugin,
        "EnableIPv6": bool(net.ipv6SubnetIP),
        "IPAM": {"Driver": plugin, "Options": ipam_opts, "Config": configs},
        "Internal": False,
        "Attachable": True,
        "Options": {"encap": net.pktTagType, "pkt-tag": str(tag), "tenant": net.tenant},
        "Labels": None,
        "Name": docker_net_name(net.tenant, net.networkName, group),
    }


async def create_docknet(
    docker: DockerClient, kv: KVStore, plugin: str, net: NetworkState, group: str = ""
) -> str:
    """Ensure the Docker network of (network, group) exists; record the mapping; returns its id."""
    name = docker_net_name(net.tenant, net.networkName, group)
    existing = await docker.inspect_network(name)
    if existing is not None:
        if existing.get("Driver") != plugin:
            raise ExternalServiceError("network name used by another driver")
        uuid = existing.get("Id", "")
    else:
        uuid = await docker.create_network(create_body(plugin, net, group))
    did = keys.docknet_id(net.tenant, net.networkName, group)
    rec = DocknetState(
        id=did, tenantName=net.tenant, networkName=net.networkName, serviceName=group, docknetUUID=uuid
    )
    await kv.put(keys.docknet_oper(did), rec.to_json())
    return uuid


async def delete_docknet(
    docker: DockerClient, kv: KVStore, tenant: str, network: str, group: str = ""
) -> None:
    """Remove the Docker network (missing = done) and its mapping. Docker refuses while it has
    endpoints; that error propagates and nothing else is changed."""
    name = docker_net_name(tenant, network, group)
    if await docker.inspect_network(name) is not None:
        await docker.delete_network(name)
    await kv.delete(keys.docknet_oper(keys.docknet_id(tenant, network, group)))


async def reconcile_docker_networks(kv: KVStore, docker: DockerClient, config: Any) -> int:
    """Create missing Docker networks for all contiv networks (non-infra) and EPGs; returns the
    number created. Errors are logged per object and do not stop the sweep."""
    plugin = plugin_name(config)
    created = 0
    nets, _ = await kv.get_prefix(keys.NETS)
    by_id: dict[str, NetworkState] = {}
    todo: list[tuple[NetworkState, str]] = []
    for item in nets:
        net = NetworkState.from_json(item.value)
        by_id[net.id] = net
        if net.nwType != "infra":
            todo.append((net, ""))
    epgs, _ = await kv.get_prefix(keys.EPGS)
    for item in epgs:
        epg = EndpointGroupState.from_json(item.value)
        net = by_id.get(f"{epg.networkName}.{epg.tenantName}")
        if net is not None:
            todo.append((net, epg.groupName))
    for net, group in todo:
        try:
            if await docker.inspect_network(docker_net_name(net.tenant, net.networkName, group)) is None:
                await create_docknet(docker, kv, plugin, net, group)
                created += 1
        except Exception:  # keep sweeping; the next leader start retries
            log.exception("reconcile of docker network for %s/%s failed", net.id, group)
    return created


__all__ = [
    "DockerClient",
    "DEFAULT_DOCKER_HOST",
    "docker_net_name",
    "plugin_name",
    "create_body",
    "create_docknet",
    "delete_docknet",
    "reconcile_docker_networks",
]
