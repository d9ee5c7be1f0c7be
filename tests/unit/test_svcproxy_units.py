"""Service LB pieces without a switch: Service validation, rendezvous hashing, flow builders (golden
text and codec round trip), cookie categories, and the netplugin ServiceManager's records -> services.
The data path itself is tested on real OVS (tests/integration/test_ofnet_svcproxy.py,
test_dataplane_service.py)."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import pytest

from contivpy.common.errors import ValidationError
from contivpy.model.state import ProviderState, ServiceLBState
from contivpy.netplugin.managers.service import ServiceManager
from contivpy.ofnet import builders as B
from contivpy.ofnet import codec
from contivpy.ofnet.cookies import Category, category_of, cookie_for
from contivpy.ofnet.flows import Ct, Flow, Nat
from contivpy.ofnet.pipeline import DST_GROUP, SVC_CT_ZONE, SVC_SNAT
from contivpy.ofnet.svcproxy import _strip_vlan, hrw_choice, vip_mac
from contivpy.ofnet.types import Service


def test_service_normalises_and_validates():
    s = Service("10.1.1.100", "t1", ["80:8080:TCP", (53, 5353, "udp")], ["10.1.1.4", "10.1.1.3", "10.1.1.4"])
    assert s.ports == ((53, 5353, "udp"), (80, 8080, "tcp"))
    assert s.providers == ("10.1.1.3", "10.1.1.4") and s.key == "10.1.1.100:t1"
    assert Service("10.1.1.100", "t1", [(80, 8080, "tcp")], ["10.1.1.3", "10.1.1.4"]) != s
    with pytest.raises(ValidationError, match="needs at least one port"):
        Service("10.1.1.100", "t1", [])
    with pytest.raises(ValidationError, match="svcPort:provPort"):
        Service("10.1.1.100", "t1", ["80-8080"])
    with pytest.raises(ValidationError, match="invalid provider IP"):
        Service("10.1.1.100", "t1", ["80:80:TCP"], ["10.1.1"])


def test_rendezvous_hash_is_stable_and_moves_only_the_losers():
    provs = [f"10.1.1.{i}" for i in range(2, 6)]
    clients = [f"10.1.2.{i}" for i in range(1, 201)]
    before = {c: hrw_choice(c, provs) for c in clients}
    assert before == {c: hrw_choice(c, list(reversed(provs))) for c in clients}  # order-free
    assert {hrw_choice(c, provs) for c in clients} == set(provs)
    counts = [list(before.values()).count(p) for p in provs]
    assert min(counts) > 25  # roughly even (200 clients over 4)
    after = {c: hrw_choice(c, provs[1:]) for c in clients}  # provider .2 goes
    moved = [c for c in clients if before[c] != after[c]]
    assert moved and all(before[c] == "10.1.1.2" for c in moved)
    assert hrw_choice("10.1.2.1", []) is None


def test_builders_golden_and_codec_round_trip():
    s = Service("10.1.1.100", "t1", ["80:8080:TCP"], ["10.1.1.3"])
    flows = B.service_watch_flows(s, 2) + B.service_client_flows(
        s, 2, "10.1.1.1", "10.1.1.3", vip_mac("10.1.1.3")
    )
    assert [str(f) for f in flows] == [
        "table=svc_dnat, priority=10,tcp,metadata=0x200000000/0xff00000000,nw_dst=10.1.1.100 actions=CONTROLLER:65535",
        "table=svc_dnat, priority=100,tcp,metadata=0x200000000/0xff00000000,nw_src=10.1.1.1,nw_dst=10.1.1.100,"
        "tp_dst=80 actions=set_field:02:02:0a:01:01:03->dl_dst,"
        "ct(commit,table=dst_group,zone=65000,nat(dst=10.1.1.3:8080))",
        "table=svc_snat, priority=100,tcp,metadata=0x200000000/0xff00000000,nw_src=10.1.1.3,nw_dst=10.1.1.1,"
        "tp_src=8080 actions=ct(table=mac_dest,zone=65000,nat)",
    ]
    for f in flows:
        f = f.with_cookie(cookie_for("svcc:10.1.1.100:t1:10.1.1.1"))
        m = codec.parse_message(codec.encode_flow_mod(f, codec.ADD, 7))
        st = SimpleNamespace(
            table_id=m.table_id,
            priority=m.priority,
            match=m.match,
            instructions=m.instructions,
            cookie=m.cookie,
        )
        assert codec.flow_from_stats(st) == f
    assert category_of(cookie_for("svc:10.1.1.100:t1")) == Category.SERVICE
    assert category_of(cookie_for("svcc:10.1.1.100:t1:10.1.1.1")) == Category.SVC_CLIENT
    assert vip_mac("10.1.1.100") == "02:02:0a:01:01:64"


def test_ct_action_text_validation_and_read_back_of_ovs_encoding():
    dnat = Ct(SVC_CT_ZONE, DST_GROUP, commit=True, nat=Nat("dst", "10.1.1.3", 8080))
    assert dnat.text(names=False) == "ct(commit,table=4,zone=65000,nat(dst=10.1.1.3:8080))"
    assert str(Ct(7, None, nat=Nat())) == "ct(zone=7,nat)"
    assert str(Nat("src", "10.1.1.9")) == "nat(src=10.1.1.9)"
    for bad in (
        lambda: Nat("dst"),
        lambda: Nat(None, "10.1.1.3"),
        lambda: Nat("both", "10.1.1.3"),
        lambda: Nat("dst", "10.1.1.300", 80),
        lambda: Ct(70000),
        lambda: Flow(SVC_SNAT, 100, actions=(Ct(1, DST_GROUP),)),  # recirculation must go forward
    ):
        with pytest.raises(ValueError):
            bad()
    # OVS may read a single address back with max == min: still the same action
    nat = struct.pack("!HHIH2xHH", 0xFFFF, 32, 0x2320, 36, 2, 1 | 2 | 16 | 32)
    nat += bytes([10, 1, 1, 3] * 2) + struct.pack("!HH4x", 8080, 8080)
    ct = struct.pack("!HHIHHIHB3xH", 0xFFFF, 24 + len(nat), 0x2320, 35, 1, 0, SVC_CT_ZONE, 4, 0) + nat
    assert codec.decode_actions(ct) == [dnat]
    ranged = struct.pack("!HHIH2xHH", 0xFFFF, 24, 0x2320, 36, 2, 1 | 2) + bytes([1, 1, 1, 1, 1, 1, 1, 9])
    ct2 = struct.pack("!HHIHHIHB3xH", 0xFFFF, 24 + len(ranged), 0x2320, 35, 1, 0, 1, 4, 0) + ranged
    (back,) = codec.decode_actions(ct2)
    assert isinstance(back, codec.Unsupported)  # a real range is not something we build


def test_strip_vlan():
    frame = bytes(12) + b"\x08\x00" + b"payload"
    tagged = bytes(12) + b"\x81\x00\x10\x01" + b"\x08\x00" + b"payload"
    assert _strip_vlan(tagged) == frame and _strip_vlan(frame) == frame


class _Dp:
    def __init__(self):
        self.calls = []
        self.node_ports = []  # every set_node_ports call

    async def set_node_ports(self, ports):
        self.node_ports.append(ports)

    async def add_service(self, svc):
        self.calls.append(("add", svc))

    async def remove_service(self, vip, tenant):
        self.calls.append(("remove", vip, tenant))


async def test_service_manager_records_to_services():
    dp = _Dp()
    m = ServiceManager(dp)
    lb = ServiceLBState(id="web:t1", servicename="web", tenantname="t1", subnet="n1", ports=["80:8080:TCP"])
    m.on_lb("web:t1", lb.to_json())
    await m.apply()
    assert dp.calls == []  # no VIP yet
    lb.ipaddress = "10.1.1.100"
    m.on_lb("web:t1", lb.to_json())
    m.on_lb("bad:t1", "{not json")
    m.on_lb("bad2:t1", ServiceLBState(id="bad2:t1", ipaddress="10.1.1.101", ports=["x"]).to_json())
    await m.apply()
    assert dp.calls == [("add", Service("10.1.1.100", "t1", ["80:8080:TCP"], []))]
    assert set(m.failed) == {"bad:t1", "bad2:t1"}
    m.on_provider("web:t1", ProviderState("web:t1", ["10.1.1.3"]).to_json())
    await m.apply()
    await m.apply()  # idempotent
    assert dp.calls[1:] == [("add", Service("10.1.1.100", "t1", ["80:8080:TCP"], ["10.1.1.3"]))]
    m.on_lb("web:t1", None)
    await m.apply()
    assert dp.calls[2:] == [("remove", "10.1.1.100", "t1")] and m.applied == {}
    assert dp.node_ports == [[]]  # converged once at start (stale rules of a previous run go), then unchanged


async def test_service_manager_node_ports():
    dp = _Dp()
    m = ServiceManager(dp)
    web = ServiceLBState(
        id="web:t1", tenantname="t1", ports=["80:8080:TCP", "53:5353:UDP"], ipaddress="10.1.1.100",
        nodeports=["30080:80:TCP", "30053:53:UDP"],
    )  # fmt: skip
    m.on_lb("web:t1", web.to_json())
    other = ServiceLBState(id="x:t2", tenantname="t2", ports=["81:81:TCP"], ipaddress="10.2.1.5",
                           nodeports=["30080:81:TCP", "30081:81:TCP"])  # fmt: skip
    m.on_lb("x:t2", other.to_json())
    m.on_lb("novip:t1", ServiceLBState(id="novip:t1", ports=["1:1:TCP"], nodeports=["30090:1:TCP"]).to_json())
    await m.apply()
    # 30080/tcp is web's (first by id), x keeps 30081; a service without a VIP has no rule yet
    assert dp.node_ports[-1] == [
        ("tcp", 30080, "10.1.1.100", 80), ("tcp", 30081, "10.2.1.5", 81), ("udp", 30053, "10.1.1.100", 53),
    ]  # fmt: skip
    n = len(dp.node_ports)
    await m.apply()
    assert len(dp.node_ports) == n  # unchanged: not re-applied
    m.on_lb("web:t1", None)
    await m.apply()
    assert dp.node_ports[-1] == [("tcp", 30080, "10.2.1.5", 81), ("tcp", 30081, "10.2.1.5", 81)]
    assert "nodeports" not in json.loads(ServiceLBState(id="a:b").to_json())  # original's record unchanged
