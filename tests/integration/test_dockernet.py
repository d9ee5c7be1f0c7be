"""Netmaster's Docker networks against a real dockerd (fixtures/docker.py), real etcd, and a trivial
remote network+IPAM plugin served here on a unix socket (enough for Docker to accept driver
``netplugin``).

The hooks only commit etcd state; the leader-only reconciler (``netmaster/dockerrec.py``) makes the
Docker networks after the commit: Docker down at create or delete time converges once it is back,
a hook run has no Docker side effect, and a new leader's reconciler takes over (real netmasters).
"""

import asyncio
import contextlib
import http.server
import json
import os
import socketserver
import tempfile
import threading

import pytest

from contivpy.common.errors import ExternalServiceError
from contivpy.model import keys
from contivpy.model.state import DocknetState, NetworkState
from contivpy.netmaster import dockernet
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud, TxnContext
from contivpy.netmaster.dockerrec import DocknetReconciler
from contivpy.netmaster.hooks import group as group_hooks
from contivpy.netmaster.hooks import network as network_hooks
from tests.fixtures.docker import DockerHost

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


NET = {"networkName": "tal-net", "tenantName": "default", "encap": "vxlan", "subnet": "10.103.1.0/24"}


def _api(dockerd, path):
    status, body = dockerd.api("GET", path)
    assert status == 200, body
    return body


def _names(dockerd) -> set[str]:
    return {n["Name"] for n in _api(dockerd, "/networks")}


