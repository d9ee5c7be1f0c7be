"""Host access, services and contivh1 in vlan routing mode (the original's vlrouter), on the real two-host
test bed with the BIRD ToR (BGP between the hosts' vlan uplinks) and the outside router and server.

The vlan bridge has its own host port ``contivh0v`` (docs/ovs-pipeline.md "vlan routing mode"): a
container's packet with no route in table ip leaves through it with the endpoint's private address
(pvtSubnet + 0x8000 + ofport), the host kernel delivers, forwards or NATs it; the host reaches a
container at that private address. Checks: container -> own host, the other host, the outside HTTP
server (which sees the host's address); host -> its containers; the two hosts' containers still reach
each other through the ToR (routed, TTL one lower); a service VIP with a provider on each host answers
through both; another tenant's container is not reached.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from contivpy.model import keys
from contivpy.model.state import ProviderState, ServiceLBState
from tests.fixtures.testbed import OUTSIDE_IP, http_json, router_ip, tor_ip, wait_for
from tests.integration.test_dataplane_basic import make_ep
from tests.integration.test_dataplane_hostaccess import host_ping, wget
from tests.integration.test_dataplane_infra import addr, routes
from tests.integration.test_dataplane_service import CLIENT, clients_for_each_provider, servers

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.timeout(600)]

NET, GW, TAG = "10.142.1.0/24", "10.142.1.254", 142
SID, VIP, SVC_PORT, PROV_PORT = "vlrsvc:default", "10.142.1.200", 80, 8080


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.add_outside()
        b.add_tor()
        b.netctl("global", "set", "--fwd-mode", "routing")
        b.start_all("--fwdmode", "routing")
        yield b


def pvt_ip(host, ep_id: str) -> str:
    st, drv = http_json("GET", host.debug_url + "/inspect/driver")
    assert st == 200
    return drv["vlan"]["EndpointDb"][ep_id]["HostPvtIp"]


def vl_flows(host, table: int) -> list[str]:
    return [f for f in host.flows("contivVlanBridge") if f.startswith(f"table={table},")]


def test_containers_reach_host_other_host_outside_and_each_other(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    for h in (h1, h2):
        wait_for(lambda h=h: "172.19.255.253/17" in h.exec("ip", "-o", "addr", "show", "contivh0v", check=False),
                 15, what=f"contivh0v address on {h.name}")  # fmt: skip
    bed.create_network("vlrnet", NET, encap="vlan", gateway=GW, pktTag=TAG)
    for i in (1, 2):
        bed.netctl("bgp", "create", f"h{i}", "--router-ip", f"{router_ip(i)}/24", "--as", str(65000 + i),
                   "--neighbor-as", "65000", "--neighbor", tor_ip(i))  # fmt: skip
    i1, c1 = make_ep(h1, "vlrnet", "vlr1")
    i2, c2 = make_ep(h2, "vlrnet", "vlr2")
    wait_for(lambda: any(f"nw_dst={c2.ip}" in f for f in vl_flows(h1, 7))
             and any(f"nw_dst={c1.ip}" in f for f in vl_flows(h2, 7)), 60, 0.5, "learned routes")  # fmt: skip
    out = c1.exec("ping", "-c", "2", "-W", "2", c2.ip, check=False)
    assert " 0% packet loss" in out and "ttl=63" in out, "routed through the ToR: " + out
    # host access: own host, the other host, the outside (which sees the host's address)
    assert c1.ping(h1.ip), "container -> own host"
    assert c1.ping(h2.ip) and c2.ping(h1.ip), "container -> the other host"
    url = f"http://{OUTSIDE_IP}/cgi-bin/ip"
    assert wget(c1, url) == h1.ip
    assert wget(c2, url) == h2.ip
    # the host reaches its containers at their private addresses (upper half of the private /16)
    p1 = pvt_ip(h1, i1["id"])
    assert p1.startswith("172.19.") and int(p1.split(".")[2]) >= 128
    assert host_ping(h1, p1) and host_ping(h2, pvt_ip(h2, i2["id"]))
    snat = [f for f in vl_flows(h1, 8) if "priority=100" in f]
    assert len(snat) == 1 and f"set_field:{p1}->" in snat[0] and "ip_src" in snat[0]
    # another tenant's container on the same host is not reached (no route in the asker's VRF; the
    # host has no route back into the container subnets)
    bed.create_network("vlrnet", "10.143.1.0/24", tenant="vlrt2", encap="vlan", gateway="10.143.1.254",
                       pktTag=TAG + 1)  # fmt: skip
    _, d1 = make_ep(h1, "vlrnet", "vlrd1", tenant="vlrt2")
    assert not d1.ping(c1.ip, budget=3) and not c1.ping(d1.ip, budget=3)


def test_vlan_network_without_a_gateway_reaches_host_outside_and_the_tenant(bed):
    """No gateway on a vlan network: while the agent routes, the Docker Join gives the container
    ``default dev eth0`` (test_docker_plugin_socket.py), and the agent answers its ARP for any
    address outside the subnet with the router MAC, so table ip routes it: to the host port, the
    outside (NATed to the host's address), or a learned /32 of the tenant's other network."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    c1 = h1.containers[0]  # vlrnet (10.142.1.0/24, with a gateway), same tenant
    bed.create_network("vlrnogw", "10.144.1.0/24", encap="vlan", pktTag=TAG + 2)
    i1, n1 = make_ep(h1, "vlrnogw", "vlrn1")
    _, n2 = make_ep(h2, "vlrnogw", "vlrn2")
    for n in (n1, n2):
        n.exec("ip", "route", "replace", "default", "dev", "eth0")  # what Join answers here
    assert n1.ping(h1.ip), "container -> own host"
    assert n1.ping(h2.ip), "container -> the other host"
    assert wget(n1, f"http://{OUTSIDE_IP}/cgi-bin/ip") == h1.ip
    assert host_ping(h1, pvt_ip(h1, i1["id"])), "host -> container at its private address"
    wait_for(lambda: any(f"nw_dst={n2.ip}" in f for f in vl_flows(h1, 7))
             and any(f"nw_dst={c1.ip}" in f for f in vl_flows(h2, 7)), 60, 0.5, "learned routes")  # fmt: skip
    assert n2.ping(c1.ip), "the tenant's other network, on the other host, through the ToR"
    assert n1.ping(n2.ip), "same network, across hosts"


def test_service_vip_with_a_provider_on_each_host(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    c1, c2 = h1.containers[0], h2.containers[0]
    provs = {c1.ip: "p1", c2.ip: "p2"}
    chosen = clients_for_each_provider(h1, "vlrnet", "vlrc", provs)
    try:
        with servers() as srv:
            srv.start("p1", c1.name)
            srv.start("p2", c2.name)
            lb = ServiceLBState(
                id=SID, servicename="vlrsvc", tenantname="default", subnet="vlrnet",
                ports=[f"{SVC_PORT}:{PROV_PORT}:TCP"], selectors={"app": "vlr"}, ipaddress=VIP,
            )  # fmt: skip
            bed.etcdctl("put", keys.SERVICE_LB + SID, lb.to_json())
            bed.etcdctl("put", keys.PROVIDER + SID, ProviderState(SID, sorted(provs)).to_json())
            wait_for(lambda: any(f"nw_dst={VIP}" in f and "CONTROLLER" in f for f in vl_flows(h1, 3)), 15,
                     what="service watch flow on the vlan bridge")  # fmt: skip
            for name, c in sorted(chosen.items()):
                r = subprocess.run(
                    ["ip", "netns", "exec", c.name, sys.executable, "-c", CLIENT, VIP, str(SVC_PORT)],
                    capture_output=True, text=True, timeout=30,
                )  # fmt: skip
                assert r.stdout.strip() == f"{VIP} {SVC_PORT} {name} {c.ip}", r.stdout + r.stderr
    finally:
        bed.etcdctl("del", keys.PROVIDER + SID)
        bed.etcdctl("del", keys.SERVICE_LB + SID)


def test_contivh1_on_the_vlan_bridge_routes_the_hosts_to_their_containers(bed):
    """A contivh1 infra network with encap vlan: host routes to the tenant's vlan subnets via the port,
    routed by table ip (local container) or through the ToR (the other host's, BGP learned both ways)."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    c1, c2 = h1.containers[0], h2.containers[0]
    bed.create_network("contivh1", "10.142.100.0/24", encap="vlan", nwType="infra", pktTag=150)
    via = {}
    for h in (h1, h2):
        wait_for(lambda h=h: addr(h, "contivh1"), 20, what=f"contivh1 address on {h.name}")
        via[h.idx] = addr(h, "contivh1")
        wait_for(lambda h=h: any(r.startswith(f"{NET} via {via[h.idx]} dev contivh1") for r in routes(h)),
                 20, what=f"contivh1 route on {h.name}")  # fmt: skip
    assert not any(r.startswith("10.143.1.0/24") for r in routes(h1)), "another tenant's subnet is not routed"
    assert host_ping(h1, c1.ip), "host -> its container over contivh1"
    wait_for(lambda: f"{via[1]} via" in bed.tor_routes(), 30, 0.5, "h1's contivh1 /32 on the ToR")
    assert host_ping(h1, c2.ip, budget=15), "host -> the other host's container over contivh1 and the ToR"
    assert c2.ping(via[1]), "container -> the other host's contivh1 address"
    block = "-A FORWARD -i contivh0v -o contivh1 -m comment --comment contivpy -j DROP"
    assert block in h1.exec("iptables", "-S", "FORWARD")
