"""Flow builders: golden canonical text (table names), metadata/cookie layout, input validation."""

from __future__ import annotations

import pytest

from contivpy.common.errors import ValidationError
from contivpy.ofnet import builders as B
from contivpy.ofnet import cookies, fields
from contivpy.ofnet.pipeline import TABLES, Prio
from contivpy.ofnet.types import LocalEndpoint, Network, RemoteEndpoint, Rule, Service, Vtep


def texts(flows):
    return sorted(str(f) for f in flows)


def test_tables_declared_once_with_contiv_ids():
    assert [t.id for t in TABLES] == list(range(11))
    assert [t.name for t in TABLES][:2] == ["input", "vlan"] and TABLES[9].name == "mac_dest"
    assert TABLES[10].name == "arp_responder"  # ours, after the original's ten


def test_metadata_fields():
    assert fields.RX_VTEP.mask == 0x1
    assert fields.DST_EPG.mask == 0xFFFE
    assert fields.SRC_EPG.mask == 0x7FFF0000
    assert fields.VRF.mask == 0xFF00000000
    assert fields.combine((fields.VRF, 1), (fields.SRC_EPG, 5)) == (0x100050000, 0xFF7FFF0000)
    with pytest.raises(ValueError):
        fields.SRC_EPG.value(0x8000)


def test_cookie_layout_deterministic_and_readable():
    c = cookies.cookie_for("lep:5")
    assert c == cookies.cookie_for("lep:5") != cookies.cookie_for("lep:6")
    assert cookies.is_ours(c) and cookies.category_of(c) == cookies.Category.LOCAL_EP
    assert cookies.category_of(cookies.cookie_for("rule:x")) == cookies.Category.RULE
    assert not cookies.is_ours(0x1A)


def test_vxlan_local_endpoint_golden():
    ep = LocalEndpoint(2, "02:02:0A:02:02:01", "10.2.2.1", 1)
    assert texts(B.local_endpoint_flows(ep, 1, "vxlan")) == sorted(
        [
            "table=vlan, priority=10,in_port=2 actions=push_vlan:0x8100,set_field:4097->vlan_vid,"
            "write_metadata:0x100000000/0xff00000000,goto_table:svc_dnat",
            "table=dst_group, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.2.2.1 "
            "actions=write_metadata:0/0xfffe,goto_table:policy",
            "table=mac_dest, priority=100,dl_vlan=1,dl_dst=02:02:0a:02:02:01 actions=pop_vlan,output:2",
        ]
    )


def test_local_endpoint_with_epg_and_dscp():
    ep = LocalEndpoint(3, "02:02:0a:01:01:03", "10.1.1.3", 7, epg=0x12, dscp=46)
    t = texts(B.local_endpoint_flows(ep, 2, "vxlan"))
    assert (
        "table=vlan, priority=10,in_port=3 actions=push_vlan:0x8100,set_field:4103->vlan_vid,"
        "write_metadata:0x200120000/0xff7fff0000,goto_table:svc_dnat"
    ) in t
    assert (
        "table=vlan, priority=11,ip,in_port=3 actions=push_vlan:0x8100,set_field:4103->vlan_vid,"
        "set_field:46->ip_dscp,write_metadata:0x200120000/0xff7fff0000,goto_table:svc_dnat"
    ) in t
    assert any("write_metadata:0x24/0xfffe" in x for x in t)


def test_vlan_bridge_local_endpoint_has_no_vlan_push_nor_mac_flow():
    ep = LocalEndpoint(2, "02:02:0a:01:01:01", "10.1.1.1", 100)
    assert texts(B.local_endpoint_flows(ep, 1, "vlan")) == sorted(
        [
            "table=vlan, priority=10,in_port=2 actions=write_metadata:0x100000000/0xff00000000,goto_table:svc_dnat",
            "table=dst_group, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.1.1.1 "
            "actions=write_metadata:0/0xfffe,goto_table:policy",
        ]
    )


