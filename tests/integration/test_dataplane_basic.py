"""Data plane acceptance: two hosts (netns, own OVS userspace datapath, br-phy underlay), real etcd, real
netmaster, one real netplugin process per host; "containers" are netns holding the agent-made vportN.

Covers: cross-host ping and TCP both ways over VXLAN, flows in ofnet's tables, ARP answered by OVS flows
(proxy mode), isolation between networks, two tenants with the same subnet, VLAN network over the uplink,
endpoint delete on every host, network delete, oper/ovs-driver records in etcd, unknown network refused.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.testbed import http_json, wait_for

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


def create_ep(host, network: str, ep_id: str, tenant: str = "default", group: str = "", timeout=30) -> dict:
    """An endpoint through the agent's debug API (the Docker plugin's path), no container: its info."""
    st, info = http_json(
        "POST",
        host.debug_url + "/debug/endpoints",
        {"tenant": tenant, "network": network, "group": group, "endpointID": ep_id},
        timeout=timeout,
    )
    assert st == 200, info
    return info


def make_ep(host, network: str, ep_id: str, tenant: str = "default", group: str = ""):
    info = create_ep(host, network, ep_id, tenant, group)
    c = host.container(
        info["port_name"], f"{info['ip_address']}/{info['prefix_len']}", info["gateway"] or None
    )
    return info, c


def delete_ep(host, network: str, ep_id: str, tenant: str = "default", timeout=30):
    st, out = http_json(
        "DELETE", f"{host.debug_url}/debug/endpoints/{tenant}/{network}/{ep_id}", timeout=timeout
    )
    assert st == 200, out


def oper(bed, ep_state_id: str) -> dict | None:
    v = bed.etcdctl("get", f"/contiv.io/oper/eps/{ep_state_id}", "--print-value-only").strip()
    return json.loads(v) if v else None


def has_flow(host, *needles: str, bridge: str = "contivVxlanBridge") -> bool:
    return any(all(n in f for n in needles) for f in host.flows(bridge))


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.start_all()
        yield b


def test_two_hosts_ping_and_tcp_over_vxlan(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    out = bed.netctl("network", "create", "--subnet", "10.103.1.0/24", "test-net")
    assert "Creating network default:test-net" in out
    i1, c1 = make_ep(h1, "test-net", "ep1")
    i2, c2 = make_ep(h2, "test-net", "ep2")
    assert i1["mac_address"] == "02:02:" + ":".join(f"{int(x):02x}" for x in i1["ip_address"].split("."))
    assert i1["port_name"].startswith("vport") and i1["ovs_port"] == "v" + i1["port_name"]
    # oper records written by the owning host, with its VTEP
    o1 = oper(bed, i1["id"])
    assert o1["homingHost"] == "h1" and o1["vtepIP"] == h1.ip and o1["portName"] == i1["port_name"]
    drv = json.loads(bed.etcdctl("get", "/contiv.io/oper/ovs-driver/h1", "--print-value-only"))
    assert i1["id"] in drv["LocalEpInfo"] and drv["currPortNum"] >= 1
    # remote endpoint flows arrive on the other host (table 4 dst group, table 9 MAC -> VTEP)
    wait_for(lambda: has_flow(h2, "table=9", f"dl_dst={i1['mac_address']}"), 10, what="remote flow on h2")
    wait_for(lambda: has_flow(h1, "table=9", f"dl_dst={i2['mac_address']}"), 10, what="remote flow on h1")
    assert has_flow(h1, "table=4", f"nw_dst={i1['ip_address']}")
    assert has_flow(h1, "table=1", f"in_port={i1['ofport']}")
    assert has_flow(h1, "table=9", f"dl_dst={i1['mac_address']}", f"output:{i1['ofport']}")
    # connectivity both ways
    assert c1.ping(c2.ip), "ping h1->h2 failed"
    assert c2.ping(c1.ip), "ping h2->h1 failed"
    assert c1.tcp_ok(c2), "TCP h1->h2 failed"
    assert c2.tcp_ok(c1, port=7778), "TCP h2->h1 failed"
    # ARP was answered in proxy mode, by the remote endpoint's arp_responder flow in h1's OVS
    # (not by the agent): the container learnt the peer's 02:02 MAC
    neigh = c1.exec("ip", "neigh", "show", c2.ip)
    assert i2["mac_address"] in neigh
    assert has_flow(h1, "table=10", f"arp_tpa={i2['ip_address']}", "IN_PORT")
    st, drv = http_json("GET", h1.debug_url + "/inspect/driver")
    assert drv["vxlan"]["Stats"]["arp_replies"] == 0
    assert drv["vxlan"]["VtepTable"] == {h2.ip: drv["vxlan"]["VtepTable"][h2.ip]}
    assert i1["id"] in drv["vxlan"]["EndpointDb"] and i2["id"] in drv["vxlan"]["EndpointDb"]


def test_docker_plugin_socket_served(bed):
    h1 = bed.hosts[1]
    out = subprocess.run(
        ["curl", "-s", "--unix-socket", h1.plugin_socket, "-XPOST", "http://x/Plugin.Activate", "-d", ""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == {"Implements": ["NetworkDriver", "IpamDriver"]}


def test_networks_isolated(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("iso-a", "10.104.1.0/24")
    bed.create_network("iso-b", "10.104.2.0/24")
    _, a1 = make_ep(h1, "iso-a", "isoa1")
    _, a2 = make_ep(h2, "iso-a", "isoa2")
    _, b2 = make_ep(h2, "iso-b", "isob2")
    assert a1.ping(a2.ip)
    # a1 has no route to iso-b's subnet: add one pointing at its own interface, traffic must still not pass
    a1.exec("ip", "route", "add", "10.104.2.0/24", "dev", "eth0")
    assert not a1.ping(b2.ip, count=1, budget=2)


def test_two_tenants_same_subnet(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("same", "10.105.1.0/24", tenant="t1")
    bed.create_network("same", "10.105.1.0/24", tenant="t2")
    i11, c11 = make_ep(h1, "same", "t1e1", tenant="t1")
    i12, c12 = make_ep(h2, "same", "t1e2", tenant="t1")
    i21, c21 = make_ep(h1, "same", "t2e1", tenant="t2")
    i22, c22 = make_ep(h2, "same", "t2e2", tenant="t2")
    assert i11["ip_address"] == i21["ip_address"]  # same address in both tenants
    assert c11.ping(c12.ip) and c21.ping(c22.ip)
    assert c11.tcp_ok(c12, port=7801) and c21.tcp_ok(c22, port=7802)


def test_vlan_network_over_uplink(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("vnet", "10.106.1.0/24", encap="vlan", pktTag=100)
    i1, c1 = make_ep(h1, "vnet", "vl1")
    i2, c2 = make_ep(h2, "vnet", "vl2")
    assert i1["bridge"] == "contivVlanBridge"
    assert h1.vsctl("get", "port", i1["ovs_port"], "tag").strip() == "100"
    assert c1.ping(c2.ip) and c2.ping(c1.ip)
    assert c1.tcp_ok(c2, port=7901)


def test_delete_endpoint_and_network(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("del-net", "10.107.1.0/24")
    i1, c1 = make_ep(h1, "del-net", "d1")
    i2, c2 = make_ep(h2, "del-net", "d2")
    assert c1.ping(c2.ip)
    wait_for(lambda: has_flow(h2, f"dl_dst={i1['mac_address']}"), 10, what="remote flow")
    # "docker" removes the container first; then DeleteEndpoint
    bed_c = h1.containers.pop(h1.containers.index(c1))
    subprocess.run(["ip", "netns", "del", bed_c.name], check=True)
    delete_ep(h1, "del-net", "d1")
    assert i1["ovs_port"] not in h1.ports("contivVxlanBridge")
    assert i1["ovs_port"] not in h1.links() and i1["port_name"] not in h1.links()
    assert not has_flow(h1, f"dl_dst={i1['mac_address']}") and not has_flow(h1, f"nw_dst={i1['ip_address']}")
    wait_for(lambda: not has_flow(h2, f"dl_dst={i1['mac_address']}"), 10, what="remote flow removed on h2")
    assert oper(bed, i1["id"]) is None
    drv = json.loads(bed.etcdctl("get", "/contiv.io/oper/ovs-driver/h1", "--print-value-only"))
    assert i1["id"] not in drv["LocalEpInfo"]
    # delete the last endpoint, then the network: its flows (flood flows for its VLAN) go everywhere
    bed_c2 = h2.containers.pop(h2.containers.index(c2))
    subprocess.run(["ip", "netns", "del", bed_c2.name], check=True)
    delete_ep(h2, "del-net", "d2")
    nets = json.loads(bed.etcdctl("get", "/contiv.io/state/nets/del-net.default", "--print-value-only"))
    vlan = nets["pktTag"]
    assert has_flow(h1, "table=9", f"dl_vlan={vlan}")
    bed.delete_network("del-net")
    for h in (h1, h2):
        wait_for(lambda h=h: not has_flow(h, "table=9", f"dl_vlan={vlan},"), 10, what="network flows removed")


def test_unknown_network_refused_cleanly(bed):
    h1 = bed.hosts[1]
    before_ports = h1.ports("contivVxlanBridge")
    before_links = h1.links()
    drv_before = bed.etcdctl("get", "/contiv.io/oper/ovs-driver/h1", "--print-value-only")
    st, body = http_json(
        "POST",
        h1.debug_url + "/debug/endpoints",
        {"tenant": "default", "network": "nope", "endpointID": "x1"},
    )
    assert st == 500 and "nope.default" in body and "not found" in body and "Traceback" not in body
    assert h1.ports("contivVxlanBridge") == before_ports
    assert h1.links() == before_links
    assert bed.etcdctl("get", "/contiv.io/oper/ovs-driver/h1", "--print-value-only") == drv_before
    assert h1.netplugin.poll() is None


def test_policy_rules_from_etcd_enforced(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.netctl("network", "create", "--subnet", "10.108.1.0/24", "pnet")
    bed.netctl("policy", "create", "pol1")
    bed.netctl(
        "policy", "rule-add", "pol1", "1", "--direction", "in", "--protocol", "tcp", "--action", "deny"
    )
    bed.netctl("group", "create", "-p", "pol1", "pnet", "web")
    iw, web = make_ep(h1, "pnet", "web1", group="web")
    _, cli = make_ep(h2, "pnet", "cli1")
    assert iw["group"] == "web"
    epg = oper(bed, iw["id"])["endpointGroupId"]
    assert epg > 0
    # rule installed on every host (table 5, priority 10 + 1, dst EPG in metadata bits 1-15)
    for h in (h1, h2):
        wait_for(
            lambda h=h: has_flow(h, "table=5", "priority=11", "tcp", "actions=drop"), 10, what="deny rule"
        )
    assert cli.ping(web.ip), "ICMP is not covered by the tcp deny rule"
    assert not cli.tcp_ok(web, port=7601, budget=3), "TCP into group web must be denied"
    # a higher-priority allow for one port opens just that port
    bed.netctl(
        "policy", "rule-add", "pol1", "2", "--direction", "in", "--protocol", "tcp", "--port", "7602",
        "--priority", "2", "--action", "allow",
    )  # fmt: skip
    wait_for(lambda: has_flow(h2, "table=5", "priority=12", "tp_dst=7602"), 10, what="allow rule on h2")
    assert cli.tcp_ok(web, port=7602)
    bed.netctl("policy", "rule-rm", "pol1", "1")
    wait_for(lambda: not has_flow(h2, "table=5", "priority=11"), 10, what="deny rule removed")
    assert cli.tcp_ok(web, port=7603)


def test_reclaim_endpoint_debug_route(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.netctl("network", "create", "--subnet", "10.109.1.0/24", "rcl")
    st, info = http_json("POST", h1.debug_url + "/debug/endpoints", {"network": "rcl", "endpointID": "rc1"})
    assert st == 200
    wait_for(lambda: has_flow(h2, f"dl_dst={info['mac_address']}"), 10, what="remote flow")
    st, _ = http_json("DELETE", f"{h1.debug_url}/debug/reclaimEndpoint/{info['id']}")
    assert st == 200
    assert info["ovs_port"] not in h1.ports("contivVxlanBridge") and info["port_name"] not in h1.links()
    assert oper(bed, info["id"]) is None and not has_flow(h1, f"nw_dst={info['ip_address']}")
    wait_for(lambda: not has_flow(h2, f"dl_dst={info['mac_address']}"), 10, what="remote flow gone")
    st, _ = http_json("DELETE", f"{h1.debug_url}/debug/reclaimEndpoint/{info['id']}")
    assert st == 200  # reclaiming again is harmless


def test_arp_mode_follows_global_config(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.netctl("network", "create", "--subnet", "10.112.1.0/24", "arpnet")
    _, c1 = make_ep(h1, "arpnet", "arp1")
    _, c2 = make_ep(h2, "arpnet", "arp2")
    assert has_flow(h1, "arp,arp_op=1", "CONTROLLER")
    bed.netctl("global", "set", "--arp-mode", "flood")
    try:
        for h in (h1, h2):
            wait_for(
                lambda h=h: not has_flow(h, "arp,arp_op=1", "CONTROLLER"), 10, what="ARP punt flow removed"
            )
        c1.exec("ip", "neigh", "flush", "all")
        assert c1.ping(c2.ip), "ARP by flooding must still resolve"
    finally:
        bed.netctl("global", "set", "--arp-mode", "proxy")
    wait_for(lambda: has_flow(h1, "arp,arp_op=1", "CONTROLLER"), 10, what="ARP punt flow back")
