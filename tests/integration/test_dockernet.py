"""Netmaster's Docker networks against a real dockerd (fixtures/docker.py) and a trivial remote
network+IPAM plugin served here on a unix socket (enough for Docker to accept driver ``netplugin``).

Also: the FIX for a failed Docker create (network rolled back) needs no dockerd (dead socket).
"""

import contextlib
import http.server
import json
import os
import socketserver
import tempfile
import threading

import pytest

from contivpy.common.errors import ContivError, ExternalServiceError
from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.model.state import DocknetState
from contivpy.netmaster import dockernet
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud

CALLS: list[tuple[str, dict]] = []


def _plugin_reply(path: str, req: dict) -> dict:
    if path == "/Plugin.Activate":
        return {"Implements": ["NetworkDriver", "IpamDriver"]}
    if path == "/NetworkDriver.GetCapabilities":
        return {"Scope": "local"}
    if path == "/IpamDriver.GetDefaultAddressSpaces":
        return {"LocalDefaultAddressSpace": "tal", "GlobalDefaultAddressSpace": "talg"}
    if path == "/IpamDriver.RequestPool":
        return {"PoolID": "tal|" + req.get("Pool", ""), "Pool": req.get("Pool", ""), "Data": {}}
    if path == "/IpamDriver.RequestAddress":
        plen = req["PoolID"].rsplit("/", 1)[1]
        addr = req.get("Address") or req["PoolID"].split("|")[1].rsplit(".", 1)[0] + ".254"
        return {"Address": f"{addr}/{plen}", "Data": {}}
    return {}


