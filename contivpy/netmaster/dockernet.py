"""Netmaster-side Docker networks (docker cluster mode): the Engine API operations for ONE network.

In ``docker`` mode every contiv network and endpoint group is also a Docker network
(docs/original.md §5.5/5.6, docs/original.md R4.8 fake-engine log) on netmaster's ``--docker-host``,
reached through the Engine API v1.23 (default ``unix:///var/run/docker.sock``):

    name      ``<group or network>`` for tenant ``default``, else ``<group or network>/<tenant>``
    driver    = IPAM driver = the plugin name (default ``netplugin``); CheckDuplicate, Attachable
    options   tenant, encap, pkt-tag (VNI for vxlan, VLAN for vlan)
    IPAM      options tenant, network[, group]; Config [{Subnet: <net addr>/<len>[, Gateway]}]

This module only talks to Docker. WHEN to call it is decided by the leader-only reconciler
``netmaster/dockerrec.py`` after the etcd commit (the hooks never call Docker), which also writes
the ``/contiv.io/oper/docknet/<tenant>.<network>.<group>`` record once Docker succeeded.

- ``ensure_network`` is idempotent: an existing network of our driver with the same contiv IPAM
  options and subnet is adopted; one of our driver that no longer matches (an older object of the
  same name) is replaced; another driver gives "network name used by another driver". A 409 from
  create means a concurrent creator (the netplugin of the host whose engine this is creates the same
  networks from etcd) was first; duplicates from Docker's unlocked CheckDuplicate are reduced to the
  oldest (``common/dockerapi.one_network``, the rule netplugin applies too).
- ``remove_network`` deletes the network of that name only if it is ours (``is_contiv``: our driver
  and contiv IPAM options); "not found" is done. Docker refuses while containers are attached: that
  error propagates (the reconciler retries the key).

The Engine API client, the naming and the create payload are shared with netplugin:
``contivpy/common/dockerapi.py``.
"""

from __future__ import annotations

import ipaddress
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
from contivpy.model.state import NetworkState

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


def is_contiv(found: dict, plugin: str) -> bool:
    """A Docker network contiv made: our driver, and IPAM options naming a tenant and a network."""
    opts = (found.get("IPAM") or {}).get("Options") or {}
    return found.get("Driver") == plugin and bool(opts.get("tenant")) and bool(opts.get("network"))


def _norm(subnet: str) -> str:
    try:
        return str(ipaddress.ip_network(subnet, strict=False))
    except ValueError:
        return ""


def matches(found: dict, plugin: str, net: NetworkState, group: str = "") -> bool:
    """``found`` is the network (network, group) wants: same contiv IPAM options and v4 subnet
    (what netplugin's sync compares too, so the two never disagree about one network)."""
    ipam = found.get("IPAM") or {}
    opts = ipam.get("Options") or {}
    want_opts = create_body(plugin, net, group)["IPAM"]["Options"]
    if {k: opts.get(k, "") for k in ("tenant", "network", "group")} != {
        k: want_opts.get(k, "") for k in ("tenant", "network", "group")
    }:
        return False
    subnets = {_norm(c.get("Subnet") or "") for c in ipam.get("Config") or []}
    return _norm(f"{net.subnetIP}/{net.subnetLen}") in subnets


async def ensure_network(docker: DockerClient, plugin: str, net: NetworkState, group: str = "") -> str:
    """The Docker network of (network, group) exists as etcd says; returns its id."""
    name = docker_net_name(net.tenant, net.networkName, group)
    existing = await one_network(docker, name, plugin)
    if existing is not None and existing.get("Driver") != plugin:
        raise ExternalServiceError("network name used by another driver")
    if existing is not None and not matches(existing, plugin, net, group):
        log.info(
            "docker network %s (%s) no longer matches its object: replacing it", name, existing["Id"][:12]
        )
        await docker.delete_network(existing["Id"])  # refused while in use: the key is retried
        existing = None
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
    return existing.get("Id", "")


async def remove_network(docker: DockerClient, plugin: str, name: str) -> bool:
    """Delete the Docker network ``name`` if contiv made it; True when one was deleted."""
    found = await docker.find_network(name)
    if found is None:
        return False
    if not is_contiv(found, plugin):
        log.info("docker network %s is not contiv's (driver %s): left alone", name, found.get("Driver"))
        return False
    return await docker.delete_network(found.get("Id") or name)


__all__ = [
    "DockerClient",
    "DEFAULT_DOCKER_HOST",
    "client_from_config",
    "docker_net_name",
    "plugin_name",
    "create_body",
    "is_contiv",
    "matches",
    "ensure_network",
    "remove_network",
]
