"""``docker network create -d netplugin`` by a user, against a real dockerd 20.10 and real etcd.

Only the Docker networks contiv itself creates are accepted at ``NetworkDriver.CreateNetwork``
(driver option ``tenant`` and the subnet of a network of that tenant, as
``common/dockerapi.network_create_body`` sends them); anything else is refused before Docker
stores it, with an Err that says to use ``netctl network create``. ``--ipam-opt contiv-tag=...``
is refused at RequestPool with the name of the Docker network contiv already made for the tag.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from contivpy.model import keys
from tests.integration.test_docker_plugin_dockerd import _nets, until

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.root]


@pytest.fixture
async def bed(etcd_kv, tdk_netns, docker_host_factory):
    from tests.integration.test_docker_plugin_dockerd import _plugin_bed

    async with _plugin_bed(etcd_kv, tdk_netns, docker_host_factory) as b:
        dh, plugin, backend, net, grp, kv = b
        await until(lambda: _nets(dh, {net, grp}), what="contiv's own networks created through the plugin")
        yield b


async def _create(dh, *args):
    return await asyncio.to_thread(dh.docker_rc, "network", "create", *args)


async def test_user_network_create_refused_with_netctl_hint(bed):
    dh, plugin, backend, net, grp, kv = bed
    before = set(await asyncio.to_thread(dh.networks))
    r = await _create(dh, "-d", "netplugin", "tdkuser1")
    assert r.returncode != 0
    assert "docker network create -d netplugin is not supported" in r.stderr
    assert "'netctl network create'" in r.stderr and "Traceback" not in r.stderr
    # contiv's IPAM too, a subnet, or options that look like contiv's but match no network
    r = await _create(dh, "-d", "netplugin", "--subnet", "10.77.1.0/24", "tdkuser2")
    assert r.returncode != 0 and "'netctl network create'" in r.stderr
    r = await _create(dh, "-d", "netplugin", "-o", "tenant=default", "--subnet", "10.99.0.0/24", "tdkuser3")
    assert r.returncode != 0
    assert "no contiv network of tenant default has subnet 10.99.0.0/24" in r.stderr
    r = await _create(dh, "-d", "netplugin", "-o", "tenant=default", "-o", "pkt-tag=7",
                      "--subnet", "10.77.1.0/24", "tdkuser4")  # fmt: skip
    assert r.returncode != 0 and "no contiv network of tenant default" in r.stderr
    assert set(await asyncio.to_thread(dh.networks)) == before, "a refused network was stored"
    await _contiv_created_networks_still_accepted(bed)


async def test_contiv_tag_refused_naming_the_network_to_use(bed):
    dh, plugin, backend, net, grp, kv = bed
    epg = json.loads((await kv.get(keys.epg_state(f"{grp}:default"))).value)
    epg["groupTag"] = "tdktag1"
    await kv.put(keys.epg_state(f"{grp}:default"), json.dumps(epg))
    r = await _create(dh, "-d", "netplugin", "--ipam-driver", "netplugin", "--ipam-opt", "contiv-tag=tdktag1",
                      "tdkuser5")  # fmt: skip
    assert r.returncode != 0
    assert f"contiv-tag tdktag1 is endpoint group {grp} of network {net} in tenant default" in r.stderr
    assert f"use 'docker run --net {grp}'" in r.stderr
    r = await _create(dh, "-d", "netplugin", "--ipam-driver", "netplugin", "--ipam-opt", "contiv-tag=tdknone",
                      "tdkuser6")  # fmt: skip
    assert r.returncode != 0 and "no network or endpoint group has contiv-tag tdknone" in r.stderr
    assert "tdkuser5" not in await asyncio.to_thread(dh.networks)


async def _contiv_created_networks_still_accepted(bed):
    """The networks contiv makes itself (sync.py, same payload as netmaster) keep being created:
    a new network in etcd appears in Docker, and a container runs on it."""
    dh, plugin, backend, net, grp, kv = bed
    n2 = f"{net}b"
    state = {"id": f"{n2}.default", "tenant": "default", "networkName": n2, "nwType": "data",
             "pktTagType": "vlan", "pktTag": 77, "subnetIP": "10.77.2.0", "subnetLen": 24,
             "gateway": "10.77.2.254"}  # fmt: skip
    await kv.put(keys.net_state(f"{n2}.default"), json.dumps(state))
    try:
        nets = await until(lambda: _nets(dh, {n2}), what="vlan network created by sync")
        assert nets[n2]["Options"] == {"tenant": "default", "encap": "vlan", "pkt-tag": "77"}
        await asyncio.to_thread(dh.import_busybox)
        await asyncio.to_thread(dh.run, "tdkn1", net)
    finally:
        await kv.delete(keys.net_state(f"{n2}.default"))
