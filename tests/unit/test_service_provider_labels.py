"""netplugin -> netmaster: after Join the container's labels travel to /plugin/updateEndpoint
(names.py -> AgentBackend.record_container) and make it a provider of the matching service LB.
netmaster side is the real Allocator + Crud on the ``kv`` matrix (memory and real etcd)."""

from __future__ import annotations

import asyncio
import json

from contivpy.model import keys
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator
from contivpy.netplugin.docker.names import ContainerNames
from contivpy.netplugin.docker_backend import AgentBackend
from contivpy.netplugin.records import EndpointInfo


class FakeEngine:
    def __init__(self, containers):
        self.containers = containers

    async def list_containers(self):
        return self.containers


class ToAllocator:
    """netmaster_client stand-in: POST bodies go through JSON to the real Allocator."""

    def __init__(self, alloc: Allocator) -> None:
        self.alloc = alloc
        self.posts: list[tuple[str, dict]] = []

    async def post(self, path: str, body: dict):
        body = json.loads(json.dumps(body))
        assert path == "/plugin/updateEndpoint"
        out = await self.alloc.update_endpoint(body)
        # recorded once answered: the test waits for this, then closes the learner (which cancels
        # a call still in flight; with real etcd the call takes a few ms)
        self.posts.append((path, body))
        return out


class FakeEndpoints:
    def __init__(self, netmaster, local) -> None:
        self.netmaster = netmaster
        self.local = local


async def test_join_sends_labels_and_becomes_provider(kv):
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    await crud.create_or_update(
        "network",
        "default:tspn",
        {"tenantName": "default", "networkName": "tspn", "encap": "vxlan", "subnet": "20.8.1.0/24"},
    )
    await crud.create_or_update(
        "serviceLB",
        "default:tspsvc",
        {
            "tenantName": "default",
            "serviceName": "tspsvc",
            "networkName": "tspn",
            "selectors": ["app=web"],
            "ports": ["80:8080:TCP"],
        },
    )
    alloc = Allocator(kv)
    alloc.provider_update = alloc.providers.update  # as daemon.py wires it
    ep = await alloc.create_endpoint(
        {"TenantName": "default", "NetworkName": "tspn", "EndpointID": "tspep1",
         "ConfigEP": {"Container": "tspep1", "Host": "h1"}}
    )  # fmt: skip
    info = EndpointInfo(
        id=ep.id, endpoint_id="tspep1", tenant="default", network="tspn", group="",
        ip_address=ep.ipAddress, prefix_len=24, ipv6_address="", mac_address=ep.macAddress,
        gateway="", port_name="vport1", ovs_port="vvport1", ofport=1, bridge="contivVxlanBridge",
        mtu=1450, vtep_ip="", host="h1",
    )  # fmt: skip
    nm = ToAllocator(alloc)
    backend = AgentBackend(FakeEndpoints(nm, {ep.id: info}))
    engine = FakeEngine(
        [
            {
                "Id": "c0ffee",
                "Names": ["/web1"],
                "Labels": {"app": "web", "com.docker.compose.project": "x"},
                "NetworkSettings": {"Networks": {"tspn": {"EndpointID": "dockerep1"}}},
            }
        ]
    )
    names = ContainerNames(engine, backend.record_container, timeout=5)
    await names.on_join(ep.id, "dockerep1")
    for _ in range(200):
        if nm.posts:
            break
        await asyncio.sleep(0.01)
    await names.close()
    assert nm.posts == [
        (
            "/plugin/updateEndpoint",
            {
                "EndpointID": ep.id,
                "EPCommonName": "web1",
                "ContainerID": "c0ffee",
                "IPAddress": ep.ipAddress,
                "Tenant": "default",
                "Network": "tspn",
                "Labels": {"app": "web", "com.docker.compose.project": "x"},
                "Event": "start",
            },
        )
    ]
    prov = json.loads((await kv.get(keys.PROVIDER + "tspsvc:default")).value)
    assert prov == {"ServiceName": "tspsvc:default", "Providers": [ep.ipAddress]}
    st = json.loads((await kv.get(keys.ep_state(ep.id))).value)
    assert (st["epCommonName"], st["containerId"], st["labels"]["app"]) == ("web1", "c0ffee", "web")
    # deleteEndpoint: no longer a provider
    await alloc.delete_endpoint({"TenantName": "default", "NetworkName": "tspn", "EndpointID": "tspep1"})
    prov = json.loads((await kv.get(keys.PROVIDER + "tspsvc:default")).value)
    assert prov["Providers"] == []
    assert await kv.get(keys.svc_provider("default", ep.id)) is None
