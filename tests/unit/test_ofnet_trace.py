"""ofnet/trace.py: packet description, destination MAC choice, parsing and explaining ofproto/trace.

The two trace texts in tests/data were printed by a real ovs-vswitchd on the test bed
(tests/integration/test_dataplane_trace.py, host h1): a TCP packet denied by a policy rule and an
ICMP packet tunnelled to the other host. The agent here is a real (unconnected) ``OfnetAgent``
holding the same state as h1's, so the cookies in the texts map back to the same owners.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contivpy.common.errors import ValidationError
from contivpy.ofnet import trace as T
from contivpy.ofnet.agent import OfnetAgent
from contivpy.ofnet.cookies import cookie_for, owner_of
from contivpy.ofnet.pipeline import TABLES
from contivpy.ofnet.types import LocalEndpoint, RemoteEndpoint, Rule

DATA = Path(__file__).resolve().parents[1] / "data"
RULE_ID = "default:trweb:default:trpol:default:trpol:1:inRx"
A = LocalEndpoint(3, "02:02:0a:83:01:01", "10.131.1.1", 1, endpoint_id="tra")
B = LocalEndpoint(4, "02:02:0a:83:01:02", "10.131.1.2", 1, epg=1, endpoint_id="trb")
C = RemoteEndpoint("02:02:0a:83:01:03", "10.131.1.3", "192.168.213.12", vni=1)
PORTS = {1: "contivh0", 2: "vxif19216821312", 3: "vvport1", 4: "vvport2"}


async def _h1(mode: str = "bridge") -> OfnetAgent:
    ag = OfnetAgent("contivVxlanBridge", "vxlan", port=0, fwd_mode=mode)
    await ag._apply(ag._base_owner(), ag._arp_owner())  # start() without listening
    await ag.add_network(1, 1, "", "default", "10.131.1.0/24", vrf_id=1)
    await ag.add_local_endpoint(A)
    await ag.add_local_endpoint(B)
    await ag.add_vtep(2, "192.168.213.12")
    await ag.add_remote_endpoint(C)
    await ag.add_rule(Rule(RULE_ID, 1, dst_epg=1, protocol=6, dst_port=8080, action="deny"))
    return ag


def test_owner_of_maps_cookies_back():
    owners = ["base", "lep:3", f"rule:{RULE_ID}"]
    assert owner_of(cookie_for(f"rule:{RULE_ID}"), owners) == f"rule:{RULE_ID}"
    assert owner_of(cookie_for("lep:4"), owners) is None  # not a current owner
    assert owner_of(0x1234, owners) is None  # not ours


def test_packet_for_each_protocol():
    assert T.packet_for(A, "10.131.1.2", B.mac, "tcp", 80) == (
        "tcp,in_port=3,dl_src=02:02:0a:83:01:01,dl_dst=02:02:0a:83:01:02,nw_src=10.131.1.1,"
        "nw_dst=10.131.1.2,nw_ttl=64,tcp_src=49152,tcp_dst=80,tcp_flags=syn"
    )
    assert T.packet_for(A, "10.131.1.2", B.mac, "udp", 53).endswith("udp_src=49152,udp_dst=53")
    assert T.packet_for(A, "10.131.1.2", B.mac).endswith("icmp_type=8,icmp_code=0")
    for proto, port, msg in [("sctp", 1, "invalid protocol"), ("icmp", 5, "needs protocol tcp"),
                             ("tcp", 0, "needs a destination port"), ("udp", 70000, "needs a destination port")]:  # fmt: skip
        with pytest.raises(ValidationError, match=msg):
            T.packet_for(A, "10.131.1.2", B.mac, proto, port)


async def test_dst_mac_as_the_agent_answers_arp():
    ag = await _h1()
    assert T.dst_mac_for(ag, A, "10.131.1.2") == (B.mac, "local endpoint 10.131.1.2")
    assert T.dst_mac_for(ag, A, "10.131.1.3") == (C.mac, "remote endpoint 10.131.1.3")
    assert T.dst_mac_for(ag, A, "198.51.100.10")[0] == "00:00:11:11:11:11"
    with pytest.raises(ValidationError, match="no endpoint has address 10.131.1.250"):
        T.dst_mac_for(ag, A, "10.131.1.250")
    with pytest.raises(ValidationError, match="invalid destination IP"):
        T.dst_mac_for(ag, A, "10.131.1")
    with pytest.raises(ValidationError, match="own address"):
        T.dst_mac_for(ag, A, A.ip)
    routed = await _h1("routing")
    assert T.dst_mac_for(routed, A, "10.131.1.2")[0] == "00:00:11:11:11:11"


async def test_explain_policy_deny():
    ag = await _h1()
    tr = T.parse((DATA / "ofproto-trace-deny.txt").read_text(), "contivVxlanBridge")
    assert tr.flow.startswith("tcp,in_port=3,") and tr.datapath_actions == "drop"
    res = T.explain(ag, tr, 3, PORTS)
    assert [s["tableName"] for s in res["steps"]] == ["input", "vlan", "svc_dnat", "dst_group", "policy"]
    assert [s["owner"] for s in res["steps"]] == ["base", "lep:3", "base", "lep:4", f"rule:{RULE_ID}"]
    assert (
        res["steps"][4]["priority"] == 11
        and res["steps"][4]["match"] == "tcp,metadata=0x2/0xfffe,tp_dst=8080"
    )
    assert res["policy"] == {
        "verdict": "deny",
        "rule": {"id": RULE_ID, "action": "deny", "priority": 1, "tenant": "default", "group": "trweb",
                 "policy": "trpol", "ruleId": "1", "direction": "inRx"},
    }  # fmt: skip
    assert res["final"] == {"kind": "drop", "table": "policy", "owner": f"rule:{RULE_ID}"}


async def test_explain_tunnel_skips_the_nested_bridge():
    ag = await _h1()
    tr = T.parse((DATA / "ofproto-trace-tunnel.txt").read_text(), "contivVxlanBridge")
    res = T.explain(ag, tr, 3, PORTS)
    names = [s["tableName"] for s in res["steps"]]
    assert names == ["input", "vlan", "svc_dnat", "dst_group", "policy", "svc_snat", "mac_dest"]  # no br-phy
    assert res["steps"][-1]["owner"] == "rep:10.131.1.3:default"
    assert res["steps"][-1]["actions"] == ["set_field:0x1->tun_id", "pop_vlan", "output:2"]
    assert res["final"] == {
        "kind": "tunnel",
        "port": "vxif19216821312",
        "ofport": 2,
        "vtep": "192.168.213.12",
        "vni": 1,
    }
    assert res["policy"]["verdict"] == "allow" and res["policy"]["rule"] is None
    assert res["datapathActions"].startswith("tnl_push(")


def test_parse_no_match_and_controller():
    text = (
        'bridge("br")\n-----------\n 0. priority 1, cookie 0xc001d58d05fe2874\n    goto_table:1\n'
        " 1. No match.\n    drop\n\nDatapath actions: drop\n"
    )
    tr = T.parse(text, "br")
    assert [(s.table_id, s.no_match) for s in tr.steps] == [(0, False), (1, True)]
    # table names come from pipeline.TABLES (one declaration), unknown ids get a generic name
    assert {t.id: t.name for t in TABLES}[1] == "vlan"
    assert T.parse('bridge("br")\n 42. priority 1\n    CONTROLLER:65535\n', "br").steps[0].table_id == 42


async def test_explain_normal_on_the_vlan_bridge():
    ag = OfnetAgent("contivVlanBridge", "vlan", port=0)
    await ag._apply(ag._base_owner())
    text = (
        'bridge("contivVlanBridge")\n--------------------------\n'
        " 9. priority 1, cookie 0xc001d58d05fe2874\n    NORMAL\n"
        "     -> no learned MAC for destination, flooding\n\nDatapath actions: 3,4\n"
    )
    res = T.explain(ag, T.parse(text, "contivVlanBridge"), 3, {})
    assert res["steps"][0]["notes"] == ["no learned MAC for destination, flooding"]
    assert res["steps"][0]["owner"] == "base" and res["steps"][0]["tableName"] == "mac_dest"
    assert res["final"] == {"kind": "normal", "detail": "no learned MAC for destination, flooding"}