def test_remote_endpoint_golden():
    ep = RemoteEndpoint("02:02:0a:03:0c:01", "10.3.12.1", "10.99.77.3", vni=2)
    assert texts(B.remote_endpoint_flows(ep, 1, 2, 3, "vxlan")) == sorted(
        [
            "table=dst_group, priority=100,ip,metadata=0x100000000/0xff00000000,nw_dst=10.3.12.1 "
            "actions=write_metadata:0/0xfffe,goto_table:policy",
            "table=mac_dest, priority=100,dl_vlan=2,dl_dst=02:02:0a:03:0c:01 actions=set_field:0x2->tun_id,pop_vlan,output:3",
        ]
    )


def test_network_flood_flows_and_groups_split_horizon():
    net = Network(1, 5001, "10.1.1.254")
    vt = [Vtep(7, "192.168.1.2")]
    assert texts(B.network_flows(net, 1, vt)) == sorted(
        [
            "table=mac_dest, priority=10,metadata=0/0x1,dl_vlan=1 actions=group:2",
            "table=mac_dest, priority=10,metadata=0x1/0x1,dl_vlan=1 actions=group:1",
            "table=vlan, priority=100,in_port=7,tun_id=0x1389 actions=push_vlan:0x8100,set_field:4097->vlan_vid,"
            "write_metadata:0x100000001/0xff00000001,goto_table:svc_snat",
        ]
    )
    local, allf = B.flood_groups(net, [4, 2], vt)
    assert (
        str(local) == "group_id=1,type=all,bucket=actions=pop_vlan,output:2,bucket=actions=pop_vlan,output:4"
    )
    assert str(allf).endswith(",bucket=actions=set_field:0x1389->tun_id,pop_vlan,output:7")


def test_base_flows_vxlan_baseline_count():
    flows = B.base_flows("vxlan", dns=True) + B.arp_punt_flows("proxy")
    # the original's 11 (docs/ovs-pipeline.md), minus its table-0 ARP punt, plus the divert to the
    # responder and the responder's punt of what no flow answers
    assert len(flows) == 12
    t = texts(flows)
    assert "table=svc_snat, priority=100,arp,arp_op=1 actions=goto_table:arp_responder" in t
    assert "table=arp_responder, priority=1,arp,arp_op=1 actions=CONTROLLER:65535" in t
    assert not [x for x in t if x.startswith("table=input") and "arp" in x]
    assert "table=vlan, priority=1 actions=drop" in t and "table=mac_dest, priority=1 actions=drop" in t
    assert B.arp_punt_flows("flood") == []
    assert "table=mac_dest, priority=1 actions=NORMAL" in texts(B.base_flows("vlan", dns=False))


def test_policy_rules():
    r = Rule("r1", 1, src_epg=3, dst_epg=5, protocol="tcp", dst_port=80, src_ip="10.1.0.0/16")
    (f,) = B.rule_flows(r)
    assert f.priority == Prio.POLICY_BASE + 1
    assert str(f) == (
        "table=policy, priority=11,tcp,metadata=0x3000a/0x7ffffffe,nw_src=10.1.0.0/255.255.0.0,tp_dst=80 "
        "actions=goto_table:svc_snat"
    )
    (d,) = B.rule_flows(Rule("r2", 0, dst_epg=5, protocol=6, tcp_flags="syn,!ack", action="deny"))
    assert str(d) == "table=policy, priority=10,tcp,metadata=0xa/0xfffe,tcp_flags=0x2/0x12 actions=drop"


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocalEndpoint(0, "02:02:0a:01:01:01", "10.1.1.1", 1),
        lambda: LocalEndpoint(1, "zz:02:0a:01:01:01", "10.1.1.1", 1),
        lambda: LocalEndpoint(1, "02:02:0a:01:01:01", "10.1.1.300", 1),
        lambda: LocalEndpoint(1, "02:02:0a:01:01:01", "10.1.1.1", 4095),
        lambda: Network(1, 1 << 24),
        lambda: Rule("r", protocol="bogus"),
        lambda: Rule("r", protocol=1, dst_port=80),
        lambda: Rule("r", action="maybe"),
        lambda: RemoteEndpoint("02:02:0a:01:01:01", "10.1.1.1", "not-an-ip", vni=1),
    ],
)
def test_bad_input_is_a_validation_error(make):
    with pytest.raises(ValidationError):
        make()


