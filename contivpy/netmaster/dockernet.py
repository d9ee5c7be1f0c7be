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
"network name used by another driver"); delete treats "not found" as done. The netplugin of the
host whose engine this is creates the same networks from etcd: a 409 from create means it was
first, and duplicates from Docker's unlocked CheckDuplicate are removed (``one_network``).

``reconcile_docker_networks`` re-creates missing Docker networks for every network/EPG state (run
by the leader at start: closes the window where netmaster died between the etcd commit and the
Docker call), and rewrites a docknet record that is missing or names another Docker id than the
engine's network of that name (a copy replaced behind netmaster's back, e.g. by a duplicate
reduction, would otherwise leave the recorded id stale forever). The netplugin on this engine never
deletes a network netmaster has just created and not yet committed (netplugin/docker/sync.py:
deletions need positive evidence), so the EPG create-before-commit order does not stale it. See docs/decisions.md "Docker networks". The Engine API client, the naming and the
create payload are shared with netplugin: ``contivpy/common/dockerapi.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from contivpy.common.dockerapi import (
    DEFAULT_DOCKER_HOST,
    DockerApiError,
    DockerClient,
    docker_net_name,
    network_create_body,
    one_network,
)
from contivpy.common.errors import ExternalServiceError
from contivpy.common.kv.base import KVStore
from contivpy.model import keys
from contivpy.model.state import DocknetState, EndpointGroupState, NetworkState

log = logging.getLogger("netmaster.dockernet")

#: the original netmaster's Engine API client version
API_VERSION = "1.23"


def client_from_config(config: Any) -> DockerClient:
    return DockerClient(getattr(config, "docker_host", "") or DEFAULT_DOCKER_HOST, api_version=API_VERSION)


def plugin_name(config: Any) -> str:
    return getattr(config, "plugin_name", "") or "netplugin"


def create_body(plugin: str, net: NetworkState, group: str = "") -> dict:
    return network_create_body(
        plugin,
        tenant=net.tenant,
        network=net.networkName,
        group=group,
        subnet=f"{net.subnetIP}/{net.subnetLen}",
        gateway=net.gateway,
        subnet6=f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}" if net.ipv6SubnetIP else "",
        gateway6=net.ipv6Gateway,
        encap=net.pktTagType,
        pkt_tag=net.extPktTag if net.pktTagType == "vxlan" else net.pktTag,
    )


async def create_docknet(
    docker: DockerClient, kv: KVStore, plugin: str, net: NetworkState, group: str = ""
) -> str:
    """Ensure the Docker network of (network, group) exists; record the mapping; returns its id."""
    name = docker_net_name(net.tenant, net.networkName, group)
    existing = await one_network(docker, name, plugin)
    if existing is None:
        try:
            await docker.create_network(create_body(plugin, net, group))
        except DockerApiError as e:
            if e.status != 409:  # 409: a concurrent creator (the host's netplugin) was first
                raise
        # both creators may have succeeded (Docker 20.10 races on CheckDuplicate): keep one
        existing = await one_network(docker, name, plugin)
        if existing is None:
            raise ExternalServiceError(f"docker network {name} vanished while being created")
    if existing.get("Driver") != plugin:
        raise ExternalServiceError("network name used by another driver")
    uuid = existing.get("Id", "")
    await _record(kv, net, group, uuid)
    return uuid


async def _record(kv: KVStore, net: NetworkState, group: str, uuid: str) -> None:
    did = keys.docknet_id(net.tenant, net.networkName, group)
    rec = DocknetState(
        id=did, tenantName=net.tenant, networkName=net.networkName, serviceName=group, docknetUUID=uuid
    )
    await kv.put(keys.docknet_oper(did), rec.to_json())


async def _refresh_record(kv: KVStore, net: NetworkState, group: str, uuid: str) -> bool:
    """Rewrite the docknet record if it is missing or names another id; True when rewritten."""
    kvp = await kv.get(keys.docknet_oper(keys.docknet_id(net.tenant, net.networkName, group)))
    rec = DocknetState.parse(kvp.value) if kvp is not None else None
    if rec is not None and rec.docknetUUID == uuid:
        return False
    await _record(kv, net, group, uuid)
    return True


async def delete_docknet(
    docker: DockerClient, kv: KVStore, tenant: str, network: str, group: str = ""
) -> None:
    """Remove the Docker network (missing = done) and its mapping. Docker refuses while it has
    endpoints; that error propagates and nothing else is changed."""
    name = docker_net_name(tenant, network, group)
    await docker.delete_network(name)  # False when already gone
    await kv.delete(keys.docknet_oper(keys.docknet_id(tenant, network, group)))


async def reconcile_docker_networks(kv: KVStore, docker: DockerClient, config: Any) -> int:
    """Create missing Docker networks for all contiv networks (non-infra) and EPGs and refresh stale
    docknet records; returns the number created. Errors are logged per object and do not stop the
    sweep."""
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
            name = docker_net_name(net.tenant, net.networkName, group)
            found = await docker.find_network(name)
            if found is None:
                await create_docknet(docker, kv, plugin, net, group)
                created += 1
            elif found.get("Driver") == plugin and found.get("Id"):
                if await _refresh_record(kv, net, group, found["Id"]):
                    log.info("docknet record of %s refreshed (%s)", name, found["Id"][:12])
        except Exception:  # keep sweeping; the next leader start retries
            log.exception("reconcile of docker network for %s/%s failed", net.id, group)
    return created


__all__ = [
    "DockerClient",
    "DEFAULT_DOCKER_HOST",
    "client_from_config",
    "docker_net_name",
    "plugin_name",
    "create_body",
    "create_docknet",
    "delete_docknet",
    "reconcile_docker_networks",
]
