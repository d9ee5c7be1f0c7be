"""The Docker plugin socket alone: every call as dockerd sends it, and the bad-input matrix.

Real unix socket, real etcd (network/EPG state written as netmaster writes it); the agent side is
a recording ``EndpointBackend`` that allocates first-fit like netmaster, so the tests can check
exactly what was allocated, plugged and released. The same calls against the real netmaster and
agent run in test_docker_plugin_netmaster.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid

import aiohttp
import pytest

from contivpy.common.errors import ExternalServiceError
from contivpy.common.netaddr import mac_from_ip
from contivpy.model import keys
from contivpy.netplugin.docker.backend import EndpointSpec, PluggedEndpoint
from contivpy.netplugin.docker.handlers import PluginHandlers
from contivpy.netplugin.docker.resolver import NetworkResolver
from contivpy.netplugin.docker.server import PluginServer

pytestmark = pytest.mark.etcd

DOCKER_CT = "application/vnd.docker.plugins.v1.2+json"
PFX = "tdk"


class RecordingBackend:
    """First-fit allocator + endpoint table, recording every call (stands for agent+netmaster)."""

    def __init__(self, subnet: str, gateway: str) -> None:
        self.net = ipaddress.ip_network(subnet)
        self.used = {self.net.network_address, self.net.broadcast_address, ipaddress.ip_address(gateway)}
        self.eps: dict[str, PluggedEndpoint] = {}
        self.calls: list[tuple] = []
        self.port = 0
        self.fail_create = False

    async def alloc_address(self, network_id, address_pool, preferred=""):
        self.calls.append(("alloc", network_id, address_pool, preferred))
        if preferred:
            ip = ipaddress.ip_address(preferred)
        else:
            ip = next(h for h in self.net.hosts() if h not in self.used)
        self.used.add(ip)
        return f"{ip}/{self.net.prefixlen}"

    async def release_address(self, network_id, address):
        self.calls.append(("release", network_id, address))
        self.used.discard(ipaddress.ip_address(address))

    async def create_endpoint(self, spec: EndpointSpec):
        self.calls.append(("create", spec.state_id, spec.ip_address))
        await asyncio.sleep(0.05)
        if self.fail_create:
            raise ExternalServiceError("ovs: cannot add port")
        self.port += 1
        ep = PluggedEndpoint(
            spec.state_id, spec.ip_address, mac_from_ip(spec.ip_address), f"vport{self.port}"
        )
        self.eps[spec.state_id] = ep
        return ep

    async def delete_endpoint(self, spec: EndpointSpec):
        self.calls.append(("delete", spec.state_id, spec.ip_address))
        self.eps.pop(spec.state_id, None)  # the address stays allocated until ReleaseAddress

    async def get_endpoint(self, state_id):
        await asyncio.sleep(0.01)  # like a KV read: lets a concurrent duplicate interleave
        return self.eps.get(state_id)


@pytest.fixture
async def plugin(etcd_kv, tmp_path_factory):
    tenant = f"{PFX}{uuid.uuid4().hex[:6]}"
    net = {
        "id": f"net1.{tenant}",
        "tenant": tenant,
        "networkName": "net1",
        "nwType": "data",
        "subnetIP": "10.1.1.0",
        "subnetLen": 24,
        "gateway": "10.1.1.254",
        "networkTag": "tag-net1",
    }
    await etcd_kv.put(keys.net_state(f"net1.{tenant}"), json.dumps(net))
    epg = {"id": f"web:{tenant}", "groupName": "web", "tenantName": tenant, "networkName": "net1"}
    await etcd_kv.put(keys.epg_state(f"web:{tenant}"), json.dumps(epg))
    docknet = {"tenantName": tenant, "networkName": "net1", "serviceName": "", "docknetUUID": "d" * 64}
    await etcd_kv.put(keys.docknet_oper(f"{tenant}.net1."), json.dumps(docknet))
    backend = RecordingBackend("10.1.1.0/24", "10.1.1.254")
    handlers = PluginHandlers(etcd_kv, backend, NetworkResolver(etcd_kv))
    sock = tmp_path_factory.mktemp(PFX) / "plugins" / "netplugin.sock"
    server = PluginServer(handlers, str(sock))
    await server.start()
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock)))

    async def call(method: str, body, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body).encode()
        async with session.post(
            f"http://docker/{method}", data=data, headers={"Content-Type": DOCKER_CT}
        ) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except json.JSONDecodeError:
                return r.status, text

    class P:
        pass

    p = P()
    p.call, p.backend, p.tenant, p.kv, p.sock, p.handlers = call, backend, tenant, etcd_kv, sock, handlers
    p.netid = "d" * 64
    yield p
    await session.close()
    await server.stop()
    await etcd_kv.delete_prefix(keys.net_state(f"net1.{tenant}"))
    await etcd_kv.delete_prefix(keys.epg_state(f"web:{tenant}"))
    await etcd_kv.delete_prefix(keys.docknet_oper(f"{tenant}."))


async def test_socket_dir_mode_and_activate(plugin):
    assert oct(plugin.sock.parent.stat().st_mode & 0o777) == "0o700"
    assert await plugin.call("Plugin.Activate", None, raw=b"") == (
        200,
        {"Implements": ["NetworkDriver", "IpamDriver"]},
    )
    assert await plugin.call("NetworkDriver.GetCapabilities", {}) == (
        200,
        {"Err": "", "Scope": "local", "ConnectivityScope": "global"},
    )
    assert await plugin.call("IpamDriver.GetCapabilities", {}) == (
        200,
        {"Error": "", "RequiresMACAddress": False, "RequiresRequestReplay": False},
    )
    assert await plugin.call("IpamDriver.GetDefaultAddressSpaces", {}) == (
        200,
        {"Error": "", "LocalDefaultAddressSpace": "", "GlobalDefaultAddressSpace": ""},
    )


async def test_unknown_method_404(plugin):
    status, body = await plugin.call("NetworkDriver.Bogus", {})
    assert status == 404 and body == "404 page not found\n"


async def _netcreate(plugin, group=""):
    opts = {"network": "net1", "tenant": plugin.tenant}
    if group:
        opts["group"] = group
    st, pool = await plugin.call(
        "IpamDriver.RequestPool",
        {"AddressSpace": "", "Pool": "10.1.1.0/24", "SubPool": "", "Options": opts, "V6": False},
    )
    assert st == 200, pool
    st, gw = await plugin.call(
        "IpamDriver.RequestAddress",
        {
            "PoolID": pool["PoolID"],
            "Address": "10.1.1.254",
            "Options": {"RequestAddressType": "com.docker.network.gateway"},
        },
    )
    assert (st, gw) == (200, {"Error": "", "Address": "10.1.1.254/24", "Data": None})
    st, body = await plugin.call(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": plugin.netid,
            "Options": {"com.docker.network.generic": {"tenant": plugin.tenant}},
            "IPv4Data": [
                {"AddressSpace": "", "Pool": "10.1.1.0/24", "Gateway": "10.1.1.254/24", "AuxAddresses": None}
            ],
            "IPv6Data": None,
        },
    )
    assert (st, body) == (200, {"Err": ""})
    return pool


async def _container_start(plugin, pool_id, epid):
    st, addr = await plugin.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": None}
    )
    assert st == 200, addr
    body = {
        "NetworkID": plugin.netid,
        "EndpointID": epid,
        "Interface": {"Address": addr["Address"], "AddressIPv6": "", "MacAddress": ""},
        "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []},
    }
    st, ce = await plugin.call("NetworkDriver.CreateEndpoint", body)
    assert st == 200, ce
    st, join = await plugin.call(
        "NetworkDriver.Join",
        {
            "NetworkID": plugin.netid,
            "EndpointID": epid,
            "SandboxKey": "/var/run/docker/netns/x",
            "Options": {},
        },
    )
    assert st == 200, join
    for m in ("NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.EndpointOperInfo"):
        st, b = await plugin.call(m, {"NetworkID": plugin.netid, "EndpointID": epid, "Options": {}})
        assert st == 200 and b["Err"] == ""
    return addr["Address"], ce, join


async def _container_stop(plugin, pool_id, epid, ip):
    for m in (
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
    ):
        assert await plugin.call(m, {"NetworkID": plugin.netid, "EndpointID": epid}) == (200, {"Err": ""})
    return await plugin.call("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": ip})


async def test_full_lifecycle_as_dockerd(plugin):
    pool = await _netcreate(plugin)
    assert pool == {
        "Error": "",
        "PoolID": f"net1.{plugin.tenant}|10.1.1.0/24",
        "Pool": "10.1.1.0/24",
        "Data": None,
    }
    epid = "0123456789abcdef" * 4
    addr, ce, join = await _container_start(plugin, pool["PoolID"], epid)
    assert addr == "10.1.1.1/24"
    assert ce == {
        "Err": "",
        "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "02:02:0a:01:01:01"},
    }
    assert join == {
        "Err": "",
        "InterfaceName": {"SrcName": "vport1", "DstName": "", "DstPrefix": "eth"},
        "Gateway": "10.1.1.254",
        "GatewayIPv6": "",
        "StaticRoutes": None,
        "DisableGatewayService": False,
    }
    assert ("create", f"net1.{plugin.tenant}-{epid}", "10.1.1.1") in plugin.backend.calls
    # the original's ReleaseAddress failed here; ours frees the address, once: DeleteEndpoint keeps
    # it allocated (no other container gets it in between), ReleaseAddress frees it
    assert await _container_stop(plugin, pool["PoolID"], epid, "10.1.1.1") == (200, {"Error": ""})
    assert [c for c in plugin.backend.calls if c[0] == "release"] == [
        ("release", f"net1.{plugin.tenant}", "10.1.1.1")
    ]
    assert ipaddress.ip_address("10.1.1.1") not in plugin.backend.used
    plugin.backend.calls.clear()
    # network removal: gateway ReleaseAddress + ReleasePool + DeleteNetwork never free the gateway
    assert await plugin.call(
        "IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.1.1.254"}
    ) == (
        200,
        {"Error": ""},
    )
    assert await plugin.call("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]}) == (200, {"Error": ""})
    assert await plugin.call("NetworkDriver.DeleteNetwork", {"NetworkID": plugin.netid}) == (200, {"Err": ""})
    assert not [c for c in plugin.backend.calls if c[0] == "release"]


async def test_group_pool_id_and_alloc_network_id(plugin):
    st, pool = await plugin.call(
        "IpamDriver.RequestPool",
        {"Pool": "10.1.1.0/24", "Options": {"network": "net1", "tenant": plugin.tenant, "group": "web"}},
    )
    assert st == 200 and pool["PoolID"] == f"net1:web.{plugin.tenant}|10.1.1.0/24"
    st, a = await plugin.call(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None}
    )
    assert st == 200 and plugin.backend.calls[-1] == ("alloc", f"net1:web.{plugin.tenant}", "10.1.1.0/24", "")


async def test_release_after_failed_create_endpoint_really_releases(plugin):
    pool = await _netcreate(plugin)
    st, addr = await plugin.call(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None}
    )
    ip = addr["Address"].split("/")[0]
    plugin.backend.fail_create = True
    st, body = await plugin.call(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": plugin.netid, "EndpointID": "e1", "Interface": {"Address": addr["Address"]}},
    )
    assert (st, body) == (500, {"Err": "ovs: cannot add port"})
    # dockerd rolls back with ReleaseAddress: the address must come back (the original leaked it)
    assert await plugin.call("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": ip}) == (
        200,
        {"Error": ""},
    )
    assert ("release", f"net1.{plugin.tenant}", ip) in plugin.backend.calls
    assert ipaddress.ip_address(ip) not in plugin.backend.used


async def test_duplicate_endpoint_refused_nothing_allocated(plugin):
    pool = await _netcreate(plugin)
    addr, _, _ = await _container_start(plugin, pool["PoolID"], "dup1")
    before = list(plugin.backend.calls)
    st, body = await plugin.call(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": plugin.netid, "EndpointID": "dup1", "Interface": {"Address": "10.1.1.9/24"}},
    )
    assert st == 500 and body == {"Err": "endpoint dup1 already exists"}
    assert plugin.backend.calls == before
    # two concurrent creates of the same new id: exactly one is plugged
    body = {"NetworkID": plugin.netid, "EndpointID": "dup2", "Interface": {"Address": "10.1.1.10/24"}}
    r1, r2 = await asyncio.gather(
        plugin.call("NetworkDriver.CreateEndpoint", body), plugin.call("NetworkDriver.CreateEndpoint", body)
    )
    assert sorted([r1[0], r2[0]]) == [200, 500]
    assert len([c for c in plugin.backend.calls if c[:2] == ("create", f"net1.{plugin.tenant}-dup2")]) == 1


BAD = [
    (
        "NetworkDriver.CreateEndpoint",
        b"{not json",
        "invalid character 'n' looking for beginning of object key string",
    ),
    ("NetworkDriver.CreateEndpoint", b"[1,2]", "json: cannot unmarshal array into Go value of type"),
    (
        "NetworkDriver.CreateEndpoint",
        b'{"NetworkID": "nonexistent-uuid", "EndpointID": "e2", "Interface": {"Address": "10.9.9.9/24"}}',
        "Could not get network name",
    ),
    (
        "NetworkDriver.CreateEndpoint",
        b'{"NetworkID": "x", "EndpointID": "e2", "Interface": null}',
        "Interface.Address is required",
    ),
    (
        "NetworkDriver.CreateEndpoint",
        b'{"NetworkID": 5, "EndpointID": "e2"}',
        "json: cannot unmarshal number into Go struct field CreateEndpointRequest.NetworkID of type string",
    ),
    (
        "NetworkDriver.Join",
        b'{"NetworkID": "DOCKNET", "EndpointID": "nonexistent-ep", "SandboxKey": "/x"}',
        "Could not find created endpoint",
    ),
    (
        "IpamDriver.RequestAddress",
        b'{"PoolID": "10.1.1.0/24", "Address": "", "Options": null}',
        "not a contiv pool",
    ),
    ("IpamDriver.RequestAddress", b'{"PoolID": "net1.t|notacidr", "Options": null}', "bad pool"),
    ("IpamDriver.ReleaseAddress", b'{"PoolID": "foreign-pool", "Address": "10.1.1.1"}', "not a contiv pool"),
    ("IpamDriver.ReleasePool", b'{"PoolID": "foreign-pool"}', "not a contiv pool"),
    ("IpamDriver.RequestPool", b'{"Pool": "10.1.1.0/24", "Options": null}', "options tenant/network"),
    (
        "IpamDriver.RequestPool",
        b'{"Pool": "10.1.1.0/24", "Options": {"network": "nosuch", "tenant": "nosuchtenant"}}',
        "network nosuch not found",
    ),
]


@pytest.mark.parametrize("method,raw,msg", BAD, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(BAD)])
async def test_bad_input_gives_one_err_and_server_keeps_serving(plugin, method, raw, msg):
    raw = raw.replace(b"DOCKNET", plugin.netid.encode())
    before = list(plugin.backend.calls)
    st, body = await plugin.call(method, None, raw=raw)
    assert st == 500, body
    assert isinstance(body, dict) and list(body) == ["Err"] and msg in body["Err"], body
    assert plugin.backend.calls == before  # nothing allocated, plugged or released
    assert (await plugin.call("Plugin.Activate", None, raw=b""))[0] == 200


async def test_resolves_network_by_engine_free_name_lookup(plugin):
    net = await plugin.handlers.resolver.from_name(f"web/{plugin.tenant}")
    assert (net.network, net.group, net.tenant) == ("net1", "web", plugin.tenant)
    net = await plugin.handlers.resolver.from_name(f"net1/{plugin.tenant}")
    assert (net.network, net.group) == ("net1", "")
    assert await plugin.handlers.resolver.from_name("nosuch") is None


async def test_twenty_parallel_endpoints_unique(plugin):
    pool = await _netcreate(plugin)
    res = await asyncio.gather(*[_container_start(plugin, pool["PoolID"], f"par{i}") for i in range(20)])
    ips = [r[0] for r in res]
    ports = [r[2]["InterfaceName"]["SrcName"] for r in res]
    assert len(set(ips)) == 20 and len(set(ports)) == 20


ON_LINK = [{"Destination": "0.0.0.0/0", "RouteType": 1, "NextHop": ""}]


@pytest.mark.parametrize(
    ("encap", "routed", "routes"),
    [
        ("vxlan", False, ON_LINK),
        ("vxlan", True, ON_LINK),
        ("vlan", False, None),
        ("vlan", True, ON_LINK),
    ],
)
async def test_join_without_gateway(plugin, encap, routed, routes):
    """No gateway: a vxlan network's container gets ``default dev eth0`` (connected route) and no
    docker_gwbridge (DisableGatewayService), so its DNS queries reach the agent; a vlan network
    keeps Docker's default behaviour in bridge mode, and gets the on-link route while the agent
    routes (vlrouter answers ARP for every off-subnet address and NATs through contivh0v)."""
    plugin.backend.routed = lambda: routed
    key = keys.net_state(f"net1.{plugin.tenant}")
    net = json.loads((await plugin.kv.get(key)).value)
    net.pop("gateway")
    net["pktTagType"] = encap
    await plugin.kv.put(key, json.dumps(net))
    pool = await _netcreate(plugin)
    _, _, join = await _container_start(plugin, pool["PoolID"], "fedcba9876543210" * 4)
    assert join["Gateway"] == ""
    assert join["StaticRoutes"] == routes
    assert join["DisableGatewayService"] is (routes is not None)
