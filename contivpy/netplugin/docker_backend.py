"""The agent's implementation of the Docker plugin's ``EndpointBackend`` protocol.

A thin adapter: address calls go to netmaster ``/plugin/allocAddress`` / ``/plugin/releaseAddress``;
endpoint calls go to ``EndpointService`` (which calls ``/plugin/createEndpoint``/``deleteEndpoint`` and
plugs/unplugs veth, OVS port and flows); ``record_container`` (a container's name after Join, for DNS)
goes to ``/plugin/updateEndpoint`` (Event ``start``), as does ``container_died`` (Event ``die``, from
the Docker event stream, ``netplugin/docker/events.py``). See ``contivpy.netplugin.docker.backend`` for the contract.
"""

from __future__ import annotations

from contivpy.netplugin.docker.backend import EndpointSpec, PluggedEndpoint, read_oper_endpoint
from contivpy.netplugin.managers.endpoint import EndpointService


class AgentBackend:
    def __init__(self, endpoints: EndpointService) -> None:
        self.endpoints = endpoints

    async def alloc_address(self, network_id: str, address_pool: str, preferred: str = "") -> str:
        out = await self.endpoints.netmaster.post(
            "/plugin/allocAddress",
            {"NetworkID": network_id, "AddressPool": address_pool, "PreferredIPv4Address": preferred},
        )
        return (out or {}).get("IPv4Address", "")

    async def release_address(self, network_id: str, address: str) -> None:
        await self.endpoints.netmaster.post(
            "/plugin/releaseAddress", {"NetworkID": network_id, "IPv4Address": address}
        )

    async def create_endpoint(self, spec: EndpointSpec) -> PluggedEndpoint:
        info = await self.endpoints.create_endpoint(
            spec.net.tenant,
            spec.net.network,
            spec.net.group,
            spec.endpoint_id,
            spec.ip_address or None,
            ipv6=spec.ipv6_address or None,
            container=spec.container,
            ep_common_name=spec.ep_common_name,
        )
        return PluggedEndpoint(info.id, info.ip_address, info.mac_address, info.port_name, info.ipv6_address)

    async def delete_endpoint(self, spec: EndpointSpec) -> None:
        await self.endpoints.delete_endpoint(
            spec.net.tenant,
            spec.net.network,
            spec.net.group,
            spec.endpoint_id,
            keep_address=spec.keep_address,
        )

    def routed(self) -> bool:
        """The forwarding mode the agent applies now (a live switch changes it)."""
        return self.endpoints.cfg.fwdmode == "routing"

    async def get_endpoint(self, state_id: str) -> PluggedEndpoint | None:
        info = self.endpoints.local.get(state_id)
        if info is not None:
            return PluggedEndpoint(
                info.id, info.ip_address, info.mac_address, info.port_name, info.ipv6_address
            )
        return await read_oper_endpoint(self.endpoints.kv, state_id)

    async def record_container(
        self,
        state_id: str,
        name: str,
        container_id: str,
        labels: dict[str, str] | None = None,
        aliases: list[str] | None = None,
    ) -> None:
        """The container runs: netmaster writes its name, id, labels and ``--network-alias``
        names into the endpoint state (every host's name server answers the names) and matches
        the labels against service LB selectors (``start``)."""
        req: dict = {"EndpointID": state_id, "EPCommonName": name, "ContainerID": container_id}
        if aliases:
            req["Aliases"] = list(aliases)
        info = self.endpoints.local.get(state_id)
        if info is not None:
            req.update(IPAddress=info.ip_address, Tenant=info.tenant, Network=info.network)
        req.update(Labels=dict(labels or {}), Event="start")
        await self.endpoints.netmaster.post("/plugin/updateEndpoint", req)

    async def container_died(self, state_id: str, container_id: str, tenant: str = "") -> None:
        """The container of an endpoint stopped (Docker event ``die``): netmaster drops the
        endpoint from the providers of every service LB at once (``Event: die``)."""
        req: dict = {"EndpointID": state_id, "ContainerID": container_id, "Event": "die"}
        if tenant:
            req["Tenant"] = tenant
        await self.endpoints.netmaster.post("/plugin/updateEndpoint", req)
