"""Docker events drive service-LB providers in a real netmaster (real dockerd 20.10, real etcd).

The plugin runs in this process; its backend allocates and creates endpoints in the real netmaster
(``/plugin/allocAddress``, ``createEndpoint``, ``deleteEndpoint`` with KeepAddress, as the agent
does), plugs veth pairs, and sends container start/die with the agent's own code
(``AgentBackend.record_container`` / ``container_died``). A container labelled for a service
becomes its provider when it starts, and stops being one when it dies, before Docker has finished
tearing its endpoint down (here DeleteEndpoint is held until the test has looked).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from types import SimpleNamespace

import pytest

from contivpy.model import keys
from contivpy.netplugin.docker.plugin import DockerPlugin
from contivpy.netplugin.docker_backend import AgentBackend
from contivpy.netplugin.netmaster_client import NetmasterClient
from tests.integration.test_docker_plugin_dockerd import VethBackend, _nets, until

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.root]

SUBNET, GW = "10.78.1.0/24", "10.78.1.254"


class NetmasterVethBackend(VethBackend):
    def __init__(self, netns: str, client: NetmasterClient) -> None:
        super().__init__(netns, SUBNET, GW)
        self.nm = client
        self.endpoints = SimpleNamespace(netmaster=client, local={})  # what AgentBackend reads
        self.hold_delete: asyncio.Event | None = None
        self.deleting = asyncio.Event()

    async def alloc_address(self, network_id, address_pool, preferred=""):
        out = await self.nm.post("/plugin/allocAddress", {"NetworkID": network_id, "AddressPool": address_pool,
                                                          "PreferredIPv4Address": preferred})  # fmt: skip
        return out["IPv4Address"]

    async def release_address(self, network_id, address):
        await self.nm.post("/plugin/releaseAddress", {"NetworkID": network_id, "IPv4Address": address})

    async def create_endpoint(self, spec):
        net = spec.net
        await self.nm.post("/plugin/createEndpoint", {
            "TenantName": net.tenant, "NetworkName": net.network, "ServiceName": net.group,
            "EndpointID": spec.endpoint_id,
            "ConfigEP": {"Container": spec.endpoint_id, "Host": "tdkh1", "IPAddress": spec.ip_address}})  # fmt: skip
        return await super().create_endpoint(spec)

    async def delete_endpoint(self, spec):
        self.deleting.set()
        if self.hold_delete is not None:
            await self.hold_delete.wait()
        await super().delete_endpoint(spec)
        net = spec.net
        await self.nm.post("/plugin/deleteEndpoint", {
            "TenantName": net.tenant, "NetworkName": net.network, "ServiceName": net.group,
            "EndpointID": spec.endpoint_id, "KeepAddress": True})  # fmt: skip

    record_container = AgentBackend.record_container
    container_died = AgentBackend.container_died


@pytest.fixture
async def nmbed(etcd_kv, netmaster, tdk_netns, docker_host_factory):
    netns, base = tdk_netns
    net = f"tdk-{uuid.uuid4().hex[:5]}"
    body = {"tenantName": "default", "networkName": net, "encap": "vxlan", "subnet": SUBNET, "gateway": GW}
    st, _, text = await asyncio.to_thread(netmaster.request, "POST", f"/api/v1/networks/default:{net}/", body)
    assert st == 200, text
    svc = {"tenantName": "default", "serviceName": "tdksvc", "networkName": net,
           "selectors": ["app=web"], "ports": ["80:8080:TCP"]}  # fmt: skip
    st, _, text = await asyncio.to_thread(
        netmaster.request, "POST", "/api/v1/serviceLBs/default:tdksvc/", svc
    )
    assert st == 200, text
    client = NetmasterClient(etcd_kv, retries=1)
    backend = NetmasterVethBackend(netns, client)
    sock = base / "np" / "netplugin.sock"
    dh = await asyncio.to_thread(docker_host_factory, netns, base, str(sock))
    plugin = DockerPlugin(etcd_kv, backend, socket_path=str(sock), docker_host=dh.host_url, resync=2.0)
    task = asyncio.create_task(plugin.run())
    await plugin.ready.wait()
    try:
        await until(lambda: _nets(dh, {net}), what="network")
        await asyncio.wait_for(plugin.events.connected.wait(), 20)
        await asyncio.to_thread(dh.import_busybox)
        yield dh, plugin, backend, net, etcd_kv
    finally:
        if backend.hold_delete is not None:
            backend.hold_delete.set()
        await asyncio.to_thread(dh.remove_all_containers)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def providers(kv) -> list[str] | None:
    item = await kv.get(keys.PROVIDER + "tdksvc:default")
    return None if item is None else json.loads(item.value)["Providers"]


async def test_provider_follows_start_and_die(nmbed):
    dh, plugin, backend, net, kv = nmbed
    await asyncio.to_thread(dh.run, "tdkw1", net, "--label", "app=web")
    await asyncio.to_thread(dh.run, "tdkw2", net, "--label", "app=db")
    ip1 = (await asyncio.to_thread(dh.exec, "tdkw1", "ip", "-o", "-4", "addr", "show", "eth0")).split()[3]
    ip1 = ip1.split("/")[0]

    async def is_provider():
        return await providers(kv) == [ip1]

    await until(is_provider, what="tdkw1 a provider of tdksvc after start")
    ep = [json.loads(i.value) for i in (await kv.get_prefix(keys.EPS))[0]]
    assert {e["epCommonName"] for e in ep} == {"tdkw1", "tdkw2"}
    # die: dropped at once, while Docker still waits for DeleteEndpoint
    backend.hold_delete = asyncio.Event()
    stop = asyncio.create_task(asyncio.to_thread(dh.docker, "stop", "-t", "1", "tdkw1"))
    try:
        await until(lambda: _empty(kv), what="provider dropped on die")
        assert backend.eps, "the endpoint was already deleted: the drop did not come from the event"
    finally:
        backend.hold_delete.set()
        await stop
    # started again: a provider again (with the address of its new endpoint)
    await asyncio.to_thread(dh.docker, "start", "tdkw1")
    out = await asyncio.to_thread(dh.exec, "tdkw1", "ip", "-o", "-4", "addr", "show", "eth0")
    ip1b = out.split()[3].split("/")[0]

    async def again():
        return await providers(kv) == [ip1b]

    await until(again, what="provider again after start")


async def _empty(kv):
    return await providers(kv) == []


async def test_network_alias_stored_with_endpoint_and_resolved_by_any_host(nmbed):
    """``docker run --network-alias``: the aliases reach netmaster with the start event and are
    stored in the endpoint state, so the name table of any host (here one built from etcd alone,
    as another host's agent builds it) answers them with the container's address."""
    from contivpy.netplugin.nameserver import NameTable

    dh, plugin, backend, net, kv = nmbed
    cid = await asyncio.to_thread(
        dh.run, "tdkal", net, "--network-alias", "tdk-db", "--network-alias", "Tdk-Primary.db"
    )
    out = await asyncio.to_thread(dh.exec, "tdkal", "ip", "-o", "-4", "addr", "show", "eth0")
    ip = out.split()[3].split("/")[0]

    async def stored():
        for item in (await kv.get_prefix(keys.EPS))[0]:
            ep = json.loads(item.value)
            if ep.get("containerId") == cid and ep.get("aliases"):
                return ep
        return None

    ep = await until(stored, what="aliases in the endpoint state")
    assert {"tdk-db", "Tdk-Primary.db"} <= set(ep["aliases"]) and ep["epCommonName"] == "tdkal"
    other_host = NameTable(kv)
    await other_host.rebuild()
    assert other_host.lookup("default", "tdk-db") == [ip]
    assert other_host.lookup("default", "tdk-primary.db.") == [ip]
    assert other_host.lookup("default", "tdkal") == [ip]
    assert other_host.lookup("t-other", "tdk-db") == []
