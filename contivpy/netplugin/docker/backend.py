"""What the Docker plugin needs from the netplugin agent: the ``EndpointBackend`` protocol.

The plugin (handlers.py) only translates Docker's calls; every allocation and every datapath
change goes through this small protocol, implemented by the agent (netmaster ``/plugin/*`` calls
plus OVS port/veth plumbing). Tests exercise the same protocol against the real netmaster.

Invariants an implementation must keep:
- ``alloc_address``/``release_address`` are netmaster's ``/plugin/allocAddress`` and
  ``/plugin/releaseAddress`` (NetworkID ``<net>.<tenant>`` or ``<net>:<group>.<tenant>``).
- ``create_endpoint`` asks netmaster ``/plugin/createEndpoint`` (with the already reserved address)
  and plugs the port (veth ``vportN``/``vvportN``, OVS access port, flows), then writes the oper
  state ``/contiv.io/oper/eps/<state id>``. On failure it undoes what it did, so nothing leaks.
- ``delete_endpoint`` unplugs and asks ``/plugin/deleteEndpoint`` to drop the endpoint; with
  ``spec.keep_address`` (the Docker plugin) its address stays allocated: Docker's
  ``ReleaseAddress`` (``release_address``) frees it next, so no other container gets it in
  between. Without it (CNI) the address is freed with the endpoint. Deleting an endpoint that does not exist is a success
  (Docker retries and rolls back).
- ``get_endpoint`` returns the plugged endpoint of this host or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from contivpy.common.dockerapi import docker_net_name
from contivpy.common.kv.base import KVStore
from contivpy.model import keys
from contivpy.model.state import OperEndpoint


@dataclass(frozen=True, slots=True)
class ContivNet:
    """The contiv identity of a Docker network: tenant, network and endpoint group ("" = none)."""

    tenant: str
    network: str
    group: str = ""

    @property
    def net_id(self) -> str:
        return keys.network_id(self.network, self.tenant)

    @property
    def alloc_id(self) -> str:
        """NetworkID used with /plugin/allocAddress: ``<net>.<tenant>`` or ``<net>:<group>.<tenant>``."""
        if self.group:
            return f"{self.network}:{self.group}.{self.tenant}"
        return self.net_id

    @property
    def docker_name(self) -> str:
        """The original's Docker network name (``common.dockerapi.docker_net_name``)."""
        return docker_net_name(self.tenant, self.network, self.group)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    net: ContivNet
    endpoint_id: str  # Docker endpoint id
    ip_address: str = ""  # plain IPv4, no prefix length
    ipv6_address: str = ""
    container: str = ""  # ConfigEP.Container (the original passes the endpoint id)
    ep_common_name: str = ""
    # delete only: keep the IPv4 address allocated for the caller's IPAM release (Docker's
    # ReleaseAddress follows DeleteEndpoint; CNI's DEL frees it at once)
    keep_address: bool = False

    @property
    def state_id(self) -> str:
        return keys.endpoint_state_id(self.net.network, self.net.tenant, self.endpoint_id)


@dataclass(frozen=True, slots=True)
class PluggedEndpoint:
    state_id: str
    ip_address: str
    mac_address: str
    port_name: str  # vportN: the container side of the veth, handed to Docker in Join
    ipv6_address: str = ""


@runtime_checkable
class EndpointBackend(Protocol):
    async def alloc_address(self, network_id: str, address_pool: str, preferred: str = "") -> str:
        """Reserve an address; returns ``ip/len``."""
        ...

    async def release_address(self, network_id: str, address: str) -> None: ...

    async def create_endpoint(self, spec: EndpointSpec) -> PluggedEndpoint: ...

    async def delete_endpoint(self, spec: EndpointSpec) -> None: ...

    async def get_endpoint(self, state_id: str) -> PluggedEndpoint | None: ...

    # Optional (looked up with getattr, so not part of the runtime check):
    # async def record_container(self, state_id: str, name: str, container_id: str,
    #                            labels: dict[str, str] | None = None,
    #                            aliases: list[str] | None = None) -> None
    #     the container (Docker name, id and labels) of a joined endpoint, for DNS by name and
    #     service-LB provider matching (netmaster /plugin/updateEndpoint, Event "start").
    # async def container_died(self, state_id: str, container_id: str, tenant: str = "") -> None
    #     the container of an endpoint stopped (Docker event "die"; Event "die").
    # def routed(self) -> bool
    #     the agent forwards in routing mode (a vlan network without a gateway then gets an on-link
    #     default route at Join, as a vxlan one always does).


async def read_oper_endpoint(kv: KVStore, state_id: str) -> PluggedEndpoint | None:
    """The agent's oper record of a plugged endpoint (``/contiv.io/oper/eps/<id>``), if any."""
    kvp = await kv.get(keys.ep_oper(state_id))
    if kvp is None:
        return None
    try:
        rec = OperEndpoint.from_json(kvp.value)
    except ValueError:
        return None
    return PluggedEndpoint(state_id, rec.ipAddress, rec.macAddress, rec.portName, rec.ipv6Address)
