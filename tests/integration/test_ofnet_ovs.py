"""OfnetAgent against a real ovs-vswitchd (netdev datapath) in a private netns.

Oracle: ``ovs-ofctl -O OpenFlow13 dump-flows/dump-groups`` of the bridge, and real
traffic between two "containers" (netns with a veth into the bridge).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest

from contivpy.common.errors import ConflictError
from contivpy.ofnet import LocalEndpoint, OfnetAgent, RemoteEndpoint, Rule

pytestmark = [pytest.mark.ovs, pytest.mark.root, pytest.mark.timeout(180)]
OVS_PREFIX = "tof"
BR = "contivVxlanBridge"
MAC1, MAC2, MAC3 = "02:02:0a:01:01:01", "02:02:0a:01:01:02", "02:02:0a:01:01:03"
GW_MAC = "00:00:11:11:11:11"


def reply_actions(mac: str, ip: str, pop: bool = True) -> str:
    """The ARP responder's in-place reply, as ``ovs-ofctl -O OpenFlow13 dump-flows`` prints it."""
    return (
        f"actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->eth_src,set_field:2->arp_op,"
        "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
        f"set_field:{mac}->arp_sha,set_field:{ip}->arp_spa," + ("pop_vlan," if pop else "") + "IN_PORT"
    )


async def _agent(ovs, datapath="vxlan", port=None, **kw):
    sock = ovs.listen_socket(port or 0)
    ag = OfnetAgent(BR, datapath, sock=sock, echo_interval=1.0, **kw)
    await ag.start()
    return ag


@pytest.fixture
async def bed(ovs_instance):
    """Bridge + agent + two containers (veth) + one VTEP port, network vlan 1 / vni 1."""
    ovs = ovs_instance
    ag = await _agent(ovs)
    suffix = uuid.uuid4().hex[:5]
    c1, c2 = f"tofc1{suffix}", f"tofc2{suffix}"
    try:
        await asyncio.to_thread(ovs.add_bridge, BR, ag.port)
        await ag.wait_connected(20)
        p1 = await asyncio.to_thread(ovs.add_veth_port, BR, "tofvp1", c1, "eth0", MAC1, "10.1.1.1/24")
        p2 = await asyncio.to_thread(ovs.add_veth_port, BR, "tofvp2", c2, "eth0", MAC2, "10.1.1.2/24")
        vt = await asyncio.to_thread(
            ovs.add_port, BR, "vxif10999", "type=vxlan", "options:remote_ip=10.99.9.9", "options:key=flow"
        )
        await ag.add_network(1, 1, "10.1.1.254", "default")
        eps = [LocalEndpoint(p1, MAC1, "10.1.1.1", 1), LocalEndpoint(p2, MAC2, "10.1.1.2", 1, epg=5)]
        for ep in eps:
            await ag.add_local_endpoint(ep)
        await ag.add_vtep(vt, "10.99.9.9")
        await ag.add_remote_endpoint(RemoteEndpoint(MAC3, "10.1.1.3", "10.99.9.9", vni=1))
        yield ovs, ag, {"p1": p1, "p2": p2, "vt": vt, "c1": c1, "c2": c2, "eps": eps}
    finally:
        await ag.stop()


