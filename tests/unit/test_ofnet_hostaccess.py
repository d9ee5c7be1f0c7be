"""Host access flow builders and the agent's owners (contivh0, private addresses; docs/ovs-pipeline.md)."""

from __future__ import annotations

import pytest

from contivpy.common.errors import ValidationError
from contivpy.netplugin import iptables
from contivpy.ofnet import cookies
from contivpy.ofnet.hostaccess import (
    HostAccess,
    host_endpoint_flows,
    host_port_address,
    host_port_flows,
    mac_of,
    private_address,
)
from contivpy.ofnet.types import LocalEndpoint


def test_addresses_follow_the_private_subnet():
    assert host_port_address("172.19.0.0/16") == "172.19.255.254"
    assert mac_of("172.19.255.254") == "02:02:ac:13:ff:fe"
    assert private_address("172.19.0.0/16", 5) == "172.19.0.5"
    assert private_address("10.99.0.0/16", 300) == "10.99.1.44"
    with pytest.raises(ValidationError, match="not a /16"):
        host_port_address("172.19.0.0/24")
    with pytest.raises(ValidationError):
        private_address("172.19.0.0/16", 0xFFFE)


def test_host_port_flows_text():
    text = sorted(str(f) for f in host_port_flows(7, "172.19.0.0/16"))
    assert text == [
        "table=input, priority=102,arp,in_port=7 actions=CONTROLLER:65535",
        "table=input, priority=102,udp,in_port=7,tp_dst=53 actions=goto_table:vlan",
        "table=svc_snat, priority=50,ip,metadata=0/0x1,dl_dst=00:00:11:11:11:11 actions=goto_table:host_snat",
        "table=svc_snat, priority=51,ip,metadata=0/0x1,dl_dst=00:00:11:11:11:11,"
        "nw_dst=172.19.0.0/255.255.0.0 actions=drop",
        "table=svc_snat, priority=52,ip,metadata=0/0x1,dl_dst=00:00:11:11:11:11,"
        "nw_dst=172.19.255.254 actions=goto_table:host_snat",
        "table=vlan, priority=100,in_port=7 actions=goto_table:host_dnat",
    ]


def test_host_endpoint_flows():
    ep = LocalEndpoint(ofport=5, mac="02:02:0a:01:01:02", ip="10.1.1.2", vlan=3, vrf="t1")
    snat, dnat = host_endpoint_flows(ep, 2, 7, "172.19.0.0/16")
    assert snat.table.name == "host_snat" and snat.match.get("in_port") == 5
    assert [str(a) for a in snat.actions][:3] == [
        "set_field:172.19.0.5->nw_src",
        "set_field:02:02:ac:13:00:05->dl_src",
        "set_field:02:02:ac:13:ff:fe->dl_dst",
    ]
    assert str(snat.actions[-1]) == "output:7"
    assert dnat.table.name == "host_dnat" and dnat.match.get("ipv4_dst") == "172.19.0.5"
    assert dnat.goto.name == "dst_group"
    assert dnat.write_metadata == (2 << 32, 0xFF00000000)


def test_owners_empty_without_a_host_port_and_cookies_are_distinct():
    h = HostAccess()
    ep = LocalEndpoint(ofport=5, mac="02:02:0a:01:01:02", ip="10.1.1.2", vlan=3)
    assert h.port_owner() == ("hostport", [], [])
    assert h.endpoint_owner(ep, 1) == ("hep:5", [], [])
    h.set(7, "172.19.0.0/16")
    assert len(h.port_owner()[1]) == 6 and len(h.endpoint_owner(ep, 1)[1]) == 2
    assert h.arp_target_port("172.19.0.5") == 5 and h.arp_target_port("172.19.255.254") is None
    assert h.arp_target_port("10.1.1.2") is None
    with pytest.raises(ValidationError):
        h.set(7, "172.19.0.0/8")
    assert cookies.category_of(cookies.cookie_for("hostport")) == cookies.Category.HOST_PORT
    assert cookies.category_of(cookies.cookie_for("hep:5")) == cookies.Category.HOST_EP


def test_iptables_rules_are_tagged():
    rules = iptables.desired_rules("172.19.0.0/16")
    assert (
        "-A POSTROUTING -s 172.19.0.0/16 ! -o contivh0 -m comment --comment contivpy -j MASQUERADE" in rules
    )
    assert all(iptables.is_ours(r) for r in rules)
    assert not iptables.is_ours("-A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE")
    assert not iptables.is_ours("-A POSTROUTING -m comment --comment contivpy-other -j ACCEPT")