async def _until(pred, timeout: float = 60.0, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        v = await pred() if asyncio.iscoroutinefunction(pred) else pred()
        if v:
            return v
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def _running(rec: DocknetReconciler):
    task = asyncio.create_task(rec.run())
    try:
        yield rec
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _crud(kv, host_url: str) -> Crud:
    crud = Crud(kv, Config(cluster_mode="docker", docker_host=host_url))
    await crud.ensure_defaults("bridge")
    return crud


async def _record(kv, did: str) -> DocknetState | None:
    item = await kv.get(keys.docknet_oper(did))
    return None if item is None else DocknetState.from_json(item.value)


@pytest.mark.docker
@pytest.mark.root
@pytest.mark.etcd
async def test_network_and_group_docker_networks(etcd_kv, dockerd, docker_client):
    kv = etcd_kv
    crud = await _crud(kv, dockerd.host_url)
    rec = DocknetReconciler(kv, crud.config, docker=docker_client, resync=3600)
    async with _running(rec):
        await crud.create_or_update("tenant", "talt", {"tenantName": "talt"})
        await crud.create_or_update("network", "default:tal-net", {**NET, "gateway": "10.103.1.254"})
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
        await _until(lambda: {"tal-net", "tal-n2/talt", "tal-web"} <= _names(dockerd), what="networks")
        assert await rec.rec.wait_idle(30)
        nets = {n["Name"]: n for n in _api(dockerd, "/networks")}
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
        r = await _record(kv, "default.tal-net.")
        assert r.docknetUUID == nets["tal-net"]["Id"] and r.networkName == "tal-net"
        r = await _record(kv, "default.tal-net.tal-web")
        assert r.serviceName == "tal-web" and r.docknetUUID == nets["tal-web"]["Id"]
        assert any(p == "/IpamDriver.RequestPool" and q["Options"].get("tenant") == "talt" for p, q in CALLS)
        st = rec.status()
        assert st["synced"] and {v["state"] for v in st["networks"].values()} == {"ok"}

        # idempotent: ensuring again adopts the existing network
        net = NetworkState.from_json((await kv.get(keys.net_state("tal-net.default"))).value)
        assert await dockernet.ensure_network(docker_client, "netplugin", net) == nets["tal-net"]["Id"]
        # a full sync recreates a network removed behind our back, and refreshes a docknet record
        # that names another id or is missing
        dockerd.docker("network", "rm", "tal-n2/talt")
        stale = DocknetState(
            id="default.tal-net.", tenantName="default", networkName="tal-net", docknetUUID="f" * 64
        )
        await kv.put(keys.docknet_oper("default.tal-net."), stale.to_json())
        await kv.delete(keys.docknet_oper("default.tal-net.tal-web"))
        assert await rec.full_sync()
        await _until(lambda: "tal-n2/talt" in _names(dockerd), what="tal-n2/talt recreated")
        assert await rec.rec.wait_idle(30)
        r = await _record(kv, "default.tal-net.")
        assert r.docknetUUID == nets["tal-net"]["Id"] and r.networkName == "tal-net"
        r = await _record(kv, "default.tal-net.tal-web")
        assert r.docknetUUID == nets["tal-web"]["Id"] and r.serviceName == "tal-web"

        await crud.delete("endpointGroup", "default:tal-web")
        await crud.delete("network", "default:tal-net")
        await crud.delete("network", "talt:tal-n2")
        await _until(lambda: not _names(dockerd) & {"tal-net", "tal-n2/talt", "tal-web"}, what="removed")
        assert await rec.rec.wait_idle(30)
        assert not (await kv.get_prefix(keys.OPER_DOCKNET))[0]
        assert not await dockernet.remove_network(docker_client, "netplugin", "tal-net")  # gone: fine


@pytest.mark.docker
@pytest.mark.root
async def test_name_used_by_another_driver(dockerd, docker_client):
    dockerd.docker(
        "network", "create", "-d", "netplugin", "--ipam-driver", "netplugin",
        "--ipam-opt", "tenant=default", "--ipam-opt", "network=tal-taken", "--subnet", "10.9.0.0/24",
        "tal-taken",
    )  # fmt: skip
    st = NetworkState(
        id="tal-taken.default",
        tenant="default",
        networkName="tal-taken",
        pktTagType="vlan",
        pktTag=5,
        subnetIP="10.9.0.0",
        subnetLen=24,
    )
    taken = dockerd.networks()["tal-taken"]["Id"]
    assert await dockernet.ensure_network(docker_client, "netplugin", st) == taken  # same driver: adopted
    with pytest.raises(ExternalServiceError, match="network name used by another driver"):
        await dockernet.ensure_network(docker_client, "othernet", st)
    # a network of ours that no longer matches its object (another subnet) is replaced
    st.subnetIP = "10.9.1.0"
    new_id = await dockernet.ensure_network(docker_client, "netplugin", st)
    assert new_id != taken
    assert dockerd.networks()["tal-taken"]["IPAM"]["Config"][0]["Subnet"] == "10.9.1.0/24"
    # a same-named network that is not contiv's is never removed
    dockerd.docker("network", "rm", "tal-taken")
    dockerd.docker(
        "network",
        "create",
        "-d",
        "netplugin",
        "--ipam-driver",
        "netplugin",
        "--subnet",
        "10.9.2.0/24",
        "tal-taken",
    )
    assert not await dockernet.remove_network(docker_client, "netplugin", "tal-taken")
    assert "tal-taken" in dockerd.networks()
    dockerd.docker("network", "rm", "tal-taken")


@pytest.mark.docker
@pytest.mark.root
@pytest.mark.etcd
async def test_create_while_docker_down_commits_then_network_appears(etcd_kv, tdk_netns, tal_plugin):
    """Docker down: the create is committed and answered with success (the old code rolled it
    back and returned Docker's error); the Docker network appears once Docker is up, with no
    further request, and only then is the docknet record written."""
    netns, base = tdk_netns
    dh = DockerHost(netns, base, plugin_socket=tal_plugin)  # not started yet: its socket is absent
    kv = etcd_kv
    try:
        crud = await _crud(kv, dh.host_url)
        rec = DocknetReconciler(kv, crud.config, resync=3600)
        async with _running(rec):
            await crud.create_or_update("network", "default:tal-net", NET)
            await crud.create_or_update(
                "endpointGroup",
                "default:tal-web",
                {"groupName": "tal-web", "tenantName": "default", "networkName": "tal-net"},
            )
            assert await kv.get(keys.net_state("tal-net.default")) is not None
            assert await kv.get(keys.obj_key("network", "default:tal-net")) is not None

            def retrying():
                nets = rec.status()["networks"]
                return all(nets.get(n, {}).get("state") == "retrying" for n in ("tal-net", "tal-web"))

            await _until(retrying, 30, "both keys retrying")
            err = rec.status()["networks"]["tal-net"]["lastError"]
            assert f"Cannot connect to the Docker daemon at {dh.host_url}" in err
            assert await _record(kv, "default.tal-net.") is None  # only after Docker succeeded

            await asyncio.to_thread(dh.start)
            await _until(lambda: {"tal-net", "tal-web"} <= set(dh.networks()), 60, "networks after start")
            nets = dh.networks()
            await _until(lambda: rec.rec.idle(), 30, "reconciler idle")
            assert (await _record(kv, "default.tal-net.")).docknetUUID == nets["tal-net"]["Id"]
            assert (await _record(kv, "default.tal-net.tal-web")).docknetUUID == nets["tal-web"]["Id"]
    finally:
        await asyncio.to_thread(dh.stop)


@pytest.mark.docker
@pytest.mark.root
@pytest.mark.etcd
async def test_delete_while_docker_down_removed_later(etcd_kv, dockerd):
    """Docker down at delete time: the delete commits (the old code failed it: Docker unreachable)
    and the Docker network and its docknet record go once Docker is back."""
    kv = etcd_kv
    crud = await _crud(kv, dockerd.host_url)
    rec = DocknetReconciler(kv, crud.config, resync=3600)
    async with _running(rec):
        await crud.create_or_update("network", "default:tal-net", NET)
        await _until(lambda: "tal-net" in dockerd.networks(), what="network created")
        await _until(_record_of(kv, "default.tal-net."), what="docknet record")
        await asyncio.to_thread(dockerd.halt)
        await crud.delete("network", "default:tal-net")
        assert await kv.get(keys.net_state("tal-net.default")) is None
        await _until(lambda: rec.status()["networks"]["tal-net"]["state"] == "retrying", 30, "retrying")
        assert await _record(kv, "default.tal-net.") is not None  # Docker has not removed it yet
        await asyncio.to_thread(dockerd.start)
        await _until(lambda: "tal-net" not in dockerd.networks(), 60, "network removed after start")
        await _until(lambda: rec.rec.idle(), 30, "reconciler idle")
        assert await _record(kv, "default.tal-net.") is None


def _record_of(kv, did):
    async def check():
        return await _record(kv, did)

    return check


@pytest.mark.docker
@pytest.mark.root
@pytest.mark.etcd
async def test_hook_runs_have_no_docker_side_effect(etcd_kv, dockerd, docker_client):
    """Hooks are pure: running the create and delete hooks without committing (as crud does when a
    compare fails and it re-runs them) changes nothing in Docker. The old group hook created the
    Docker network before the commit; the old network delete hook removed it."""
    kv = etcd_kv
    crud = await _crud(kv, dockerd.host_url)
    rec = DocknetReconciler(kv, crud.config, docker=docker_client, resync=3600)
    async with _running(rec):
        await crud.create_or_update("network", "default:tal-net", NET)
        await _until(lambda: "tal-net" in dockerd.networks(), what="network created")
        assert await rec.rec.wait_idle(30)
    before = {n: v["Id"] for n, v in dockerd.networks().items()}
    group = {
        "groupName": "tal-web",
        "tenantName": "default",
        "networkName": "tal-net",
        "key": "default:tal-web",
    }
    for _ in range(2):  # a re-run, too
        await group_hooks.on_create(TxnContext(crud), dict(group))
        net = await crud.get("network", "default:tal-net")
        await network_hooks.on_delete(TxnContext(crud), net)
    assert {n: v["Id"] for n, v in dockerd.networks().items()} == before
    assert await kv.get(keys.epg_state("tal-web:default")) is None  # nothing committed either
    await crud.delete("network", "default:tal-net")
    dockerd.docker("network", "rm", "tal-net")


def _wait(pred, timeout: float = 60.0, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
        except (OSError, KeyError, ValueError):
            v = None
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.docker
@pytest.mark.root
@pytest.mark.etcd
def test_new_leader_reconciler_converges(netmaster_factory, etcd_server, tdk_netns, tal_plugin):
    """Real netmasters in docker mode sharing one engine. With Docker down the leader commits a
    network create and answers 200 (the old code answered Docker's error and rolled it back), showing
    the key pending in /debug/docknets; it then hands over (SIGTERM). When Docker comes back, the
    new leader's reconciler creates the network and records it, and its start-up sync removes a
    contiv network whose object is gone; a delete through the new leader removes it from Docker."""
    netns, base = tdk_netns
    dh = DockerHost(netns, base, plugin_socket=tal_plugin)
    try:
        dh.start()
        dh.docker(
            "network", "create", "-d", "netplugin", "--ipam-driver", "netplugin", "--ipam-opt", "tenant=default",
            "--ipam-opt", "network=tal-gone", "--subnet", "10.9.9.0/24", "tal-gone",
        )  # fmt: skip
        dh.halt()
        args = ["--mode", "docker", "--docker-host", dh.host_url]
        nm1 = netmaster_factory(args=args)
        nm2 = netmaster_factory(args=args)
        assert nm1.info()["leader-ip"] == f"127.0.0.1:{nm1.port}"
        body = {**NET, "encap": "vlan", "subnet": "10.103.1.0/24"}
        st, _, text = nm1.request("POST", "/api/v1/networks/default:tal-net/", body)
        assert st == 200, text
        assert json.loads(text)["networkName"] == "tal-net"

        def pending():
            nets = nm1.json("GET", "/debug/docknets")["networks"]
            return nets.get("tal-net", {}).get("state") == "retrying"

        _wait(pending, 30, "tal-net retrying on the leader")
        nm1.stop()
        _wait(lambda: nm2.info()["leader-ip"] == f"127.0.0.1:{nm2.port}", 30, "nm2 leader")
        dh.start()
        _wait(lambda: "tal-net" in dh.networks() and "tal-gone" not in dh.networks(), 60, "converged")
        net_id = dh.networks()["tal-net"]["Id"]

        def recorded():
            out = etcd_server.etcdctl("get", keys.docknet_oper("default.tal-net."), "--print-value-only")
            return out.strip() and json.loads(out)["docknetUUID"] == net_id

        _wait(recorded, 30, "docknet record")
        assert nm2.json("GET", "/debug/docknets")["networks"]["tal-net"]["state"] == "ok"
        st, _, text = nm2.request("DELETE", "/api/v1/networks/default:tal-net/")
        assert st == 200, text
        _wait(lambda: "tal-net" not in dh.networks(), 60, "tal-net removed")
        _wait(
            lambda: not etcd_server.etcdctl("get", "--prefix", keys.OPER_DOCKNET, "--keys-only").strip(), 30
        )
    finally:
        dh.stop()


@pytest.mark.docker
@pytest.mark.root
@pytest.mark.etcd
async def test_docknet_record_write_carries_the_leader_fence(etcd_kv, dockerd, docker_client):
    """The reconciler's etcd writes are leader-only: with a fence that no longer holds (a deposed
    leader), the Docker network may be made but no docknet record is written or deleted."""
    from contivpy.common.kv.base import Compare

    kv = etcd_kv
    crud = await _crud(kv, dockerd.host_url)
    await kv.put("/contiv.io/lock/tal-fence", "holder")
    lost = Compare("/contiv.io/lock/tal-fence", "value", "==", "another holder")
    rec = DocknetReconciler(kv, crud.config, docker=docker_client, fence=lambda: lost, resync=3600)
    async with _running(rec):
        await crud.create_or_update("network", "default:tal-net", NET)
        await _until(lambda: rec.status()["networks"].get("tal-net", {}).get("state") == "retrying", 30)
        assert "leadership lost" in rec.status()["networks"]["tal-net"]["lastError"]
        assert await _record(kv, "default.tal-net.") is None
    held = Compare("/contiv.io/lock/tal-fence", "value", "==", "holder")
    rec = DocknetReconciler(kv, crud.config, docker=docker_client, fence=lambda: held, resync=3600)
    async with _running(rec):
        await _until(_record_of(kv, "default.tal-net."), 30, "record written under a holding fence")
        await crud.delete("network", "default:tal-net")
        await _until(lambda: "tal-net" not in dockerd.networks(), 30, "removed")
        await _until(lambda: rec.rec.idle(), 30, "idle")
        assert await _record(kv, "default.tal-net.") is None
    await kv.delete("/contiv.io/lock/tal-fence")
