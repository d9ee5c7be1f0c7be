"""A real dockerd 20.10 driving the plugin: wire compatibility, network sync, container lifecycle.

dockerd runs in its own netns + private mount namespace (tests/fixtures/docker.py); the plugin
runs in this process (socket linked into dockerd's /run/docker/plugins) with network/EPG state in
real etcd as netmaster writes it. The agent side is ``VethBackend``: first-fit allocation like
netmaster plus REAL veth pairs ``vportN``/``vvportN`` in the host netns, so Docker has something
to move into the container. (With the full agent + netmaster: tests/e2e/test_docker_*.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
import uuid

import pytest

from contivpy.common.dockerapi import DockerClient, network_create_body
from contivpy.common.netaddr import mac_from_ip
from contivpy.model import keys
from contivpy.netplugin.docker.backend import EndpointSpec, PluggedEndpoint
from contivpy.netplugin.docker.plugin import DockerPlugin
from contivpy.netplugin.docker.sync import DockerNetworkSync

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.root]


def ip_(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


class VethBackend:
    def __init__(self, netns: str, subnet: str, gateway: str, kv=None) -> None:
        self.netns = netns
        self.kv = kv
        self.net = ipaddress.ip_network(subnet)
        self.used = {self.net.network_address, self.net.broadcast_address, ipaddress.ip_address(gateway)}
        self.eps: dict[str, PluggedEndpoint] = {}
        self.port = 0
        self.calls: list[tuple] = []
        self.named: dict[str, tuple[str, str]] = {}

    async def alloc_address(self, network_id, address_pool, preferred=""):
        self.calls.append(("alloc", network_id, preferred))
        ip = (
            ipaddress.ip_address(preferred)
            if preferred
            else next(h for h in self.net.hosts() if h not in self.used)
        )
        self.used.add(ip)
        return f"{ip}/{self.net.prefixlen}"

    async def release_address(self, network_id, address):
        self.calls.append(("release", network_id, address))
        self.used.discard(ipaddress.ip_address(address))

    async def create_endpoint(self, spec: EndpointSpec):
        self.port += 1
        c, o = f"vport{self.port}", f"vvport{self.port}"
        mac = mac_from_ip(spec.ip_address)
        await asyncio.to_thread(
            ip_,
            "-n",
            self.netns,
            "link",
            "add",
            c,
            "mtu",
            "1450",
            "address",
            mac,
            "type",
            "veth",
            "peer",
            "name",
            o,
        )
        await asyncio.to_thread(ip_, "-n", self.netns, "link", "set", o, "up")
        ep = PluggedEndpoint(spec.state_id, spec.ip_address, mac, c)
        self.eps[spec.state_id] = ep
        if self.kv is not None:  # the endpoint state netmaster would write
            st = {"id": spec.state_id, "netID": spec.net.net_id, "endpointID": spec.endpoint_id,
                  "serviceName": spec.net.group, "ipAddress": spec.ip_address, "epCommonName": ""}  # fmt: skip
            await self.kv.put(keys.ep_state(spec.state_id), json.dumps(st))
        self.calls.append(("create", spec.state_id, spec.ip_address))
        return ep

    async def delete_endpoint(self, spec: EndpointSpec):
        ep = self.eps.pop(spec.state_id, None)
        self.calls.append(("delete", spec.state_id, spec.ip_address))
        if self.kv is not None:
            await self.kv.delete(keys.ep_state(spec.state_id))
        if ep:
            o = "v" + ep.port_name
            await asyncio.to_thread(
                subprocess.run, ["ip", "-n", self.netns, "link", "del", o], capture_output=True
            )
            # the address stays allocated: Docker's ReleaseAddress frees it (KeepAddress)

    async def get_endpoint(self, state_id):
        return self.eps.get(state_id)

    async def record_container(self, state_id, name, container_id, labels=None, aliases=None):
        self.named[state_id] = (name, container_id)


async def until(pred, timeout=20.0, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = await pred()
        if v:
            return v
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _plugin_bed(etcd_kv, tdk_netns, docker_host_factory, sync_networks: bool = True):
    netns, base = tdk_netns
    net = f"tdk-{uuid.uuid4().hex[:5]}"  # a "-" in the name, like test-net
    grp = f"{net}g"
    state = {
        "id": f"{net}.default", "tenant": "default", "networkName": net, "nwType": "data",
        "pktTagType": "vxlan", "pktTag": 1, "extPktTag": 5001,
        "subnetIP": "10.77.1.0", "subnetLen": 24, "gateway": "10.77.1.254",
    }  # fmt: skip
    await etcd_kv.put(keys.net_state(f"{net}.default"), json.dumps(state))
    epg = {"id": f"{grp}:default", "groupName": grp, "tenantName": "default", "networkName": net}
    await etcd_kv.put(keys.epg_state(f"{grp}:default"), json.dumps(epg))
    sock = base / "np" / "netplugin.sock"
    dh = await asyncio.to_thread(docker_host_factory, netns, base, str(sock))
    backend = VethBackend(netns, "10.77.1.0/24", "10.77.1.254", etcd_kv)
    plugin = DockerPlugin(
        etcd_kv,
        backend,
        socket_path=str(sock),
        docker_host=dh.host_url,
        resync=2.0,
        sync_networks=sync_networks,
    )
    task = asyncio.create_task(plugin.run())
    await plugin.ready.wait()
    try:
        yield dh, plugin, backend, net, grp, etcd_kv
    finally:
        await asyncio.to_thread(dh.remove_all_containers)
        await etcd_kv.delete(keys.net_state(f"{net}.default"))
        await etcd_kv.delete(keys.epg_state(f"{grp}:default"))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def bed(etcd_kv, tdk_netns, docker_host_factory):
    async with _plugin_bed(etcd_kv, tdk_netns, docker_host_factory) as b:
        yield b


@pytest.fixture
async def bed_nosync(etcd_kv, tdk_netns, docker_host_factory):
    """The plugin serves its socket, but no sync runs: the test drives ``reconcile_once`` itself."""
    async with _plugin_bed(etcd_kv, tdk_netns, docker_host_factory, sync_networks=False) as b:
        yield b


async def test_sync_creates_networks_with_contiv_options(bed):
    dh, plugin, backend, net, grp, kv = bed
    nets = await until(lambda: _nets(dh, {net, grp}), what="docker networks created by sync")
    n = nets[net]
    assert n["Driver"] == "netplugin" and n["Scope"] == "local"
    assert n["IPAM"]["Driver"] == "netplugin"
    assert n["IPAM"]["Config"] == [{"Subnet": "10.77.1.0/24", "Gateway": "10.77.1.254"}]
    assert n["IPAM"]["Options"] == {"tenant": "default", "network": net}
    assert n["Options"] == {"tenant": "default", "encap": "vxlan", "pkt-tag": "5001"}
    assert nets[grp]["IPAM"]["Options"] == {"tenant": "default", "network": net, "group": grp}
    # contiv network deleted -> docker network removed on this host
    await kv.delete(keys.epg_state(f"{grp}:default"))
    await until(lambda: _gone(dh, grp), what="docker network removed")


async def _nets(dh, names):
    nets = await asyncio.to_thread(dh.networks)
    if not names <= set(nets):
        return None
    return {
        name: (await asyncio.to_thread(dh.api, "GET", f"/networks/{nets[name]['Id']}"))[1] for name in names
    }


async def _gone(dh, name):
    return name not in await asyncio.to_thread(dh.networks)


async def test_docker_run_gets_contiv_address_mac_gateway_and_cleanup(bed):
    dh, plugin, backend, net, grp, kv = bed
    await until(lambda: _nets(dh, {net}), what="network")
    await asyncio.to_thread(dh.import_busybox)
    cid = await asyncio.to_thread(dh.run, "tdkc1", net)
    assert cid
    addr = await asyncio.to_thread(dh.exec, "tdkc1", "ip", "-o", "-4", "addr", "show", "eth0")
    assert "10.77.1.1/24" in addr
    link = await asyncio.to_thread(dh.exec, "tdkc1", "ip", "link", "show", "eth0")
    assert "02:02:0a:4d:01:01" in link and "mtu 1450" in link
    route = await asyncio.to_thread(dh.exec, "tdkc1", "ip", "route")
    assert "default via 10.77.1.254" in route
    # group network: address from the group's pool id
    await asyncio.to_thread(dh.run, "tdkc2", grp)
    assert ("alloc", f"{net}:{grp}.default", "") in backend.calls
    # explicit --ip is reserved, not just echoed
    await asyncio.to_thread(dh.run, "tdkc3", net, "--ip", "10.77.1.50")
    assert ("alloc", f"{net}.default", "10.77.1.50") in backend.calls
    # docker rm -f: endpoint deleted, veth gone, each address released exactly once (by Docker's
    # ReleaseAddress after DeleteEndpoint; the gateway never)
    await asyncio.to_thread(dh.docker, "rm", "-f", "tdkc1", "tdkc2", "tdkc3")
    assert backend.eps == {}
    assert {ipaddress.ip_address(a) for a in ("10.77.1.1", "10.77.1.2", "10.77.1.50")}.isdisjoint(
        backend.used
    )
    released = sorted(c[2] for c in backend.calls if c[0] == "release")
    assert released == sorted(["10.77.1.1", "10.77.1.2", "10.77.1.50"]), released
    links = subprocess.run(["ip", "-n", dh.netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "vport" not in links


async def test_network_rm_refused_while_attached_then_synced_away(bed):
    dh, plugin, backend, net, grp, kv = bed
    await until(lambda: _nets(dh, {net}), what="network")
    await asyncio.to_thread(dh.import_busybox)
    await asyncio.to_thread(dh.run, "tdkc9", net)
    r = await asyncio.to_thread(dh.docker_rc, "network", "rm", net)
    assert r.returncode != 0 and "active endpoints" in r.stderr
    # contiv state gone while a container is attached: docker refuses, sync retries until it can
    await kv.delete(keys.net_state(f"{net}.default"))
    await asyncio.sleep(1.0)
    assert net in await asyncio.to_thread(dh.networks)
    await asyncio.to_thread(dh.docker, "rm", "-f", "tdkc9")
    await until(lambda: _gone(dh, net), timeout=30, what="network removed after container left")


async def test_join_records_container_name_and_id(bed):
    """After Join the plugin finds the container of the endpoint through the engine and hands its
    name and id to the backend (the agent sends them to netmaster /plugin/updateEndpoint; DNS
    answers over the data path are tested in tests/e2e/test_docker_seed.py)."""
    dh, plugin, backend, net, grp, kv = bed
    await until(lambda: _nets(dh, {net, grp}), what="networks")
    await asyncio.to_thread(dh.import_busybox)
    c1 = await asyncio.to_thread(dh.run, "tdkd1", net)
    c2 = await asyncio.to_thread(dh.run, "tdkd2", grp)

    async def named():
        return {v[0]: v[1] for v in backend.named.values()} if len(backend.named) >= 2 else None

    got = await until(named, what="container names recorded")
    assert got == {"tdkd1": c1, "tdkd2": c2}
    assert all(sid.startswith(f"{net}.default-") for sid in backend.named)


async def test_sync_keeps_unconfirmed_new_network_and_removes_deleted_ones(bed_nosync):
    """A network created on this engine before its group is in etcd (a creator that makes the
    Docker network first; netmaster itself now does so only after its commit). A sync pass in that
    window must not delete it (a recorded docknet id would go stale); a network whose etcd object
    is deleted still goes, and an orphan (object never committed) goes once its grace period on
    the engine's clock is over."""
    dh, plugin, backend, net, grp, kv = bed_nosync
    engine = DockerClient(dh.host_url)
    sync = DockerNetworkSync(kv, engine)  # default grace (60 s)
    g2, g3 = f"{net}h", f"{net}i"
    try:
        assert await sync.reconcile_once()
        have = await asyncio.to_thread(dh.networks)
        assert {net, grp} <= set(have) and g2 not in have
        # step 1: the group's network, straight through the Engine API; no etcd group yet
        body = network_create_body("netplugin", tenant="default", network=net, group=g2,
                                   subnet="10.77.1.0/24", gateway="10.77.1.254", pkt_tag=5001)  # fmt: skip
        g2_id = await engine.create_network(body)
        assert await sync.reconcile_once()  # a pass inside the window
        have = await asyncio.to_thread(dh.networks)
        assert g2 in have and have[g2]["Id"] == g2_id, "sync deleted a not-yet-committed network"
        # step 2: the commit; the pass adopts that very network
        epg = {"id": f"{g2}:default", "groupName": g2, "tenantName": "default", "networkName": net}
        await kv.put(keys.epg_state(f"{g2}:default"), json.dumps(epg))
        assert await sync.reconcile_once()
        assert (await asyncio.to_thread(dh.networks))[g2]["Id"] == g2_id
        # etcd objects deleted (seen before, so confirmed): removed at once, young as they are
        await kv.delete(keys.epg_state(f"{g2}:default"))
        await kv.delete(keys.epg_state(f"{grp}:default"))
        assert await sync.reconcile_once()
        have = await asyncio.to_thread(dh.networks)
        assert g2 not in have and grp not in have and net in have
        # an orphan never committed: kept within its grace, removed after it without any etcd event
        sync.grace = 3.0
        body = network_create_body("netplugin", tenant="default", network=net, group=g3,
                                   subnet="10.77.1.0/24", gateway="10.77.1.254", pkt_tag=5001)  # fmt: skip
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await engine.create_network(body)
        sync.synced.clear()
        task = asyncio.create_task(sync.run())  # resync 30 s: only the grace timer triggers a pass
        try:
            async with asyncio.timeout(10):
                await sync.synced.wait()  # the first pass (etcd snapshot)
            if loop.time() - t0 < sync.grace - 0.5:  # (unless this machine stalled past the grace)
                assert g3 in await asyncio.to_thread(dh.networks), "orphan removed within its grace"
            await until(lambda: _gone(dh, g3), timeout=15, what="orphan removed after its grace period")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert net in await asyncio.to_thread(dh.networks)
    finally:
        await kv.delete(keys.epg_state(f"{g2}:default"))
        await engine.close()
