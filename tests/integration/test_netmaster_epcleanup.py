"""``DELETE /debug/epcleanup/tenant/{tenant}/{category}/{id}`` and the policy inspect endpoints list,
on a real netmaster process and a real etcd.

The owning host's netplugin is represented by a plain HTTP listener on 127.0.0.1 registered under
``/contiv.io/service/netplugin/`` with the endpoints' host name: it records the reclaim requests
netmaster sends (``CONTIVPY_NETPLUGIN_DEBUG_PORT`` points netmaster at it)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.etcd

NET = {"networkName": "tchnet", "tenantName": "default", "encap": "vxlan", "subnet": "10.77.1.0/24"}


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_DELETE(self):  # noqa: N802 (http.server naming)
        type(self).seen.append(self.path)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def plugin_host():
    class Rec(_Recorder):
        seen: list[str] = []

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Rec)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], Rec.seen
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def _etcd_json(etcd_server, key: str):
    out = etcd_server.etcdctl("get", key, "--print-value-only")
    return json.loads(out) if out.strip() else None


def _ep(nm, name: str, host: str, group: str = "", net: str = "tchnet") -> dict:
    body = {
        "TenantName": "default",
        "NetworkName": net,
        "ServiceName": group,
        "EndpointID": name,
        "ConfigEP": {"Container": name, "Host": host, "ServiceName": group},
    }
    return nm.json("POST", "/plugin/createEndpoint", body)["EndpointConfig"]


def test_epcleanup_categories_release_and_reclaim(netmaster_factory, etcd_server, plugin_host):
    port, seen = plugin_host
    nm = netmaster_factory(env={"CONTIVPY_NETPLUGIN_DEBUG_PORT": str(port)})
    info = {"ServiceName": "netplugin", "Role": "", "Version": "", "TTL": 10}
    info |= {"HostAddr": "127.0.0.1", "Port": 9002, "Hostname": "tchhost1"}
    etcd_server.etcdctl("put", "/contiv.io/service/netplugin/127.0.0.1:9002", json.dumps(info))
    nm.json("POST", "/api/v1/networks/default:tchnet/", NET)
    nm.json(
        "POST", "/api/v1/networks/default:tchnet2/", dict(NET, networkName="tchnet2", subnet="10.77.2.0/24")
    )
    nm.json("POST", "/api/v1/policys/default:tchp/", {"policyName": "tchp", "tenantName": "default"})
    group = {"groupName": "tchweb", "networkName": "tchnet", "tenantName": "default", "policies": ["tchp"]}
    nm.json("POST", "/api/v1/endpointGroups/default:tchweb/", group)
    w1, w2 = _ep(nm, "tchw1", "tchhost1", "tchweb"), _ep(nm, "tchw2", "tchhost1", "tchweb")
    p1 = _ep(nm, "tchp1", "tchhost1")
    orphan = _ep(nm, "tcho1", "tchnohost")  # its host has no netplugin registered
    other = _ep(nm, "tchx1", "tchhost1", net="tchnet2")

    # policy inspect lists the endpoints of the groups that use the policy
    oper = nm.json("GET", "/api/v1/inspect/policys/default:tchp/")["Oper"]
    assert oper["numEndpoints"] == 2
    assert sorted(e["endpointID"] for e in oper["endpoints"]) == ["tchw1", "tchw2"]
    assert {e["ipAddress"][0] for e in oper["endpoints"]} == {w1["ipAddress"], w2["ipAddress"]}

    # bad category: clear error, nothing touched
    st, _, body = nm.request("DELETE", "/debug/epcleanup/tenant/default/host/tchhost1")
    assert (st, body) == (500, "invalid category host\n")
    assert _etcd_json(etcd_server, "/contiv.io/state/eps/" + w1["id"]) is not None

    # group: both group endpoints go, their addresses come back, the host is asked to reclaim
    out = nm.json("DELETE", "/debug/epcleanup/tenant/default/group/tchweb")
    assert out == {"endpoints": sorted([w1["id"], w2["id"]]), "reclaimed": sorted([w1["id"], w2["id"]])}
    assert sorted(seen) == sorted(f"/debug/reclaimEndpoint/{e['id']}" for e in (w1, w2))
    assert _etcd_json(etcd_server, "/contiv.io/state/eps/" + w1["id"]) is None
    epg = _etcd_json(etcd_server, "/contiv.io/state/endpointGroups/tchweb:default")
    assert epg["epCount"] == 0
    net = _etcd_json(etcd_server, "/contiv.io/state/nets/tchnet.default")
    assert net["epCount"] == 2  # p1 and orphan left
    assert "numEndpoints" not in nm.json("GET", "/api/v1/inspect/policys/default:tchp/")["Oper"]

    # ep by endpoint id; unknown host: deleted, not reclaimed
    out = nm.json("DELETE", "/debug/epcleanup/tenant/default/ep/tcho1")
    assert out == {"endpoints": [orphan["id"]], "reclaimed": []}
    # net: the rest of the network; the other network's endpoint stays
    seen.clear()
    out = nm.json("DELETE", "/debug/epcleanup/tenant/default/net/tchnet")
    assert out == {"endpoints": [p1["id"]], "reclaimed": [p1["id"]]}
    assert seen == [f"/debug/reclaimEndpoint/{p1['id']}"]
    net = _etcd_json(etcd_server, "/contiv.io/state/nets/tchnet.default")
    assert (net["epCount"], net.get("epAddrCount", 0)) == (0, 0)
    assert _etcd_json(etcd_server, "/contiv.io/state/eps/" + other["id"]) is not None
    # nothing left to clean: empty answer; the addresses are handed out again
    assert nm.json("DELETE", "/debug/epcleanup/tenant/default/net/tchnet") == {
        "endpoints": [],
        "reclaimed": [],
    }
    assert _ep(nm, "tchw3", "tchhost1", "tchweb")["ipAddress"] == w1["ipAddress"]
