"""Service-LB providers on a real netmaster process + real etcd (docs/original.md §2.3, §2.4):
/plugin/updateEndpoint start/die, /plugin/deleteEndpoint and service create/update keep
/contiv.io/state/serviceLB/<svc>:<tenant> .providers and /contiv.io/state/provider/<svc>:<tenant>
in step with the persisted candidates /contiv.io/state/svcProvider/<tenant>/<endpoint id>."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.etcd

T = "tspt"


def etcd_json(etcd_server, key: str):
    out = etcd_server.etcdctl("get", key, "--print-value-only")
    return json.loads(out) if out.strip() else None


def providers(etcd_server, svc: str) -> list[str] | None:
    st = etcd_json(etcd_server, f"/contiv.io/state/provider/{svc}:{T}")
    return None if st is None else st["Providers"]


def state_dump(etcd_server) -> list:
    out = etcd_server.etcdctl("get", "--prefix", "/contiv.io/state/", "-w", "json")
    kvs = json.loads(out).get("kvs") or []
    return sorted((kv["key"], kv["mod_revision"], kv["value"]) for kv in kvs)


class Bed:
    def __init__(self, nm) -> None:
        self.nm = nm
        self.eps: dict[str, tuple[str, str]] = {}  # name -> (state id, ip)

    def service(self, name: str, selectors: list[str], net: str = "tspnet", status: int = 200) -> None:
        body = {
            "tenantName": T,
            "serviceName": name,
            "networkName": net,
            "selectors": selectors,
            "ports": ["80:8080:TCP"],
        }
        st, _, text = self.nm.request("POST", f"/api/v1/serviceLBs/{T}:{name}/", body)
        assert st == status, text

    def endpoint(self, name: str, net: str = "tspnet") -> tuple[str, str]:
        body = {
            "TenantName": T,
            "NetworkName": net,
            "EndpointID": f"tsp{name}",
            "ConfigEP": {"Container": f"tsp{name}", "Host": "tsph1", "IPAddress": ""},
        }
        ep = self.nm.json("POST", "/plugin/createEndpoint", body)["EndpointConfig"]
        self.eps[name] = (ep["id"], ep["ipAddress"])
        return self.eps[name]

    def update(self, name: str, labels, event: str = "start", **extra):
        sid, ip = self.eps[name]
        body = {
            "EndpointID": sid,
            "EPCommonName": f"tspc-{name}",
            "ContainerID": f"cid{name}",
            "Labels": labels,
            "Event": event,
            "IPAddress": ip,
            "Tenant": T,
            "Network": sid.split(".", 1)[0],
            **extra,
        }
        return self.nm.request("POST", "/plugin/updateEndpoint", body)

    def delete(self, name: str, net: str = "tspnet") -> None:
        body = {"TenantName": T, "NetworkName": net, "EndpointID": f"tsp{name}"}
        self.nm.json("POST", "/plugin/deleteEndpoint", body)


@pytest.fixture
def bed(netmaster):
    netmaster.json("POST", f"/api/v1/tenants/{T}/", {"tenantName": T})
    for net, subnet in (("tspnet", "20.9.1.0/24"), ("tspnet2", "20.9.2.0/24")):
        netmaster.json(
            "POST",
            f"/api/v1/networks/{T}:{net}/",
            {"tenantName": T, "networkName": net, "encap": "vxlan", "subnet": subnet},
        )
    return Bed(netmaster)


def test_start_matches_services_created_before_and_after(bed, etcd_server):
    bed.service("tspbefore", ["app=web"])
    assert providers(etcd_server, "tspbefore") == []
    sid1, ip1 = bed.endpoint("a")
    _, ip2 = bed.endpoint("b")
    assert bed.update("a", {"app": "web", "tier": "front"})[0] == 200
    assert bed.update("b", {"app": "db"})[0] == 200  # not matching
    assert providers(etcd_server, "tspbefore") == [ip1]
    svc = etcd_json(etcd_server, f"/contiv.io/state/serviceLB/tspbefore:{T}")
    assert svc["providers"] == {
        f"{ip1}:{T}": {
            "EpIDKey": sid1,
            "IPAddress": ip1,
            "ContainerID": "cida",
            "Container": "tspc-a",
            "Tenant": T,
            "Network": "tspnet",
            "Labels": {"app": "web", "tier": "front"},
        }
    }
    cand = etcd_json(etcd_server, f"/contiv.io/state/svcProvider/{T}/{sid1}")
    assert cand["Labels"] == {"app": "web", "tier": "front"} and cand["IPAddress"] == ip1
    ep = etcd_json(etcd_server, f"/contiv.io/state/eps/{sid1}")
    assert (ep["labels"], ep["containerId"], ep["epCommonName"]) == (
        {"app": "web", "tier": "front"},
        "cida",
        "tspc-a",
    )
    # services created later match the running containers
    bed.service("tspafter", ["app=web"])
    bed.service("tspboth", ["app=web", "tier=front"])
    bed.service("tspnomatch", ["app=web", "tier=back"])
    bed.service("tspdb", ["app=db"])
    bed.service("tspothernet", ["app=web"], net="tspnet2")  # same labels, other network
    assert providers(etcd_server, "tspafter") == [ip1]
    assert providers(etcd_server, "tspboth") == [ip1]
    assert providers(etcd_server, "tspnomatch") == []
    assert providers(etcd_server, "tspdb") == [ip2]
    assert providers(etcd_server, "tspothernet") == []
    # update changing the selectors re-matches
    bed.service("tspnomatch", ["tier=front"])
    assert providers(etcd_server, "tspnomatch") == [ip1]
    # REST inspect and netctl service inspect show the providers as EndpointOper entries
    oper = bed.nm.json("GET", f"/api/v1/inspect/serviceLBs/{T}:tspafter/")["Oper"]
    assert oper["numProviders"] == 1 and oper["serviceVip"]
    assert oper["providers"] == [
        {
            "containerID": "cida",
            "containerName": "tspc-a",
            "endpointID": "tspa",
            "homingHost": "tsph1",
            "ipAddress": [ip1, ""],
            "labels": "map[app:web tier:front]",
            "macAddress": ep["macAddress"],
            "network": f"tspnet.{T}",
            "serviceName": "tspafter",  # the service's name, as the original 1.2.1 shows it (docs/upgrade.md)
        }
    ]
    r = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.nm.url]
        + ["service", "inspect", "-t", T, "tspafter"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ),
    )
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["Oper"]["numProviders"] == 1
    assert shown["Oper"]["providers"][0]["ipAddress"] == [ip1, ""]


def test_die_and_delete_endpoint_remove_provider(bed, etcd_server):
    bed.service("tspweb", ["app=web"])
    sid1, ip1 = bed.endpoint("a")
    sid2, ip2 = bed.endpoint("b")
    for n in ("a", "b"):
        assert bed.update(n, {"app": "web"})[0] == 200
    assert providers(etcd_server, "tspweb") == sorted([ip1, ip2], key=lambda s: int(s.split(".")[-1]))
    assert bed.update("a", {}, event="die")[0] == 200
    assert providers(etcd_server, "tspweb") == [ip2]
    assert etcd_json(etcd_server, f"/contiv.io/state/svcProvider/{T}/{sid1}") is None
    assert bed.update("a", {}, event="die")[0] == 200  # idempotent
    bed.delete("b")  # Docker sends no die: a stopped container is a DeleteEndpoint
    assert providers(etcd_server, "tspweb") == []
    assert etcd_json(etcd_server, f"/contiv.io/state/serviceLB/tspweb:{T}")["providers"] == {}
    assert etcd_json(etcd_server, f"/contiv.io/state/svcProvider/{T}/{sid2}") is None
    bed.delete("b")  # idempotent
    bed.service("tsplater", ["app=web"])
    assert providers(etcd_server, "tsplater") == []
    assert "numProviders" not in bed.nm.json("GET", f"/api/v1/inspect/serviceLBs/{T}:tspweb/")["Oper"]
    # service delete removes both records (and the candidates stay for the other services)
    bed.nm.json("DELETE", f"/api/v1/serviceLBs/{T}:tspweb/")
    assert etcd_json(etcd_server, f"/contiv.io/state/provider/tspweb:{T}") is None
    assert etcd_json(etcd_server, f"/contiv.io/state/serviceLB/tspweb:{T}") is None


def test_concurrent_starts_and_service_create_lose_nothing(bed, etcd_server):
    bed.service("tspa", ["app=web"])
    ips = [bed.endpoint(f"c{i}")[1] for i in range(8)]

    def start(i: int):
        return bed.update(f"c{i}", {"app": "web"})[0]

    def create():
        bed.service("tspb", ["app=web"])
        return 200

    with ThreadPoolExecutor(9) as pool:
        futs = [pool.submit(start, i) for i in range(8)]
        futs.insert(4, pool.submit(create))
        assert [f.result() for f in futs] == [200] * 9
    want = sorted(ips, key=lambda s: int(s.split(".")[-1]))
    assert providers(etcd_server, "tspa") == want
    assert providers(etcd_server, "tspb") == want
    gen = etcd_json(etcd_server, f"/contiv.io/state/svcProviderGen/{T}")
    assert gen["tenant"] == T and gen["generation"] >= 10  # 2 creates + 8 starts, each one bump


def test_bad_input_is_refused_and_leaves_etcd_unchanged(bed, etcd_server):
    bed.service("tspweb", ["app=web"])
    sid, ip = bed.endpoint("a")
    before = state_dump(etcd_server)
    cases = [
        (
            dict(Labels="app=web"),
            "json: cannot unmarshal string into Go struct field UpdateEndpointRequest.Labels of type map[string]string",
        ),
        (
            dict(Labels={"app": 1}),
            "json: cannot unmarshal number into Go struct field UpdateEndpointRequest.Labels of type string",
        ),
        (dict(Event="boom"), "invalid event 'boom'"),
        (
            dict(Tenant=5),
            "json: cannot unmarshal number into Go struct field UpdateEndpointRequest.Tenant of type string",
        ),
        (dict(EndpointID=f"tspnet.{T}-nosuch"), f"endpoint tspnet.{T}-nosuch not found"),
        (dict(IPAddress="20.9.1.200"), "IPAddress 20.9.1.200 does not match endpoint"),
        (dict(Network="tspnet2"), "Network tspnet2 does not match endpoint"),
        (dict(EndpointID="", ContainerID="", EPCommonName="", IPAddress="20.9.1.201"), "not found"),
    ]
    for extra, msg in cases:
        st, _, text = bed.update("a", {"app": "web"}, **extra)
        assert st == 500 and msg in text and "Traceback" not in text, (extra, text)
    assert state_dump(etcd_server) == before
    assert providers(etcd_server, "tspweb") == []
    # still serving: a good request afterwards works
    assert bed.update("a", {"app": "web"})[0] == 200
    assert providers(etcd_server, "tspweb") == [ip]


def test_leader_start_prunes_providers_of_vanished_endpoints(bed, etcd_server, netmaster_factory):
    bed.service("tspweb", ["app=web"])
    sid1, ip1 = bed.endpoint("a")
    _, ip2 = bed.endpoint("b")
    for n in ("a", "b"):
        assert bed.update(n, {"app": "web"})[0] == 200
    # a netmaster that died between the deleteEndpoint commit and the provider removal
    etcd_server.etcdctl("del", f"/contiv.io/state/eps/{sid1}")
    bed.nm.stop()
    nm2 = netmaster_factory()
    deadline = time.monotonic() + 20
    while providers(etcd_server, "tspweb") != [ip2] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert providers(etcd_server, "tspweb") == [ip2]
    assert etcd_json(etcd_server, f"/contiv.io/state/svcProvider/{T}/{sid1}") is None
    assert nm2.json("GET", f"/api/v1/inspect/serviceLBs/{T}:tspweb/")["Oper"]["numProviders"] == 1