class _H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def address_string(self):
        return "unix"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = json.loads(body) if body.strip() else {}
        CALLS.append((self.path, req))
        data = json.dumps(_plugin_reply(self.path, req)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def tal_plugin():
    d = tempfile.mkdtemp(prefix="tal-", dir="/tmp")
    path = os.path.join(d, "plugin.sock")
    srv = _S(path, _H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield path
    finally:
        srv.shutdown()
        srv.server_close()
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(d)


@pytest.fixture
def dockerd(tdk_netns, docker_host_factory, tal_plugin):
    netns, base = tdk_netns
    return docker_host_factory(netns, base, plugin_socket=tal_plugin)


@pytest.fixture
async def docker_client(dockerd):
    c = dockernet.DockerClient(dockerd.host_url)
    yield c
    await c.close()


@pytest.mark.docker
@pytest.mark.root
async def test_network_and_group_docker_networks(dockerd, docker_client):
    kv = MemoryKV()
    crud = Crud(kv, Config(cluster_mode="docker", docker_host=dockerd.host_url), docker=docker_client)
    await crud.ensure_defaults("bridge")
    await crud.create_or_update("tenant", "talt", {"tenantName": "talt"})
    await crud.create_or_update(
        "network",
        "default:tal-net",
        {
            "networkName": "tal-net",
            "tenantName": "default",
            "encap": "vxlan",
            "subnet": "10.103.1.0/24",
            "gateway": "10.103.1.254",
        },
    )
    await crud.create_or_update(
        "network",
        "talt:tal-n2",
        {
            "networkName": "tal-n2",
            "tenantName": "talt",
            "encap": "vlan",
            "pktTag": 100,
            "subnet": "20.1.1.0/24",
        },
    )
    await crud.create_or_update(
        "endpointGroup",
        "default:tal-web",
        {"groupName": "tal-web", "tenantName": "default", "networkName": "tal-net"},
    )
    nets = {n["Name"]: n for n in _api(dockerd, "/networks")}
    assert {"tal-net", "tal-n2/talt", "tal-web"} <= set(nets)
    n = _api(dockerd, "/networks/" + nets["tal-net"]["Id"])
    assert n["Driver"] == "netplugin" and n["IPAM"]["Driver"] == "netplugin"
    assert n["Options"] == {"encap": "vxlan", "pkt-tag": "1", "tenant": "default"}
    assert n["IPAM"]["Options"] == {"network": "tal-net", "tenant": "default"}
    assert n["IPAM"]["Config"][0]["Subnet"] == "10.103.1.0/24"
    assert n["IPAM"]["Config"][0]["Gateway"] == "10.103.1.254"
    n2 = _api(dockerd, "/networks/" + nets["tal-n2/talt"]["Id"])
    assert n2["Options"]["pkt-tag"] == "100" and n2["Options"]["encap"] == "vlan"
    web = _api(dockerd, "/networks/" + nets["tal-web"]["Id"])
    assert web["IPAM"]["Options"] == {"group": "tal-web", "network": "tal-net", "tenant": "default"}
    rec = DocknetState.from_json((await kv.get(keys.docknet_oper("default.tal-net."))).value)
    assert rec.docknetUUID == nets["tal-net"]["Id"] and rec.networkName == "tal-net"
    rec = DocknetState.from_json((await kv.get(keys.docknet_oper("default.tal-net.tal-web"))).value)
    assert rec.serviceName == "tal-web" and rec.docknetUUID == nets["tal-web"]["Id"]
    assert any(p == "/IpamDriver.RequestPool" and r["Options"].get("tenant") == "talt" for p, r in CALLS)

    # idempotent: ensuring again adopts the existing network
    again = await dockernet.create_docknet(
        docker_client, kv, "netplugin", _net_state(await kv.get(keys.net_state("tal-net.default")))
    )
    assert again == nets["tal-net"]["Id"]
    # reconcile recreates a network removed behind our back
    dockerd.docker("network", "rm", "tal-n2/talt")
    assert await dockernet.reconcile_docker_networks(kv, docker_client, crud.config) == 1
    assert "tal-n2/talt" in {n["Name"] for n in _api(dockerd, "/networks")}
    # ... and refreshes a docknet record that names another id (copy replaced) or is missing
    stale = DocknetState(
        id="default.tal-net.", tenantName="default", networkName="tal-net", docknetUUID="f" * 64
    )
    await kv.put(keys.docknet_oper("default.tal-net."), stale.to_json())
    await kv.delete(keys.docknet_oper("default.tal-net.tal-web"))
    assert await dockernet.reconcile_docker_networks(kv, docker_client, crud.config) == 0
    rec = DocknetState.from_json((await kv.get(keys.docknet_oper("default.tal-net."))).value)
    assert rec.docknetUUID == nets["tal-net"]["Id"] and rec.networkName == "tal-net"
    rec = DocknetState.from_json((await kv.get(keys.docknet_oper("default.tal-net.tal-web"))).value)
    assert rec.docknetUUID == nets["tal-web"]["Id"] and rec.serviceName == "tal-web"

    await crud.delete("endpointGroup", "default:tal-web")
    await crud.delete("network", "default:tal-net")
    await crud.delete("network", "talt:tal-n2")
    left = {n["Name"] for n in _api(dockerd, "/networks")}
    assert not left & {"tal-net", "tal-n2/talt", "tal-web"}
    assert await kv.get(keys.docknet_oper("default.tal-net.")) is None
    await dockernet.delete_docknet(docker_client, kv, "default", "tal-net")  # already gone: fine


def _api(dockerd, path):
    status, body = dockerd.api("GET", path)
    assert status == 200, body
    return body


def _net_state(kv):
    from contivpy.model.state import NetworkState

    return NetworkState.from_json(kv.value)


@pytest.mark.docker
@pytest.mark.root
async def test_name_used_by_another_driver(dockerd, docker_client):
    kv = MemoryKV()
    dockerd.docker(
        "network",
        "create",
        "-d",
        "netplugin",
        "--ipam-driver",
        "netplugin",
        "--subnet",
        "10.9.0.0/24",
        "tal-taken",
    )
    from contivpy.model.state import NetworkState

    st = NetworkState(
        id="tal-taken.default",
        tenant="default",
        networkName="tal-taken",
        pktTagType="vlan",
        pktTag=5,
        subnetIP="10.9.0.0",
        subnetLen=24,
    )
    assert await dockernet.create_docknet(docker_client, kv, "netplugin", st)  # same driver: adopted
    with pytest.raises(ExternalServiceError, match="network name used by another driver"):
        await dockernet.create_docknet(docker_client, kv, "othernet", st)
    dockerd.docker("network", "rm", "tal-taken")


async def test_failed_docker_create_rolls_back_network():
    """FIX: Docker unreachable -> error returned and nothing of the network is left in the store."""
    kv = MemoryKV()
    dead = "unix:///tmp/tal-no-such-docker.sock"
    crud = Crud(kv, Config(cluster_mode="docker", docker_host=dead), docker=dockernet.DockerClient(dead))
    await crud.ensure_defaults("bridge")
    before_vx = (await kv.get(keys.OPER_AUTO_VXLAN)).value
    with pytest.raises(ContivError) as ei:
        await crud.create_or_update(
            "network",
            "default:tal-x",
            {"networkName": "tal-x", "tenantName": "default", "encap": "vxlan", "subnet": "10.77.0.0/24"},
        )
    assert "Cannot connect to the Docker daemon at unix:///tmp/tal-no-such-docker.sock" in str(ei.value)
    assert await kv.get(keys.net_state("tal-x.default")) is None
    assert await kv.get(keys.obj_key("network", "default:tal-x")) is None
    tenant = json.loads((await kv.get(keys.obj_key("tenant", "default"))).value)
    assert "Networks" not in tenant["link-sets"]
    assert (await kv.get(keys.OPER_AUTO_VXLAN)).value == before_vx  # VNI released
    await crud.docker.close()
