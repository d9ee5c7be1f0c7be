"""OfnetAgent in routing mode (vrouter) against a real ovs-vswitchd (netdev) in a private netns.

Three "containers" on one bridge: two networks of tenant ``default`` and one of tenant ``t2``. Oracle:
``ovs-ofctl dump-flows`` (table 7 /32s, router-MAC ARP answers, no group) and real traffic: routed
between the networks of one tenant with ARP answered by OVS (the controller is stopped), nothing between
tenants; then a live switch to bridge mode and back on the same bridge.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from contivpy.ofnet import LocalEndpoint, OfnetAgent

pytestmark = [pytest.mark.ovs, pytest.mark.root, pytest.mark.timeout(180)]
OVS_PREFIX = "tor"
BR = "contivVxlanBridge"
ROUTER = "00:00:11:11:11:11"
EPS = [  # (mac, ip/len, gateway, vlan, vni, tenant)
    ("02:02:0a:49:01:01", "10.73.1.1/24", "10.73.1.254", 1, 7301, "default"),
    ("02:02:0a:49:02:01", "10.73.2.1/24", "10.73.2.254", 2, 7302, "default"),
    ("02:02:0a:49:03:01", "10.73.3.1/24", "10.73.3.254", 3, 7303, "t2"),
]


def _ns(ns, *cmd, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


def ping(ns: str, ip: str, count: int = 2) -> bool:
    return _ns(ns, "busybox", "ping", "-c", str(count), "-W", "2", ip).returncode == 0


@pytest.fixture
async def bed(ovs_instance):
    ovs = ovs_instance
    ag = OfnetAgent(BR, "vxlan", sock=ovs.listen_socket(0), echo_interval=1.0, fwd_mode="routing", dns=False)
    await ag.start()
    suffix = uuid.uuid4().hex[:5]
    names = [f"torc{i}{suffix}" for i in range(len(EPS))]
    try:
        await asyncio.to_thread(ovs.add_bridge, BR, ag.port)
        await ag.wait_connected(20)
        ports = []
        for i, (mac, cidr, gw, vlan, vni, tenant) in enumerate(EPS):
            p = await asyncio.to_thread(ovs.add_veth_port, BR, f"torvp{i}", names[i], "eth0", mac, cidr)
            await asyncio.to_thread(
                subprocess.run, ["ip", "-n", names[i], "route", "add", "default", "via", gw]
            )
            await ag.add_network(vlan, vni, gw, tenant, cidr.replace(".1/", ".0/"))
            await ag.add_local_endpoint(LocalEndpoint(p, mac, cidr.split("/")[0], vlan, vrf=tenant))
            ports.append(p)
        yield ovs, ag, names, ports
    finally:
        await ag.stop()


async def test_routing_flows_routed_ping_with_agent_down_and_tenant_isolation(bed):
    ovs, ag, names, ports = bed
    flows = ovs.dump_flows(BR)
    for (mac, cidr, *_), p in zip(EPS, ports, strict=True):
        ip = cidr.split("/")[0]
        route = [f for f in flows if f.startswith("table=7, priority=100") and f"nw_dst={ip} " in f]
        assert (
            len(route) == 1 and f"set_field:{ROUTER}->eth_src,set_field:{mac}->eth_dst,output:{p}" in route[0]
        )
    assert "table=7, priority=1 actions=goto_table:8" in flows
    assert "table=6, priority=1 actions=goto_table:7" in flows
    assert not [f for f in flows if f.startswith("table=9")] and ovs.dump_groups(BR) == []
    assert len(flows) == ag.statistics()["flows"]
    await ag.controller.stop()  # answered by OVS alone: ARP responder flows + table 7
    assert ping(names[0], "10.73.2.1"), "routed between two networks of one tenant"
    neigh = _ns(names[0], "ip", "neigh", "show", "10.73.1.254").stdout
    assert ROUTER in neigh, neigh
    assert not ping(names[0], "10.73.3.1", 1), "other tenant unreachable"
    assert not ping(names[2], "10.73.1.1", 1)
    hit = [ln for ln in ovs.ofctl("dump-flows", BR, "table=7").splitlines() if "nw_dst=10.73.2.1 " in ln]
    assert hit and "n_packets=0," not in hit[0]


async def test_live_switch_to_bridge_and_back_on_a_real_switch(bed):
    ovs, ag, names, ports = bed
    routing = ovs.dump_flows(BR)
    await ag.set_fwd_mode("bridge")
    await ag.set_fwd_mode("bridge")  # idempotent
    flows = ovs.dump_flows(BR)
    assert "table=6, priority=1 actions=goto_table:9" in flows and not [
        f for f in flows if f.startswith("table=7")
    ]
    assert len(ovs.dump_groups(BR)) == 6 and len(flows) == ag.statistics()["flows"]
    # bridge mode, gateway answered with the router MAC but no router: same network only
    _ns(names[0], "ip", "neigh", "flush", "all")
    await ag.set_fwd_mode("routing")
    assert ovs.dump_flows(BR) == routing and ovs.dump_groups(BR) == []
    assert ping(names[0], "10.73.2.1")


async def test_service_vip_in_routing_mode_across_networks(bed):
    """A client in one network reaches a provider in another through the VIP: ARP for the VIP gets the
    router MAC, the DNAT continues into the routing, the reply is un-NATed and routed back (table 7)."""
    from contivpy.ofnet import Service
    from tests.integration.test_ofnet_svcproxy import CLIENT, SERVER

    ovs, ag, names, ports = bed
    srv = subprocess.Popen(
        ["ip", "netns", "exec", names[1], sys.executable, "-c", SERVER, "p1", "8080"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert (await asyncio.to_thread(srv.stdout.readline)).strip() == "ready"
        await ag.add_service(Service("10.73.1.100", "default", [(80, 8080, "tcp")], ["10.73.2.1"]))
        r = await asyncio.to_thread(_ns, names[0], sys.executable, "-c", CLIENT, "10.73.1.100", "80")
        assert r.returncode == 0 and r.stdout.split() == ["10.73.1.100", "80", "p1", "10.73.1.1"], (
            r.stdout + r.stderr
        )
        assert ROUTER in _ns(names[0], "ip", "neigh", "show", "10.73.1.100").stdout
        snat = [f for f in ovs.dump_flows(BR) if f.startswith("table=6") and "ct(" in f]
        assert snat and all("table=7" in f for f in snat), snat
    finally:
        srv.kill()
        srv.wait()


@pytest.mark.etcd
async def test_dns_by_name_in_routing_mode(ovs_instance, etcd_kv):
    """The DNS punt is unchanged in routing mode: a query to an upstream resolver (off-subnet, via the
    gateway, which resolves to the router MAC) is answered by the agent for a name of the tenant."""
    from contivpy.netplugin.nameserver import NameServer
    from tests.integration.test_nameserver import UPSTREAM, put_ep

    ovs = ovs_instance
    ag = OfnetAgent(BR, "vxlan", sock=ovs.listen_socket(0), echo_interval=1.0, fwd_mode="routing")
    await ag.start()
    ns = NameServer(etcd_kv)
    ns.attach(ag)
    task = asyncio.create_task(ns.run())
    c1 = f"tornc{uuid.uuid4().hex[:5]}"
    try:
        await asyncio.to_thread(ovs.add_bridge, BR, ag.port)
        await ag.wait_connected(20)
        p1 = await asyncio.to_thread(ovs.add_veth_port, BR, "tornvp1", c1, "eth0", EPS[0][0], "10.73.1.1/24")
        await asyncio.to_thread(_ns, c1, "ip", "route", "add", "default", "via", "10.73.1.254")
        await ag.add_network(1, 7301, "10.73.1.254", "default", "10.73.1.0/24")
        await ag.add_local_endpoint(LocalEndpoint(p1, EPS[0][0], "10.73.1.1", 1))
        await put_ep(
            etcd_kv, "n.default-e2", netID="n.default", ipAddress="10.73.1.2", epCommonName="tornweb"
        )
        r = await asyncio.to_thread(_ns, c1, "busybox", "nslookup", "tornweb", UPSTREAM)
        assert "10.73.1.2" in r.stdout, r.stdout + r.stderr
        assert ag.statistics()["dns_answers"] >= 1
        assert ROUTER in _ns(c1, "ip", "neigh", "show", "10.73.1.254").stdout
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ag.stop()
