"""Bonded VLAN uplinks on real userspace OVS (datapath_type=netdev, which runs LACP itself).

Layout (every name starts with ``tbd``): the agent's OVS in netns H runs the real ``Datapath`` with
``--vlan-if tbdm0 --vlan-if tbdm1``; two veth pairs join H to a peer netns P whose own userspace OVS holds
an LACP bond (balance-tcp, active) over the other ends and an internal port ``tbdpv`` on VLAN 100 — the
"top of rack". An endpoint netns E is an access port of VLAN network 100 on contivVlanBridge.

Pinned: the bond ``uplinkPort`` has the original's settings and negotiates LACP (``bond/show``,
``lacp/show`` on the host's vswitchd), VLAN traffic E -> P crosses it and keeps flowing when one member
link goes down, the uplink flows follow the member ofports, and a restart converges 1 -> 2 -> 1 uplinks
(an equal bond is kept as is).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from types import SimpleNamespace

import pytest

from contivpy.netplugin.datapath import CTRL_PORTS, VLAN_BRIDGE, Datapath, EpSpec, NetSpec
from tests.fixtures.ovs import OvsInstance, _sh, in_netns_socket

pytestmark = [pytest.mark.ovs, pytest.mark.root]

P = "tbd"
NET = NetSpec("bn.default", "default", "vlan", 100, 0, "", 24, "10.121.0.0/24")
EP_IP, EP_MAC, PEER_IP = "10.121.0.1", "02:02:0a:79:00:01", "10.121.0.2"
MEMBERS = ["tbdm0", "tbdm1"]


@contextlib.asynccontextmanager
async def running_datapath(ovs: OvsInstance, uplinks: list[str]):
    from contivpy.netplugin.ofnet_flows import OfnetFlows
    from contivpy.ofnet import OfnetAgent

    cfg = SimpleNamespace(
        ovsdb=f"unix:{ovs.dir}/db.sock", ovs_datapath="netdev", vlan_uplinks=uplinks, vxlan_port=4789
    )
    dp = Datapath(cfg)
    try:
        for br, port in CTRL_PORTS.items():
            fp = OfnetFlows(br, cfg)
            fp.agent = OfnetAgent(
                br, fp.kind, arp_mode="proxy", sock=in_netns_socket(ovs.netns, port=port), dns=False
            )
            await fp.start()
            dp.flows[br] = fp
        await dp.start()
        await dp.sync_complete()  # as the daemon does once its state is re-applied: prunes leftovers
        yield dp
    finally:
        await dp.stop()


@pytest.fixture
def bed():
    tag = uuid.uuid4().hex[:6]
    host = OvsInstance(P, netns=f"{P}h{tag}")
    peer = OvsInstance(P, netns=f"{P}p{tag}")
    ep_ns = f"{P}e{tag}"
    try:
        host.start()
        peer.start()
        for i, m in enumerate(MEMBERS):
            host.run("ip", "link", "add", m, "type", "veth", "peer", "name", f"{P}x{i}")
            host.run("ip", "link", "set", f"{P}x{i}", "netns", peer.netns)
            host.run("ip", "link", "set", m, "up")
            peer.run("ip", "link", "set", f"{P}x{i}", "up")
        peer.vsctl(
            "add-br", "tbdpbr", "--", "set", "bridge", "tbdpbr", "datapath_type=netdev", "fail_mode=standalone",
        )  # fmt: skip
        peer.vsctl(
            "add-bond", "tbdpbr", "tbdpb", f"{P}x0", f"{P}x1", "lacp=active", "bond_mode=balance-tcp",
            "other_config:lacp-fallback-ab=true", "--", "set", "port", "tbdpb", "vlan_mode=trunk",
        )  # fmt: skip
        peer.vsctl(
            "add-port", "tbdpbr", "tbdpv", "tag=100", "--", "set", "Interface", "tbdpv", "type=internal"
        )
        peer.ofport("tbdpv")
        peer.run("ip", "addr", "add", f"{PEER_IP}/24", "dev", "tbdpv")
        peer.run("ip", "link", "set", "tbdpv", "up")
        yield SimpleNamespace(host=host, peer=peer, ep_ns=ep_ns)
    finally:
        _sh("ip", "netns", "del", ep_ns, check=False)
        host.stop()
        peer.stop()


async def plug_endpoint(dp: Datapath, host: OvsInstance, ep_ns: str) -> None:
    _sh("ip", "netns", "add", ep_ns)
    host.run("ip", "link", "add", "tbde0", "type", "veth", "peer", "name", "tbdeth")
    host.run("ip", "link", "set", "tbdeth", "netns", ep_ns)
    host.run("ip", "link", "set", "tbde0", "up")
    for cmd in (
        ("link", "set", "tbdeth", "address", EP_MAC),
        ("addr", "add", f"{EP_IP}/24", "dev", "tbdeth"),
        ("link", "set", "tbdeth", "up"),
        ("link", "set", "lo", "up"),
    ):
        _sh("ip", "-n", ep_ns, *cmd)
    await dp.add_network(NET)
    ofport, _ = await dp.plug_port(NET, "tbde0", "tbdep1")
    await dp.add_local_endpoint(EpSpec("tbdep1", NET, EP_IP, EP_MAC, ofport=ofport))


async def ping(ep_ns: str, budget: float = 10.0) -> bool:
    """In a thread: the OpenFlow controllers run on this event loop and must answer packet-ins."""
    return await asyncio.to_thread(_ping, ep_ns, budget)


def _ping(ep_ns: str, budget: float) -> bool:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        out = _sh("ip", "netns", "exec", ep_ns, "ping", "-c", "1", "-W", "1", PEER_IP, check=False)
        if " 0% packet loss" in out:
            return True
        time.sleep(0.2)
    return False


async def wait_until(pred, budget: float, what: str):
    return await asyncio.to_thread(_wait_until, pred, budget, what)


def _wait_until(pred, budget: float, what: str):
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def uplink_in_ports(host: OvsInstance) -> set[int]:
    """in_port of the vlan bridge's uplink flows (table VLAN -> SVC_SNAT at priority MATCH)."""
    out = set()
    for f in host.dump_flows(VLAN_BRIDGE):
        if "table=1," in f and "priority=100," in f and "goto_table:6" in f and "in_port=" in f:
            out.add(int(f.split("in_port=")[1].split(",")[0].split()[0]))
    return out


