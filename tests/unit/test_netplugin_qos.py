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