def _ns(ns, *cmd, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


async def test_flows_and_groups_match_the_original_shapes(bed):
    ovs, ag, b = bed
    p1, p2, vt = b["p1"], b["p2"], b["vt"]
    flows = ovs.dump_flows(BR)
    expected = [
        "table=6, priority=100,arp,arp_op=1 actions=goto_table:10",
        "table=10, priority=1,arp,arp_op=1 actions=CONTROLLER:65535",
        f"table=10, priority=100,arp,dl_vlan=1,arp_tpa=10.1.1.1,arp_op=1 {reply_actions(MAC1, '10.1.1.1')}",
        f"table=10, priority=100,arp,dl_vlan=1,arp_tpa=10.1.1.2,arp_op=1 {reply_actions(MAC2, '10.1.1.2')}",
        "table=10, priority=100,arp,metadata=0/0x1,dl_vlan=1,arp_tpa=10.1.1.3,arp_op=1 "
        + reply_actions(MAC3, "10.1.1.3"),
        "table=10, priority=90,arp,metadata=0/0x1,dl_vlan=1,arp_tpa=10.1.1.254,arp_op=1 "
        + reply_actions(GW_MAC, "10.1.1.254"),
        "table=0, priority=100,dl_src=01:00:00:00:00:00/01:00:00:00:00:00 actions=drop",
        "table=0, priority=1 actions=goto_table:1",
        "table=1, priority=1 actions=drop",
        f"table=1, priority=10,in_port={p1} actions=push_vlan:0x8100,set_field:4097->vlan_vid,"
        "write_metadata:0x100000000/0xff00000000,goto_table:3",
        f"table=1, priority=10,in_port={p2} actions=push_vlan:0x8100,set_field:4097->vlan_vid,"
        "write_metadata:0x100050000/0xff7fff0000,goto_table:3",
        f"table=1, priority=100,tun_id=0x1,in_port={vt} actions=push_vlan:0x8100,set_field:4097->vlan_vid,"
        "write_metadata:0x100000001/0xff00000001,goto_table:6",
        "table=4, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.1.1.1 actions=write_metadata:0/0xfffe,goto_table:5",
        "table=4, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.1.1.2 actions=write_metadata:0xa/0xfffe,goto_table:5",
        "table=4, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.1.1.3 actions=write_metadata:0/0xfffe,goto_table:5",
        "table=5, priority=1 actions=goto_table:6",
        "table=9, priority=10,metadata=0/0x1,dl_vlan=1 actions=group:2",
        "table=9, priority=10,metadata=0x1/0x1,dl_vlan=1 actions=group:1",
        f"table=9, priority=100,dl_vlan=1,dl_dst={MAC1} actions=pop_vlan,output:{p1}",
        f"table=9, priority=100,dl_vlan=1,dl_dst={MAC2} actions=pop_vlan,output:{p2}",
        f"table=9, priority=100,dl_vlan=1,dl_dst={MAC3} actions=set_field:0x1->tun_id,pop_vlan,output:{vt}",
        "table=9, priority=1 actions=drop",
    ]
    for line in expected:
        assert line in flows, f"missing: {line}\n" + "\n".join(flows)
    groups = ovs.dump_groups(BR)
    assert (
        f"group_id=1,type=all,bucket=actions=pop_vlan,output:{p1},bucket=actions=pop_vlan,output:{p2}"
        in groups
    )
    assert (
        f"group_id=2,type=all,bucket=actions=pop_vlan,output:{p1},bucket=actions=pop_vlan,output:{p2},"
        f"bucket=actions=set_field:0x1->tun_id,pop_vlan,output:{vt}"
    ) in groups
    # every flow in the switch is one the agent wants (nothing extra, nothing missing)
    assert len(flows) == ag.statistics()["flows"]
    assert not [f for f in flows if f.startswith("table=0") and "arp" in f]  # no punt before the responder


async def test_ping_between_containers_with_proxy_arp(bed):
    ovs, ag, b = bed
    r = await asyncio.to_thread(_ns, b["c1"], "busybox", "ping", "-c", "2", "-W", "2", "10.1.1.2")
    assert r.returncode == 0, r.stdout + r.stderr
    neigh = await asyncio.to_thread(_ns, b["c1"], "ip", "neigh", "show", "10.1.1.2")
    assert MAC2 in neigh.stdout
    # the remote endpoint (behind the VTEP) is answered too, with its MAC
    r = await asyncio.to_thread(
        _ns, b["c1"], "busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0", "10.1.1.3"
    )
    assert MAC3 in r.stdout.lower(), r.stdout + r.stderr
    # ... both by the responder flows in OVS, not by the controller
    assert ag.statistics()["arp_replies"] == 0
    hits = [f for f in ovs.ofctl("dump-flows", BR, "table=10").splitlines() if "arp_tpa=10.1.1." in f]
    assert any("n_packets=0," not in f for f in hits), hits


async def test_arp_answered_by_flows_while_the_controller_is_down(bed):
    """The agent is gone (as after kill -9): OVS keeps the flows (fail_mode secure) and answers ARP
    for every known address by itself: local and remote endpoints, and the gateway."""
    ovs, ag, b = bed
    await ag.stop()
    for _ in range(50):
        if "is_connected: false" in ovs.vsctl("--columns=is_connected", "list", "controller"):
            break
        await asyncio.sleep(0.1)
    for ip, mac in (("10.1.1.2", MAC2), ("10.1.1.3", MAC3), ("10.1.1.254", GW_MAC)):
        r = await asyncio.to_thread(_ns, b["c1"], "busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0", ip)
        assert mac in r.stdout.lower(), f"{ip}: {r.stdout} {r.stderr}"
    await asyncio.to_thread(_ns, b["c1"], "ip", "neigh", "flush", "all")
    r = await asyncio.to_thread(_ns, b["c1"], "busybox", "ping", "-c", "2", "-W", "2", "10.1.1.2")
    assert r.returncode == 0, r.stdout + r.stderr
    # an unknown address is still the controller's (punt), so it gets no answer now
    r = await asyncio.to_thread(
        _ns, b["c1"], "busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0", "10.1.1.77"
    )
    assert "reply from" not in r.stdout.lower()


async def test_arp_request_from_a_vtep_answered_for_local_endpoints_only(bed):
    """A request arriving over VXLAN (the remote host's controller re-injects unknown targets) gets
    an answer for a local endpoint, with the VNI it came on; a remote endpoint's is left to its host."""
    ovs, ag, b = bed
    vt = b["vt"]
    req = (
        "ffffffffffff" "02020a010163" "0806" "0001080006040001" "02020a010163" "0a010163"
        "000000000000" "{tpa}"
    )  # fmt: skip

    def hits() -> dict[str, int]:
        out = {}
        for ln in ovs.ofctl("dump-flows", BR, "table=10").splitlines():
            if "n_packets=" in ln:
                key = ln.split("arp_tpa=")[1].split(",")[0] if "arp_tpa=" in ln else "punt"
                out[key] = int(ln.split("n_packets=")[1].split(",")[0])
        return out

    for tpa, ip, answered in (("0a010102", "10.1.1.2", True), ("0a010103", "10.1.1.3", False)):
        before = hits()
        ovs.ofctl(
            "packet-out",
            BR,
            f"in_port={vt},packet={req.format(tpa=tpa)},actions=set_field:1->tun_id,resubmit(,0)",
        )
        after = hits()
        if answered:
            assert after[ip] == before[ip] + 1 and after["punt"] == before["punt"], (before, after)
        else:
            assert after[ip] == before[ip] and after["punt"] == before["punt"] + 1, (before, after)


async def test_tcp_policy_deny_then_allow(bed):
    ovs, ag, b = bed
    srv = subprocess.Popen(
        ["ip", "netns", "exec", b["c2"], "busybox", "nc", "-l", "-p", "8080", "-e", "echo", "pong"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.3)
        # whitelist as in the docs: deny all tcp to epg 5 (priority 1), allow port 8080 (priority 2)
        await ag.add_rule(Rule("deny-all", 1, dst_epg=5, protocol=6, action="deny"))
        r = await asyncio.to_thread(_ns, b["c1"], "busybox", "nc", "-w", "2", "10.1.1.2", "8080")
        assert "pong" not in r.stdout
        await ag.add_rule(Rule("allow-8080", 2, dst_epg=5, protocol=6, dst_port=8080, action="allow"))
        flows = ovs.dump_flows(BR, "table=5")
        assert "table=5, priority=11,tcp,metadata=0xa/0xfffe actions=drop" in flows
        assert "table=5, priority=12,tcp,metadata=0xa/0xfffe,tp_dst=8080 actions=goto_table:6" in flows
        r = await asyncio.to_thread(_ns, b["c1"], "busybox", "nc", "-w", "3", "10.1.1.2", "8080")
        assert "pong" in r.stdout, r.stdout + r.stderr
        # same id, same fields: no-op; same id, other fields: the original's error
        await ag.add_rule(Rule("deny-all", 1, dst_epg=5, protocol=6, action="deny"))
        with pytest.raises(ConflictError, match="Rule already exists"):
            await ag.add_rule(Rule("deny-all", 3, dst_epg=5, protocol=6, action="deny"))
    finally:
        srv.kill()
        srv.wait()


async def test_icmp_request_deny_drops_pings_to_the_group_not_its_replies(bed):
    """A deny icmp rule without port (icmp_type "request"): pings to the isolated endpoint are dropped,
    the replies to its own pings pass (docs/decisions.md)."""
    ovs, ag, b = bed
    ping = lambda src, ip: _ns(b[src], "busybox", "ping", "-c", "1", "-W", "2", ip).returncode == 0  # noqa: E731
    assert await asyncio.to_thread(ping, "c1", "10.1.1.2")
    await ag.add_rule(
        Rule("no-ping", 1, dst_epg=5, dst_ip="10.1.1.2", protocol=1, icmp_type="request", action="deny")
    )
    flows = ovs.dump_flows(BR, "table=5")
    assert sum("icmp_type=" in f and "actions=drop" in f for f in flows) == 4, flows
    assert not await asyncio.to_thread(ping, "c1", "10.1.1.2")  # c1 -> c2: echo request dropped
    assert await asyncio.to_thread(ping, "c2", "10.1.1.1")  # c2 -> c1: c1's echo reply to c2 passes
    await ag.remove_rule("no-ping")
    assert await asyncio.to_thread(ping, "c1", "10.1.1.2")


async def test_restart_reapply_leaves_flows_identical(bed):
    ovs, ag, b = bed
    before_f, before_g = ovs.dump_flows(BR), ovs.dump_groups(BR)
    port = ag.port
    await ag.stop()
    # a new agent (as after a process restart) listening on the same port, same intent
    ag2 = await _agent(ovs, port=port)
    try:
        await ag2.wait_connected(30)
        assert ag2.cache.stats["resync_msgs"] == 0  # base flows read back equal: nothing to send
        await ag2.add_network(1, 1, "10.1.1.254", "default")
        for ep in b["eps"]:
            await ag2.add_local_endpoint(ep)
        await ag2.add_vtep(b["vt"], "10.99.9.9")
        await ag2.add_remote_endpoint(RemoteEndpoint(MAC3, "10.1.1.3", "10.99.9.9", vni=1))
        assert await ag2.sync_complete() == 0  # nothing stale
        st = ag2.cache.stats
        assert st["flow_add"] == 0 and st["flow_mod"] == 0 and st["flow_del"] == 0, dict(st)
        assert ovs.dump_flows(BR) == before_f
        assert ovs.dump_groups(BR) == before_g
        assert ag2.controller.switch.stats["errors"] == 0
        # a restart that forgot an endpoint prunes exactly its flows after the full sync
        await ag2.remove_local_endpoint(b["p1"])
        assert not [
            f for f in ovs.dump_flows(BR) if MAC1 in f or "10.1.1.1 " in f or f"in_port={b['p1']} " in f
        ]
    finally:
        await ag2.stop()


async def test_reconnect_converges_without_wipe(bed):
    ovs, ag, b = bed
    before = ovs.dump_flows(BR)
    # drop the OpenFlow connection; OVS reconnects, the cache reads back and finds nothing to do
    connects = ag.controller.connects
    ag.controller.switch.close()
    for _ in range(100):
        if ag.controller.connects > connects and ag.controller.connected:
            break
        await asyncio.sleep(0.1)
    assert ag.controller.connects == connects + 1
    assert ovs.dump_flows(BR) == before
    # a stale flow with our cookie category is pruned on reconnect once synced
    await ag.sync_complete()
    ovs.ofctl(
        "add-flow",
        BR,
        "cookie=0xc0030000deadbeef,table=9,priority=100,dl_vlan=7,dl_dst=02:02:00:00:00:07,actions=drop",
    )
    ovs.ofctl(
        "add-flow", BR, "cookie=0x5,table=9,priority=100,dl_vlan=8,dl_dst=02:02:00:00:00:08,actions=drop"
    )
    ag.controller.switch.close()
    for _ in range(100):
        await asyncio.sleep(0.1)
        if ag.controller.connects > connects + 1 and ag.controller.connected:
            break
    after = ovs.dump_flows(BR)
    assert not [f for f in after if "02:02:00:00:00:07" in f]
    assert [f for f in after if "02:02:00:00:00:08" in f]  # not ours: left alone


async def test_remove_endpoint_removes_exactly_its_flows(bed):
    ovs, ag, b = bed
    before = set(ovs.dump_flows(BR))
    await ag.remove_local_endpoint(b["p2"])
    after = set(ovs.dump_flows(BR))
    gone = before - after
    assert after <= before
    assert len(gone) == 4  # vlan, dst_group, mac_dest and its arp_responder flow
    assert all(
        ("10.1.1.2 " in f) or ("10.1.1.2," in f) or (MAC2 in f) or (f"in_port={b['p2']} " in f) for f in gone
    ), gone
    assert f"output:{b['p2']}" not in " ".join(ovs.dump_groups(BR))
    await ag.remove_remote_endpoint(RemoteEndpoint(MAC3, "10.1.1.3", "10.99.9.9", vni=1))
    gone2 = after - set(ovs.dump_flows(BR))
    assert len(gone2) == 3 and all(("10.1.1.3" in f) or (MAC3 in f) for f in gone2)
    # VTEP removal: classification flow and flood bucket go
    await ag.remove_vtep("10.99.9.9")
    assert not [f for f in ovs.dump_flows(BR) if f"in_port={b['vt']}" in f]
    assert "tun_id" not in " ".join(ovs.dump_groups(BR))


async def test_arp_flood_mode_removes_punt_and_still_pings(bed):
    ovs, ag, b = bed
    proxy = ovs.dump_flows(BR)
    await ag.set_arp_mode("flood")
    # flood mode: no punt and no endpoint answers; only requests for the router (the gateway) are
    # still answered in OVS, for host access (docs/ovs-pipeline.md, "Host access")
    arp = [f for f in ovs.dump_flows(BR) if "arp_op=1" in f or "table=10" in f]
    assert arp and all("arp_tpa=10.1.1.254" in f for f in arp), arp
    assert not [f for f in arp if "CONTROLLER" in f]
    r = await asyncio.to_thread(_ns, b["c1"], "busybox", "ping", "-c", "1", "-W", "2", "10.1.1.2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ag.statistics()["arp_replies"] == 0
    await ag.set_arp_mode("proxy")  # back: exactly the same flows as before
    assert ovs.dump_flows(BR) == proxy


async def test_vlan_bridge_flows(ovs_instance):
    ovs = ovs_instance
    ag = await _agent(ovs, "vlan")
    try:
        await asyncio.to_thread(ovs.add_bridge, BR, ag.port)
        await ag.wait_connected(20)
        up = await asyncio.to_thread(ovs.add_port, BR, "tofup0", "type=internal")
        await ag.add_uplink(up)
        await ag.add_network(100, 0, "10.1.1.254", "default")
        await ag.add_local_endpoint(LocalEndpoint(5, MAC1, "10.1.1.1", 100))
        flows = ovs.dump_flows(BR)
        for line in (
            f"table=0, priority=102,udp,in_port={up},tp_dst=53 actions=goto_table:1",
            f"table=1, priority=100,in_port={up} actions=goto_table:6",
            "table=1, priority=10,in_port=5 actions=write_metadata:0x100000000/0xff00000000,goto_table:3",
            "table=1, priority=1 actions=goto_table:4",
            "table=4, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.1.1.1 actions=write_metadata:0/0xfffe,goto_table:5",
            "table=9, priority=1 actions=NORMAL",
        ):
            assert line in flows, f"missing {line}\n" + "\n".join(flows)
        assert (
            "table=10, priority=100,arp,metadata=0x100000000/0xff00000000,arp_tpa=10.1.1.1,arp_op=1 "
            + reply_actions(MAC1, "10.1.1.1", pop=False)
        ) in flows
        # the 14 flows of the original's transcript (baseline incl. uplink + 1 endpoint), minus its
        # table-0 ARP punt, plus divert + responder punt + the endpoint's responder flow
        assert len(flows) == 16
    finally:
        await ag.stop()