async def test_bond_negotiates_carries_vlan_traffic_and_survives_member_loss(bed):
    host, peer = bed.host, bed.peer
    async with running_datapath(host, list(MEMBERS)) as dp:
        assert host.vsctl("get", "Port", "uplinkPort", "bond_mode").strip() == "balance-tcp"
        assert host.vsctl("get", "Port", "uplinkPort", "lacp").strip() == "active"
        assert host.vsctl("get", "Port", "uplinkPort", "other_config:lacp-fallback-ab").strip() == '"true"'
        assert host.vsctl("get", "Port", "uplinkPort", "vlan_mode").strip() == "trunk"
        await wait_until(
            lambda: "lacp_status: negotiated" in host.appctl("bond/show", "uplinkPort"),
            20,
            "LACP negotiation",
        )
        lacp = host.appctl("lacp/show", "uplinkPort")
        assert "status: active negotiated" in lacp, lacp
        for m in MEMBERS:
            assert f"member {m}: enabled" in host.appctl("bond/show", "uplinkPort")
        assert uplink_in_ports(host) == {host.ofport(m) for m in MEMBERS}

        await plug_endpoint(dp, host, bed.ep_ns)
        ok = await ping(bed.ep_ns)
        if not ok:
            print("\n".join(host.dump_flows(VLAN_BRIDGE)))
            print(host.appctl("bond/show"))
            print(peer.appctl("fdb/show", "tbdpbr"))
            print(host.ofctl("dump-ports", VLAN_BRIDGE))
            print(peer.ofctl("dump-ports", "tbdpbr"))
            print(_sh("ip", "-n", bed.ep_ns, "neigh"))
        assert ok, "no VLAN traffic over the bond"

        host.run("ip", "link", "set", MEMBERS[0], "down")
        await wait_until(
            lambda: f"member {MEMBERS[0]}: disabled" in host.appctl("bond/show", "uplinkPort"),
            20,
            "member marked down",
        )
        assert await ping(bed.ep_ns), "VLAN traffic lost with one member down"
        for _ in range(5):
            assert await ping(bed.ep_ns, budget=3)
        assert "lacp_status: negotiated" in host.appctl("bond/show", "uplinkPort")


