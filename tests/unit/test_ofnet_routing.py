"""Routing mode (vrouter) flow builders and the agent's live mode switch (docs/ovs-pipeline.md, "Routing mode").

Golden text of every routing flow shape, their wire encoding checked against ``ovs-ofctl``'s own parser,
the host access variants without VLAN, flow counts per owner, and ``set_fwd_mode`` rebuilding every owner
(computed on an agent without a switch: the flow cache records the desired state).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from contivpy.common.errors import ValidationError
from contivpy.netplugin.fakedatapath import FakeDatapath
from contivpy.ofnet import LocalEndpoint, OfnetAgent, RemoteEndpoint, codec
from contivpy.ofnet import routing as R
from contivpy.ofnet.cookies import cookie_for
from contivpy.ofnet.hostaccess import host_endpoint_flows, host_port_flows
from contivpy.ofnet.types import Network, Vtep

LEP = LocalEndpoint(3, "02:02:0a:48:01:01", "10.72.1.1", 2, epg=5, vrf="t1", dscp=10)
REP = RemoteEndpoint("02:02:0a:48:01:02", "10.72.1.2", "192.168.213.12", vni=5000, vrf="t1")
NET = Network(2, 5000, "10.72.1.254", "t1", "10.72.1.0/24")
REPLY = (
    "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:00:00:11:11:11:11->dl_src,set_field:2->arp_op,"
    "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
    "set_field:00:00:11:11:11:11->arp_sha,set_field:{ip}->arp_spa,IN_PORT"
)


def texts(flows):
    return sorted(str(f) for f in flows)


def test_base_flows_route_after_svc_snat_and_miss_to_host_snat():
    t = texts(R.base_flows(dns=True))
    assert "table=svc_snat, priority=1 actions=goto_table:ip" in t
    assert "table=ip, priority=1 actions=goto_table:host_snat" in t
    assert "table=vlan, priority=1 actions=drop" in t
    assert not [x for x in t if x.startswith("table=mac_dest")]
    assert len(t) == 10  # + the ARP divert and punt = 12, as the bridge pipeline's baseline


def test_local_endpoint_golden():
    assert texts(R.local_endpoint_flows(LEP, 1)) == sorted(
        [
            "table=vlan, priority=10,in_port=3 actions=write_metadata:0x100050000/0xff7fff0000,goto_table:svc_dnat",
            "table=vlan, priority=11,ip,in_port=3 actions=set_field:10->ip_dscp,"
            "write_metadata:0x100050000/0xff7fff0000,goto_table:svc_dnat",
            "table=dst_group, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.72.1.1 "
            "actions=write_metadata:0xa/0xfffe,goto_table:policy",
            "table=ip, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.72.1.1 "
            "actions=set_field:00:00:11:11:11:11->dl_src,set_field:02:02:0a:48:01:01->dl_dst,output:3",
            "table=arp_responder, priority=100,arp,metadata=0x100000000/0xff00000001,arp_op=1,"
            "arp_tpa=10.72.1.1 actions=" + REPLY.format(ip="10.72.1.1"),
        ]
    )


def test_remote_endpoint_golden_and_pending_without_vtep():
    assert texts(R.remote_endpoint_flows(REP, 1, 9)) == sorted(
        [
            "table=dst_group, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.72.1.2 "
            "actions=write_metadata:0/0xfffe,goto_table:policy",
            "table=ip, priority=100,ip,metadata=0x100000000/0xff00000001,nw_dst=10.72.1.2 "
            "actions=set_field:00:00:11:11:11:11->dl_dst,set_field:0x1388->tun_id,output:9",
            "table=arp_responder, priority=100,arp,metadata=0x100000000/0xff00000001,arp_op=1,"
            "arp_tpa=10.72.1.2 actions=" + REPLY.format(ip="10.72.1.2"),
        ]
    )
    assert [f.table.name for f in R.remote_endpoint_flows(REP, 1, None)] == ["dst_group"]


def test_network_flows_vtep_bypass_and_gateway_no_flooding():
    assert texts(R.network_flows(NET, 1, [Vtep(9, "192.168.213.12")])) == sorted(
        [
            "table=vlan, priority=100,in_port=9,tun_id=0x1388 "
            "actions=write_metadata:0x100000001/0xff00000001,goto_table:svc_snat",
            "table=arp_responder, priority=90,arp,metadata=0x100000000/0xff00000001,arp_op=1,"
            "arp_tpa=10.72.1.254 actions=" + REPLY.format(ip="10.72.1.254"),
        ]
    )
    assert R.network_flows(Network(3, 5001), 1, []) == []


def test_host_access_without_vlan_and_without_svc_snat_divert():
    port = host_port_flows(7, "172.19.0.0/16", routing=True)
    assert len(port) == 5 and not [f for f in port if f.priority == 50]
    snat, dnat = host_endpoint_flows(LEP, 1, 7, "172.19.0.0/16", routing=True)
    assert "vlan_vid" not in snat.match.as_kwargs() and "pop_vlan" not in str(snat)
    assert "push_vlan" not in str(dnat) and dnat.goto.name == "dst_group"
    assert len(host_port_flows(7, "172.19.0.0/16")) == 6  # bridge mode unchanged


def _all_routing_flows():
    out = R.base_flows(True) + R.local_endpoint_flows(LEP, 1) + R.remote_endpoint_flows(REP, 1, 9)
    out += R.network_flows(NET, 1, [Vtep(9, "192.168.213.12")])
    out += host_port_flows(7, "172.19.0.0/16", True) + host_endpoint_flows(LEP, 1, 7, "172.19.0.0/16", True)
    return out


@pytest.mark.parametrize("flow", _all_routing_flows(), ids=str)
def test_codec_round_trip(flow):
    flow = flow.with_cookie(cookie_for("lep:3"))
    back = codec.flow_from_stats(codec.parse_message(codec.encode_flow_mod(flow, codec.ADD, 5)))
    assert back == flow


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
def test_wire_encoding_agrees_with_ovs_ofctl(tmp_path):
    flows = _all_routing_flows()
    raw = tmp_path / "mods.of"
    raw.write_bytes(b"".join(codec.encode_flow_mod(f, codec.ADD, i + 1) for i, f in enumerate(flows)))
    txt = tmp_path / "flows.txt"
    txt.write_text("".join(f.text(names=False) + "\n" for f in flows))
    dec = subprocess.run(["ovs-ofctl", "ofp-parse", str(raw)], capture_output=True, text=True, check=True)
    par = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "parse-flows", str(txt)], capture_output=True, text=True
    )
    assert par.returncode == 0, par.stderr

    def mods(out):
        return [ln.split(": ADD ", 1)[1].strip() for ln in out.splitlines() if "OFPT_FLOW_MOD" in ln]

    assert mods(dec.stdout) == mods(par.stdout) and len(mods(dec.stdout)) == len(flows)


async def _agent(mode: str) -> OfnetAgent:
    ag = OfnetAgent("contivVxlanBridge", "vxlan", port=0, fwd_mode=mode)
    await ag._apply(ag._base_owner(), ag._arp_owner())  # start() without listening
    return ag


async def test_flow_counts_per_owner_in_routing_mode():
    ag = await _agent("routing")
    n = lambda: len(ag.cache.desired_flows())  # noqa: E731
    assert n() == 12
    await ag.add_network(2, 5000, "10.72.1.254", "t1", "10.72.1.0/24")
    assert n() == 13  # gateway ARP answer (no flood flows)
    await ag.add_vtep(9, "192.168.213.12")
    assert n() == 15  # VTEP classification for the VNI + DNS from the VTEP
    await ag.add_local_endpoint(LocalEndpoint(3, "02:02:0a:48:01:01", "10.72.1.1", 2, vrf="t1"))
    assert n() == 19  # vlan, dst_group, ip, arp_responder
    await ag.add_remote_endpoint(REP)
    assert n() == 22  # dst_group, ip, arp_responder
    await ag.set_host_port(7, "172.19.0.0/16")
    assert n() == 22 + 5 + 2
    assert ag.cache.desired_groups() == [] and ag.statistics()["datapath"] == "vrouter"
    await ag.remove_remote_endpoint(REP.key)
    await ag.remove_local_endpoint(3)
    assert not [f for f in ag.cache.desired_flows() if f.table.name == "ip" and f.priority == 100]


async def test_live_switch_rebuilds_every_owner_and_back():
    ag = await _agent("bridge")
    await ag.add_network(2, 5000, "10.72.1.254", "t1", "10.72.1.0/24")
    await ag.add_vtep(9, "192.168.213.12")
    await ag.add_local_endpoint(LocalEndpoint(3, "02:02:0a:48:01:01", "10.72.1.1", 2, vrf="t1"))
    await ag.add_remote_endpoint(REP)
    await ag.set_host_port(7, "172.19.0.0/16")
    bridge = texts(ag.cache.desired_flows())
    assert len(ag.cache.desired_groups()) == 2
    await ag.set_fwd_mode("routing")
    routing = texts(ag.cache.desired_flows())
    assert ag.cache.desired_groups() == [] and not [f for f in routing if f.startswith("table=mac_dest")]
    assert len([f for f in routing if f.startswith("table=ip, priority=100")]) == 2
    assert not [f for f in routing if "push_vlan" in f or ("pop_vlan" in f and "4093" not in f)]
    await ag.set_arp_mode("flood")  # routing answers ARP anyway
    assert texts(ag.cache.desired_flows()) == routing
    await ag.set_arp_mode("proxy")
    await ag.set_fwd_mode("bridge")
    assert texts(ag.cache.desired_flows()) == bridge and len(ag.cache.desired_groups()) == 2


async def test_bad_modes_refused_state_untouched():
    ag = await _agent("bridge")
    for bad in ("vrouter", ""):
        with pytest.raises(ValidationError):
            await ag.set_fwd_mode(bad)
    assert ag.fwd_mode == "bridge"
    fake = FakeDatapath()
    with pytest.raises(ValidationError):
        await fake.set_fwd_mode("l3")
    await fake.set_fwd_mode("routing")
    assert fake.fwd_mode == "routing"


# ---- vlan bridge in routing mode (vlrouter, ofnet/vlrouting.py) ----------------------------------------


async def _vlagent(mode: str = "routing") -> OfnetAgent:
    ag = OfnetAgent("contivVlanBridge", "vlan", port=0, fwd_mode=mode)
    await ag._apply(ag._base_owner(), ag._arp_owner())
    return ag


async def test_vlrouter_routes_local_learned_and_uplink_flows():
    ag = await _vlagent()
    await ag.add_uplink(4)
    await ag.set_router_port(6)
    await ag.add_network(12, 0, "10.73.1.254", "t1", "10.73.1.0/24", vrf_id=1)
    await ag.add_local_endpoint(LocalEndpoint(3, "02:02:0a:49:01:01", "10.73.1.1", 12, vrf="t1"))
    await ag.add_remote_endpoint(
        RemoteEndpoint("02:02:0a:49:01:02", "10.73.1.2", "192.168.213.12", vrf="t1", vlan=12)
    )
    await ag.set_routes(
        {("10.73.1.2/32", "t1"): "02:aa:00:00:00:01", ("10.99.0.0/16", "nosuch"): "02:aa:00:00:00:01"}
    )
    flows = texts(ag.cache.desired_flows())
    assert ag.statistics()["datapath"] == "vlrouter" and ag.cache.desired_groups() == []
    route = [f for f in flows if f.startswith("table=ip, priority=99")]
    assert (
        len(route) == 1 and "nw_dst=10.73.1.2" in route[0] and "metadata=0x100000000/0xff00000001" in route[0]
    )
    assert "set_field:02:aa:00:00:00:01->dl_dst" in route[0] and route[0].endswith("output:4")
    local = [f for f in flows if f.startswith("table=ip, priority=100")]
    assert len(local) == 1 and "output:3" in local[0]
    routed_in = [f for f in flows if f.startswith("table=vlan, priority=5")]
    assert len(routed_in) == 1 and "nw_dst=10.73.1.1" in routed_in[0]
    assert any(f.startswith("table=input, priority=100,in_port=6") and "NORMAL" in f for f in flows)
    assert any(f.startswith("table=input, priority=100,arp,in_port=4") and "NORMAL" in f for f in flows)
    assert "table=ip, priority=1 actions=goto_table:host_snat" in flows
    assert "table=host_snat, priority=1 actions=goto_table:mac_dest" in flows
    # every address of the VRF (local, remote, gateway) is answered with the router MAC
    arp = [f for f in flows if f.startswith("table=arp_responder") and "arp_tpa" in f]
    assert len(arp) == 3 and all("set_field:00:00:11:11:11:11->dl_src" in f for f in arp)
    # a withdrawn route goes; the tenant without a network installs nothing until it has one
    await ag.set_routes({})
    assert not [f for f in texts(ag.cache.desired_flows()) if f.startswith("table=ip, priority=99")]
    with pytest.raises(ValidationError):
        await ag.set_routes({("not-a-prefix", "t1"): "02:aa:00:00:00:01"})


async def test_vlan_host_access_follows_the_forwarding_mode():
    """contivh0v (hostaccess.py) serves both modes with the same port and addresses (pvtSubnet + 0x8000 +
    ofport): bridge mode diverts IP to the router MAC to host_snat and answers the gateway's ARP; routing
    mode SNATs out of the host port on the ip miss and DNATs back into table ip; a switch back restores
    the bridge mode flows exactly."""
    ag = await _vlagent("bridge")
    await ag.add_uplink(4)
    await ag.add_network(12, 0, "10.73.1.254", "t1", "10.73.1.0/24", vrf_id=1)
    await ag.add_local_endpoint(LocalEndpoint(3, "02:02:0a:49:01:01", "10.73.1.1", 12, vrf="t1"))
    await ag.set_host_port(9, "172.19.0.0/16")
    bridge = texts(ag.cache.desired_flows())
    snat = [f for f in bridge if f.startswith("table=host_snat, priority=100")]
    assert len(snat) == 1 and "set_field:172.19.128.3->nw_src" in snat[0] and snat[0].endswith("output:9")
    assert any(f.startswith("table=svc_snat, priority=101,arp,in_port=3") for f in bridge)
    assert "table=mac_dest, priority=100,in_port=9,dl_dst=02:02:0a:49:01:01 actions=output:3" in bridge
    await ag.set_fwd_mode("routing")
    flows = texts(ag.cache.desired_flows())
    snat = [f for f in flows if f.startswith("table=host_snat, priority=100")]
    assert len(snat) == 1 and "in_port=3" in snat[0] and "set_field:172.19.128.3->nw_src" in snat[0]
    assert "set_field:02:02:ac:13:ff:fd->dl_dst" in snat[0] and snat[0].endswith("output:9")
    dnat = [f for f in flows if f.startswith("table=host_dnat")]
    assert len(dnat) == 1 and "nw_dst=172.19.128.3" in dnat[0] and "set_field:10.73.1.1->nw_dst" in dnat[0]
    assert any("nw_dst=172.19.255.253" in f and "goto_table:host_snat" in f for f in flows)
    assert not [f for f in flows if f.startswith("table=mac_dest") and "in_port=9" in f]
    assert not [f for f in flows if f.startswith("table=svc_snat, priority=101,arp")]
    assert ag.private_ip(3) == "172.19.128.3" and ag.host.arp_target_port("172.19.128.3") == 3
    assert ag.host.arp_target_port("172.19.0.3") is None
    await ag.set_fwd_mode("bridge")
    assert texts(ag.cache.desired_flows()) == bridge


async def test_vlrouter_live_switch_and_back():
    ag = await _vlagent("bridge")
    await ag.add_uplink(4)
    await ag.set_router_port(6)
    await ag.add_network(12, 0, "", "t1", "10.73.1.0/24", vrf_id=1)
    await ag.add_local_endpoint(LocalEndpoint(3, "02:02:0a:49:01:01", "10.73.1.1", 12, vrf="t1"))
    bridge = texts(ag.cache.desired_flows())
    assert not [f for f in bridge if f.startswith("table=ip") or "in_port=6" in f]
    await ag.set_fwd_mode("routing")
    assert [f for f in texts(ag.cache.desired_flows()) if f.startswith("table=ip, priority=100")]
    await ag.set_fwd_mode("bridge")
    assert texts(ag.cache.desired_flows()) == bridge