def test_vlan_bridge_host_access():
    assert host_port_address("172.19.0.0/16", vlan=True) == "172.19.255.253"
    assert private_address("172.19.0.0/16", 5, vlan=True) == "172.19.128.5"
    with pytest.raises(ValidationError):
        private_address("172.19.0.0/16", 0x8000)  # the vxlan bridge's stay below the vlan half
    h = HostAccess(vlan=True)
    h.set(9, "172.19.0.0/16")
    ep = LocalEndpoint(ofport=5, mac="02:02:0a:01:01:02", ip="10.1.1.2", vlan=100)
    text = sorted(str(f) for f in h.endpoint_owner(ep, 2, "10.1.1.254")[1])
    assert "table=mac_dest, priority=100,in_port=9,dl_dst=02:02:0a:01:01:02 actions=output:5" in text
    assert any(
        t.startswith("table=svc_snat, priority=101,arp,in_port=5,arp_op=1,arp_tpa=10.1.1.254") for t in text
    )
    assert any(t.startswith("table=host_snat, priority=100,ip,in_port=5 actions=set_field:172.19.128.5->nw_src")
               and t.endswith("output:9") and "pop_vlan" not in t for t in text)  # fmt: skip
    assert len(h.endpoint_owner(ep, 2)[1]) == 3  # no gateway: no ARP answer
    assert "table=svc_snat, priority=50,ip,dl_dst=00:00:11:11:11:11 actions=goto_table:host_snat" in [
        str(f) for f in h.port_owner()[1]
    ]
    assert h.arp_target_port("172.19.128.5") == 5 and h.arp_target_port("172.19.0.5") is None
    assert h.private_ip(5) == "172.19.128.5"
    h.routing = True  # vlrouter: the routing variant on the same port and addresses (no divert, no VLAN)
    port = [str(f) for f in h.port_owner()[1]]
    assert not [t for t in port if "priority=50" in t and t.startswith("table=svc_snat")]
    assert any("nw_dst=172.19.255.253" in t and "goto_table:host_snat" in t for t in port)
    snat, dnat = h.endpoint_owner(ep, 2, "10.1.1.254")[1]
    assert str(snat).startswith(
        "table=host_snat, priority=100,ip,in_port=5 actions=set_field:172.19.128.5->nw_src"
    )
    assert "nw_dst=172.19.128.5" in str(dnat) and "push_vlan" not in str(dnat)
    assert h.private_ip(5) == "172.19.128.5"


def test_node_port_rules():
    rules = iptables.nodeport_rules([("tcp", 30080, "10.1.1.5", 80), ("udp", 30053, "10.1.1.5", 53)])
    assert rules == [
        "-A CONTIV-NODEPORT -p tcp -m tcp --dport 30080 -m comment --comment contivpy-nodeport "
        "-j DNAT --to-destination 10.1.1.5:80",
        "-A CONTIV-NODEPORT -p udp -m udp --dport 30053 -m comment --comment contivpy-nodeport "
        "-j DNAT --to-destination 10.1.1.5:53",
        "-A POSTROUTING -o contivh1 -m conntrack --ctstate DNAT -m comment --comment contivpy-nodeport -j MASQUERADE",
    ]
    assert all(iptables.is_ours(r, iptables.NODEPORT_TAG) and not iptables.is_ours(r) for r in rules)
    assert iptables.nodeport_rules([]) == []
    with pytest.raises(ValueError):
        iptables.nodeport_rules([("sctp", 1, "10.1.1.5", 80)])


def test_flood_mode_router_arp():
    from contivpy.ofnet import builders as B
    from contivpy.ofnet.types import Network

    gw = sorted(str(f) for f in B.network_flows(Network(3, 5003, "10.1.3.254", subnet="10.1.3.0/24"), 1, [],
                                                 flood_router=True))  # fmt: skip
    assert any(
        "svc_snat, priority=100,arp" in t and "arp_tpa=10.1.3.254" in t and "arp_responder" in t for t in gw
    )
    assert any(t.startswith("table=arp_responder, priority=90,") for t in gw)
    nogw = [str(f) for f in B.network_flows(Network(4, 5004, subnet="10.1.4.0/24"), 1, [], flood_router=True)]
    assert any("priority=100,arp" in t and "arp_tpa=10.1.4.0/255.255.255.0" in t and "goto_table:mac_dest" in t
               for t in nogw)  # fmt: skip
    assert any("priority=99,arp" in t and "CONTROLLER" in t for t in nogw)
    proxy = [str(f) for f in B.network_flows(Network(4, 5004, subnet="10.1.4.0/24"), 1, [], True, True)]
    assert not any("svc_snat" in t for t in proxy)  # proxy mode diverts every request already