async def test_restart_converges_one_two_one_uplinks(bed):
    host = bed.host

    def ports() -> set[str]:
        return set(host.vsctl("list-ports", VLAN_BRIDGE).split())

    async with running_datapath(host, [MEMBERS[0]]):
        assert ports() == {MEMBERS[0]}
        assert host.vsctl("get", "Port", MEMBERS[0], "vlan_mode").strip() == "trunk"
        assert uplink_in_ports(host) == {host.ofport(MEMBERS[0])}

    async with running_datapath(host, list(MEMBERS)):
        assert ports() == {"uplinkPort"}
        assert sorted(host.vsctl("list-ifaces", VLAN_BRIDGE).split()) == MEMBERS
        assert uplink_in_ports(host) == {host.ofport(m) for m in MEMBERS}
        bond_uuid = host.vsctl("get", "Port", "uplinkPort", "_uuid").strip()

    async with running_datapath(host, list(MEMBERS)):  # same members: the bond is kept as is
        assert host.vsctl("get", "Port", "uplinkPort", "_uuid").strip() == bond_uuid
        assert uplink_in_ports(host) == {host.ofport(m) for m in MEMBERS}

    async with running_datapath(host, [MEMBERS[1]]):
        assert ports() == {MEMBERS[1]}
        assert host.vsctl("list-ifaces", VLAN_BRIDGE).split() == [MEMBERS[1]]
        assert uplink_in_ports(host) == {host.ofport(MEMBERS[1])}


@pytest.mark.etcd
def test_netplugin_daemon_bonds_uplinks_on_the_testbed():
    """The real agent (test bed host h1, etcd, netmaster) with ``--vlan-if eth3 --vlan-if eth4`` wired to
    a peer LACP bond: a container of a VLAN network pings the peer's VLAN-100 address over the bond, and
    keeps pinging with eth3 down."""
    from tests.fixtures.testbed import Testbed, http_json

    with Testbed(1) as bed:
        h1 = bed.hosts[1]
        peer = OvsInstance(P, netns=f"{P}q{uuid.uuid4().hex[:6]}")
        try:
            peer.start()
            for i, dev in enumerate(("eth3", "eth4")):
                h1.exec("ip", "link", "add", dev, "type", "veth", "peer", "name", f"{P}y{i}")
                h1.exec("ip", "link", "set", f"{P}y{i}", "netns", peer.netns)
                h1.exec("ip", "link", "set", dev, "up")
                peer.run("ip", "link", "set", f"{P}y{i}", "up")
            peer.vsctl(
                "add-br", "tbdqbr", "--", "set", "bridge", "tbdqbr", "datapath_type=netdev", "fail_mode=standalone",
            )  # fmt: skip
            peer.vsctl(
                "add-bond", "tbdqbr", "tbdqb", f"{P}y0", f"{P}y1", "lacp=active", "bond_mode=balance-tcp",
                "other_config:lacp-fallback-ab=true",
            )  # fmt: skip
            peer.vsctl(
                "add-port", "tbdqbr", "tbdqv", "tag=100", "--", "set", "Interface", "tbdqv", "type=internal"
            )
            peer.ofport("tbdqv")
            peer.run("ip", "addr", "add", "10.122.1.200/24", "dev", "tbdqv")
            peer.run("ip", "link", "set", "tbdqv", "up")

            h1.start_netplugin("--vlan-if", "eth3", "--vlan-if", "eth4", uplink=False)
            assert "not supported" not in h1.log_tail(80)
            assert h1.vsctl("get", "Port", "uplinkPort", "bond_mode").strip() == "balance-tcp"
            _wait_until(
                lambda: "lacp_status: negotiated" in h1.appctl("bond/show", "uplinkPort"), 20, "LACP on h1"
            )
            assert "status: active negotiated" in h1.appctl("lacp/show", "uplinkPort")

            bed.create_network("bnet", "10.122.1.0/24", encap="vlan", pktTag=100)
            st, info = http_json(
                "POST",
                h1.debug_url + "/debug/endpoints",
                {"tenant": "default", "network": "bnet", "group": "", "endpointID": "tbdb1"},
                timeout=30,
            )
            assert st == 200, info
            c = h1.container(info["port_name"], f"{info['ip_address']}/{info['prefix_len']}", None)
            assert c.ping("10.122.1.200", budget=15), "no VLAN traffic over the bond\n" + h1.log_tail(40)

            h1.exec("ip", "link", "set", "eth3", "down")
            _wait_until(
                lambda: "member eth3: disabled" in h1.appctl("bond/show", "uplinkPort"), 20, "eth3 disabled"
            )
            assert c.ping("10.122.1.200", budget=15), "VLAN traffic lost with eth3 down"
            assert "member eth4: enabled" in h1.appctl("bond/show", "uplinkPort")
        finally:
            peer.stop()
