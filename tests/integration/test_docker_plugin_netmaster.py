"""The plugin socket of a real netplugin agent (own OVS, real etcd, real netmaster), driven with the
exact calls dockerd sends (docs/original.md R8.3-8.12). No dockerd here (``--docker-host none``):
the Docker network id -> contiv network mapping comes from the docknet record netmaster writes in
docker mode. Checks the replies AND the allocations in netmaster's state (the original leaked the
address of a failed CreateEndpoint and could not ReleaseAddress at all).
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

NETID = "39ceb7208859a1530691372426ce7fd39aa7475e980fdd77096a1ddd6828985e"
EP1 = "0123456789abcdef" * 4


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(self._path)


def call(sock: str, method: str, body) -> tuple[int, object]:
    c = _UnixConn(sock)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        c.request("POST", f"/{method}", data, {"Content-Type": "application/vnd.docker.plugins.v1.2+json"})
        r = c.getresponse()
        raw = r.read().decode()
        try:
            return r.status, json.loads(raw)
        except json.JSONDecodeError:
            return r.status, raw
    finally:
        c.close()


@pytest.fixture(scope="module")
def agent():
    from tests.fixtures.docker import _wait_testbed_free
    from tests.fixtures.testbed import Testbed

    _wait_testbed_free()
    with Testbed(1) as bed:
        h = bed.hosts[1]
        h.start_netplugin()
        bed.netctl("network", "create", "--encap", "vlan", "--pkt-tag", "100", "--subnet", "10.1.1.0/24",
                   "--gateway", "10.1.1.254", "vnet")  # fmt: skip
        bed.netctl("group", "create", "-ip-pool", "10.1.1.100-10.1.1.110", "vnet", "g1")
        docknet = {"id": "default.vnet.", "tenantName": "default", "networkName": "vnet", "serviceName": "",
                   "docknetUUID": NETID}  # fmt: skip
        bed.etcdctl("put", "/contiv.io/oper/docknet/default.vnet.", json.dumps(docknet))
        yield bed, h


def net_state(bed) -> dict:
    return json.loads(bed.etcdctl("get", "/contiv.io/state/nets/vnet.default", "--print-value-only"))


def test_transcript_sequence_against_real_netmaster(agent):
    bed, h = agent
    s = h.plugin_socket
    assert call(s, "Plugin.Activate", b"") == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
    st, pool = call(s, "IpamDriver.RequestPool", {"AddressSpace": "GlobalDefault", "Pool": "10.1.1.0/24",
                    "SubPool": "", "Options": {"network": "vnet", "tenant": "default"}, "V6": False})  # fmt: skip
    assert (st, pool) == (
        200,
        {"Error": "", "PoolID": "vnet.default|10.1.1.0/24", "Pool": "10.1.1.0/24", "Data": None},
    )
    gw = {
        "PoolID": pool["PoolID"],
        "Address": "10.1.1.254",
        "Options": {"RequestAddressType": "com.docker.network.gateway"},
    }
    assert call(s, "IpamDriver.RequestAddress", gw) == (
        200,
        {"Error": "", "Address": "10.1.1.254/24", "Data": None},
    )
    st, addr = call(
        s, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None}
    )
    assert (st, addr) == (200, {"Error": "", "Address": "10.1.1.1/24", "Data": None})
    assert net_state(bed)["epAddrCount"] == 1
    ce = {"NetworkID": NETID, "EndpointID": EP1, "Interface": {"Address": "10.1.1.1/24", "AddressIPv6": "", "MacAddress": ""},
          "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}}  # fmt: skip
    assert call(s, "NetworkDriver.CreateEndpoint", ce) == (
        200,
        {"Err": "", "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "02:02:0a:01:01:01"}},
    )
    st, join = call(
        s, "NetworkDriver.Join", {"NetworkID": NETID, "EndpointID": EP1, "SandboxKey": "/x", "Options": {}}
    )
    assert st == 200 and join["Gateway"] == "10.1.1.254" and join["InterfaceName"]["DstPrefix"] == "eth"
    port = join["InterfaceName"]["SrcName"]
    assert port.startswith("vport") and port in h.links()
    assert "v" + port in h.ports("contivVlanBridge")
    st = net_state(bed)
    assert (st["epCount"], st["epAddrCount"]) == (1, 1)  # the reserved address is not counted twice
    for m in ("NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.EndpointOperInfo",
              "NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"):  # fmt: skip
        st_, b = call(s, m, {"NetworkID": NETID, "EndpointID": EP1, "Options": {}})
        assert st_ == 200 and b["Err"] == "", (m, b)
    assert call(s, "IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.1.1.1"}) == (
        200,
        {"Error": ""},
    )
    assert call(s, "IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.1.1.254"}) == (
        200,
        {"Error": ""},
    )
    assert call(s, "IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]}) == (200, {"Error": ""})
    assert call(s, "NetworkDriver.DeleteNetwork", {"NetworkID": NETID}) == (200, {"Err": ""})
    st = net_state(bed)
    assert (st["epCount"], st["epAddrCount"]) == (0, 0)
    assert port not in h.links() and "v" + port not in h.ports("contivVlanBridge")
    # the gateway stays reserved: the next address is .1 again, never .254
    st_, a = call(s, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None})
    assert a["Address"] == "10.1.1.1/24"
    assert call(s, "IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.1.1.1"})[0] == 200
    assert net_state(bed)["epAddrCount"] == 0


def test_failed_create_endpoint_rollback_releases_address(agent):
    bed, h = agent
    s = h.plugin_socket
    pool_id = "vnet.default|10.1.1.0/24"
    st, a = call(s, "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": None})
    assert st == 200 and net_state(bed)["epAddrCount"] == 1
    st, b = call(s, "NetworkDriver.CreateEndpoint",
                 {"NetworkID": "nonexistent-uuid", "EndpointID": "e2", "Interface": {"Address": a["Address"]}})  # fmt: skip
    assert st == 500 and "Could not get network name" in b["Err"]
    # dockerd's rollback: ReleaseAddress must really free it in netmaster (the original leaked it)
    ip = a["Address"].split("/")[0]
    assert call(s, "IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": ip}) == (200, {"Error": ""})
    assert net_state(bed)["epAddrCount"] == 0


def test_group_pool_allocates_from_the_group_and_releases(agent):
    bed, h = agent
    s = h.plugin_socket
    st, pool = call(s, "IpamDriver.RequestPool",
                    {"Pool": "10.1.1.0/24", "Options": {"network": "vnet", "tenant": "default", "group": "g1"}})  # fmt: skip
    assert pool["PoolID"] == "vnet:g1.default|10.1.1.0/24"
    st, a = call(s, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None})
    assert (st, a["Address"]) == (200, "10.1.1.100/24")
    assert call(s, "IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.1.1.100"}) == (
        200,
        {"Error": ""},
    )
    st, a = call(s, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": None})
    assert a["Address"] == "10.1.1.100/24"  # freed above, first-fit gives it again
    call(s, "IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.1.1.100"})


def test_errors_from_netmaster_come_back_once(agent):
    bed, h = agent
    s = h.plugin_socket
    st, b = call(
        s,
        "IpamDriver.RequestAddress",
        {"PoolID": "nosuch.default|10.9.0.0/24", "Address": "", "Options": None},
    )
    assert st == 500 and list(b) == ["Err"] and b["Err"]
    st, b = call(s, "NetworkDriver.Bogus", {})
    assert (st, b) == (404, "404 page not found\n")
    assert call(s, "Plugin.Activate", b"")[0] == 200
