"""Netprofile bandwidth -> OVS ingress_policing_rate (kbps), the original's arithmetic: value * 1024^k / 1000."""

from __future__ import annotations

import pytest

from contivpy.netplugin.managers.qos import QosManager, bandwidth_kbps


@pytest.mark.parametrize(
    ("bw", "kbps"),
    [
        ("10mbps", 10485),
        ("6 Mbps", 6291),
        ("18Mb", 18874),
        ("16M", 16777),
        ("1gbps", 1073741),
        ("500kbps", 512),
        ("", 0),
        ("Mbps", 0),
    ],
)
def test_bandwidth_kbps(bw, kbps):
    assert bandwidth_kbps(bw) == kbps


def test_group_state_parsed_and_detached():
    q = QosManager(dp=None)
    q.on_update("qg:default", '{"id":"qg:default","DSCP":10,"Bandwidth":"10mbps","Burst":100}')
    assert (q.qos("qg:default").dscp, q.qos("qg:default").rate_kbps, q.qos("qg:default").burst) == (
        10,
        10485,
        100,
    )
    q.on_update("qg:default", '{"id":"qg:default","DSCP":0,"Bandwidth":"","Burst":0}')
    assert q.qos("qg:default") == q.qos("other:default")  # all zero: no marking, no policing
    q.on_update("qg:default", "{not json")  # malformed: previous value kept, no exception
    assert q.qos("qg:default").dscp == 0


class _RecordingDatapath:
    """The two Datapath calls QosManager makes, recorded (the OVS side is in test_dataplane_qos)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def add_local_endpoint(self, ep) -> None:
        self.calls.append(("flows", ep.id, ep.dscp))

    async def set_port_policing(self, port: str, rate: int, burst: int) -> None:
        self.calls.append(("policing", port, rate, burst))


def _ep(ep_id: str):
    from contivpy.netplugin.datapath import EpSpec, NetSpec

    net = NetSpec("n.default", "default", "vxlan", 1, 1, "", 24)
    return EpSpec(ep_id, net, "10.1.1.2", "02:02:0a:01:01:02", ofport=3)


async def test_bind_skips_policing_write_only_for_a_fresh_port_without_qos():
    dp = _RecordingDatapath()
    q = QosManager(dp)
    q.on_update("qg:default", '{"id":"qg:default","DSCP":10,"Bandwidth":"10mbps","Burst":100}')

    await q.bind(_ep("a"), "vvport1", "other:default", fresh_port=True)  # new port, no QoS: flows only
    await q.bind(_ep("b"), "vvport2", "other:default", fresh_port=False)  # restart: reset to 0/0
    await q.bind(_ep("c"), "vvport3", "qg:default", fresh_port=True)  # new port with QoS: set
    assert dp.calls == [
        ("flows", "a", 0),
        ("flows", "b", 0),
        ("policing", "vvport2", 0, 0),
        ("flows", "c", 10),
        ("policing", "vvport3", 10485, 100),
    ]

    dp.calls.clear()
    q.on_update("other:default", '{"id":"other:default","DSCP":0,"Bandwidth":"1mbps","Burst":5}')
    await q.apply()
    assert sorted(dp.calls) == [("policing", "vvport1", 1048, 5), ("policing", "vvport2", 1048, 5)]
