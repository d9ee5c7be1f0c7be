"""The Docker plugin reads etcd state through contivpy.model.state (memory and real etcd).

Covers the readers that used to parse JSON by hand: the engine sync's desired set (networks,
groups, infra networks skipped, malformed records skipped), the resolver (docknet oper record,
``<group>/<tenant>`` names), RequestPool by ``contiv-tag`` and the sync's list+watch kick.
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.model import keys
from contivpy.model.state import DocknetState, EndpointGroupState, NetworkState
from contivpy.netplugin.docker.backend import ContivNet
from contivpy.netplugin.docker.handlers import PluginHandlers
from contivpy.netplugin.docker.resolver import NetworkResolver
from contivpy.netplugin.docker.sync import DockerNetworkSync, desired_networks


def _net(name: str, tenant: str, subnet: str, **kw) -> NetworkState:
    return NetworkState(
        id=keys.network_id(name, tenant),
        tenant=tenant,
        networkName=name,
        nwType=kw.get("nwType", "data"),
        pktTagType=kw.get("encap", "vxlan"),
        pktTag=kw.get("pktTag", 1),
        extPktTag=kw.get("extPktTag", 5001),
        subnetIP=subnet,
        subnetLen=24,
        gateway=kw.get("gateway", ""),
        networkTag=kw.get("tag", ""),
    )


async def _seed(kv) -> None:
    for st in (
        _net("ttin1", "default", "10.91.1.0", gateway="10.91.1.254", tag="ttitag-net"),
        _net("ttin2", "ttit", "10.91.2.0", encap="vlan", pktTag=91),
        _net("ttiinfra", "default", "10.91.3.0", nwType="infra"),
    ):
        await kv.put(keys.net_state(st.id), st.to_json())
    await kv.put(keys.net_state("ttibad.default"), "{not json")
    g = EndpointGroupState(
        id="ttig:default", groupName="ttig", tenantName="default", networkName="ttin1", groupTag="ttitag-grp"
    )
    await kv.put(keys.epg_state(g.id), g.to_json())
    await kv.put(keys.epg_state("ttibadg:default"), "[1, 2]")
    d = DocknetState(id="ttit.ttin2.", tenantName="ttit", networkName="ttin2", docknetUUID="ttidocker0001")
    await kv.put(keys.docknet_oper(d.id), d.to_json())


async def test_desired_networks_from_state_records(kv):
    await _seed(kv)
    want = await desired_networks(kv)
    assert set(want) == {"ttin1", "ttin2/ttit", "ttig"}
    n1, n2, g = want["ttin1"], want["ttin2/ttit"], want["ttig"]
    assert (n1.subnet, n1.gateway, n1.encap, n1.pkt_tag) == ("10.91.1.0/24", "10.91.1.254", "vxlan", 5001)
    assert (n2.net, n2.encap, n2.pkt_tag) == (ContivNet("ttit", "ttin2"), "vlan", 91)
    assert (g.net, g.subnet) == (ContivNet("default", "ttin1", "ttig"), "10.91.1.0/24")


async def test_resolver_reads_docknet_and_group_records(kv):
    await _seed(kv)
    r = NetworkResolver(kv)
    assert await r.resolve("ttidocker0001") == ContivNet("ttit", "ttin2")
    assert await r.from_name("ttig") == ContivNet("default", "ttin1", "ttig")
    assert await r.from_name("ttin2/ttit") == ContivNet("ttit", "ttin2")
    assert await r.from_name("ttibadg") is None
    with pytest.raises(NotFoundError):
        await r.resolve("ttinosuch")


async def test_request_pool_by_contiv_tag_names_the_docker_network_to_use(kv):
    """contiv-tag is refused (docs/decisions.md): the tagged object's Docker network exists already."""
    await _seed(kv)
    h = PluginHandlers(kv, backend=None, resolver=NetworkResolver(kv))  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as e:
        await h.request_pool({"Pool": "", "Options": {"contiv-tag": "ttitag-grp"}})
    assert str(e.value) == (
        "contiv-tag ttitag-grp is endpoint group ttig of network ttin1 in tenant default, whose Docker "
        "network ttig contiv already created on every host: use 'docker run --net ttig' "
        "(docker network create with contiv-tag is not supported)"
    )
    with pytest.raises(ValidationError, match="is network ttin1 in tenant default.*--net ttin1'"):
        await h.request_pool({"Pool": "", "Options": {"contiv-tag": "ttitag-net"}})
    with pytest.raises(NotFoundError):
        await h.request_pool({"Pool": "", "Options": {"contiv-tag": "ttitag-none"}})


async def test_sync_watch_kicks_on_snapshot_and_change(kv):
    s = DockerNetworkSync(kv, engine=None)  # type: ignore[arg-type]
    task = asyncio.create_task(s._watch(keys.NETS))
    try:
        async with asyncio.timeout(10):
            await s._dirty.wait()  # the first snapshot
        s._dirty.clear()
        await asyncio.sleep(0.2)
        assert not s._dirty.is_set()
        await kv.put(keys.net_state("ttiw.default"), _net("ttiw", "default", "10.91.9.0").to_json())
        async with asyncio.timeout(10):
            await s._dirty.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kv.delete(keys.net_state("ttiw.default"))