REPLY = (
    "actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->dl_src,set_field:2->arp_op,"
    "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
    "set_field:{mac}->arp_sha,set_field:{ip}->arp_spa,{pop}IN_PORT"
)


def _responder(flows):
    return [str(f) for f in flows if f.table.name == "arp_responder"]


def test_arp_responder_flows_per_endpoint_vxlan():
    lep = LocalEndpoint(2, "02:02:0A:02:02:01", "10.2.2.1", 1)
    assert len(B.local_endpoint_flows(lep, 1, "vxlan", arp_proxy=True)) == 4
    assert _responder(B.local_endpoint_flows(lep, 1, "vxlan", arp_proxy=True)) == [
        "table=arp_responder, priority=100,arp,dl_vlan=1,arp_op=1,arp_tpa=10.2.2.1 "
        + REPLY.format(mac="02:02:0a:02:02:01", ip="10.2.2.1", pop="pop_vlan,")
    ]
    assert _responder(B.local_endpoint_flows(lep, 1, "vxlan")) == []  # flood mode: none
    rep = RemoteEndpoint("02:02:0a:03:0c:01", "10.3.12.1", "10.99.77.3", vni=2)
    # a remote endpoint is answered to local askers only (RX_VTEP=0): the VTEP side has its own host
    assert _responder(B.remote_endpoint_flows(rep, 1, 2, 3, "vxlan", arp_proxy=True)) == [
        "table=arp_responder, priority=100,arp,metadata=0/0x1,dl_vlan=2,arp_op=1,arp_tpa=10.3.12.1 "
        + REPLY.format(mac="02:02:0a:03:0c:01", ip="10.3.12.1", pop="pop_vlan,")
    ]
    assert _responder(B.remote_endpoint_flows(rep, 1, 2, None, "vxlan", arp_proxy=True)) == []  # pending


def test_arp_responder_flows_vlan_bridge_scoped_by_vrf():
    lep = LocalEndpoint(2, "02:02:0a:01:01:01", "10.1.1.1", 100)
    assert _responder(B.local_endpoint_flows(lep, 3, "vlan", arp_proxy=True)) == [
        "table=arp_responder, priority=100,arp,metadata=0x300000000/0xff00000000,arp_op=1,arp_tpa=10.1.1.1 "
        + REPLY.format(mac="02:02:0a:01:01:01", ip="10.1.1.1", pop="")
    ]
    rep = RemoteEndpoint("02:02:0a:01:01:09", "10.1.1.9", "10.99.77.3", vlan=100)
    assert len(_responder(B.remote_endpoint_flows(rep, 3, 100, None, "vlan", arp_proxy=True))) == 1


def test_arp_responder_gateway_flow():
    net = Network(1, 5001, "10.1.1.254")
    (gw,) = _responder(B.network_flows(net, 1, [], arp_proxy=True))
    assert gw == (
        "table=arp_responder, priority=90,arp,metadata=0/0x1,dl_vlan=1,arp_op=1,arp_tpa=10.1.1.254 "
        + REPLY.format(mac=B.GATEWAY_MAC, ip="10.1.1.254", pop="pop_vlan,")
    )
    assert _responder(B.network_flows(Network(1, 5001), 1, [], arp_proxy=True)) == []
    assert _responder(B.network_flows(net, 1, [])) == []


def test_arp_responder_vip_flow():
    svc = Service("10.1.1.100", "t", ["80:8080:TCP"])
    assert _responder(B.service_watch_flows(svc, 2)) == []
    assert _responder(B.service_watch_flows(svc, 2, arp_proxy=True)) == [
        "table=arp_responder, priority=95,arp,metadata=0x200000000/0xff00000001,vlan_vid=0x1000/0x1000,"
        "arp_op=1,arp_tpa=10.1.1.100 "
        + REPLY.format(mac="02:02:0a:01:01:64", ip="10.1.1.100", pop="pop_vlan,")
    ]
    # endpoints outrank a VIP, which outranks the gateway; anything else is punted
    assert Prio.ARP_ENDPOINT > Prio.ARP_VIP > Prio.ARP_GATEWAY > Prio.ARP_PUNT
