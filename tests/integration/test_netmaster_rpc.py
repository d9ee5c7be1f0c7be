"""The ofnet-master JSON-RPC 1.0 server of a real netmaster (registered as netmaster.rpc):
RegisterNode / EndpointAdd / EndpointDel / UnRegisterNode, garbage input, /debug/ofnet dump."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.etcd


def rpc_port(etcd_server) -> int:
    keys = etcd_server.etcdctl("get", "--prefix", "--keys-only", "/contiv.io/service/netmaster.rpc/").split()
    assert len(keys) == 1
    return int(keys[0].rsplit(":", 1)[1])


def call(sock_file, sock, method, params, mid):
    sock.sendall(json.dumps({"method": method, "params": params, "id": mid}).encode())
    return json.loads(sock_file.readline())


def test_jsonrpc_master(netmaster, etcd_server):
    port = rpc_port(etcd_server)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("r")
        node = {"HostAddr": "10.9.9.1", "HostPort": 9002}
        assert call(f, s, "OfnetMaster.RegisterNode", [node], 1) == {"id": 1, "result": True, "error": None}
        ep = {"EndpointID": "10.1.1.2:default", "IpAddr": "10.1.1.2", "OriginatorIp": "10.9.9.1"}
        assert call(f, s, "OfnetMaster.EndpointAdd", [ep], 2)["result"] is True
        bad = call(f, s, "OfnetMaster.NoSuch", [{}], 3)
        assert bad["result"] is None and "can't find method" in bad["error"]
        assert call(f, s, "OfnetMaster.RegisterNode", ["x"], 4)["error"] == "invalid OfnetNode"
        dump = netmaster.json("GET", "/debug/ofnet")
        assert dump["AgentDb"] == {"10.9.9.1:9002": node}
        assert dump["EndpointDb"]["10.1.1.2:default"]["IpAddr"] == "10.1.1.2"
        assert dump["MyPort"] == port
        assert call(f, s, "OfnetMaster.EndpointDel", [ep], 5)["result"] is True
        assert call(f, s, "OfnetMaster.UnRegisterNode", [node], 6)["result"] is True
    dump = netmaster.json("GET", "/debug/ofnet")
    assert dump["AgentDb"] == {} and dump["EndpointDb"] == {}
    # garbage on a fresh connection closes only that connection
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\xff" * 10 + b"]]]" * 10)
    assert netmaster.request("GET", "/version")[0] == 200
