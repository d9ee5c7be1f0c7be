"""Netprofile QoS in the data plane (docs/original.md §5.3; §7.2 TestNetprofileDscp / TestNetprofileBandwidth).

Two-host test bed, real netctl/netmaster/netplugin/OVS: a group with a netprofile gets, on the host of each
of its endpoints, the DSCP set action in the endpoint's table-1 port flow and the ingress policing on its
OVS interface (10mbps -> 10 * 1024^2 / 1000 = 10485 kbps, the original's arithmetic). Changing the
profile updates both on the existing endpoint; detaching the profile removes both.
"""

from __future__ import annotations

import pytest

from tests.fixtures.testbed import wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.start_all()
        yield b


def _policing(host, port: str) -> tuple[int, int]:
    rate = host.vsctl("get", "Interface", port, "ingress_policing_rate").strip()
    burst = host.vsctl("get", "Interface", port, "ingress_policing_burst").strip()
    return int(rate), int(burst)


def _dscp_flow(host, ofport: int, dscp: int) -> bool:
    return has_flow(host, "table=1", "priority=11,ip", f"in_port={ofport}", f"set_field:{dscp}->ip_dscp")


def test_netprofile_dscp_and_bandwidth(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.netctl("network", "create", "--subnet", "10.110.1.0/24", "qos-net")
    out = bed.netctl(
        "netprofile",
        "create",
        "-t",
        "default",
        "--dscp",
        "10",
        "--bandwidth",
        "10mbps",
        "--burst",
        "100",
        "prof",
    )
    assert "Creating netprofile default:prof" in out
    bed.netctl("group", "create", "-n", "prof", "qos-net", "qg")
    i1, c1 = make_ep(h1, "qos-net", "qos1", group="qg")
    i2, c2 = make_ep(h2, "qos-net", "qos2")  # no group: no QoS
    port, ofport = i1["ovs_port"], i1["ofport"]

    # the endpoint is created with its group's QoS in place
    assert _dscp_flow(h1, ofport, 10), h1.flows()
    assert _policing(h1, port) == (10485, 100)
    assert _policing(h2, i2["ovs_port"]) == (0, 0)
    assert not has_flow(h2, "table=1", "->ip_dscp")
    assert c1.ping(c2.ip) and c2.ping(c1.ip)  # the marked flow still forwards

    # profile changed: DSCP 20, 20mbps, burst 200 -> existing endpoint updated
    bed.netctl(
        "netprofile",
        "create",
        "-t",
        "default",
        "--dscp",
        "20",
        "--bandwidth",
        "20mbps",
        "--burst",
        "200",
        "prof",
    )
    wait_for(lambda: _dscp_flow(h1, ofport, 20), 15, what="DSCP 20 on the port flow")
    assert not _dscp_flow(h1, ofport, 10)
    wait_for(lambda: _policing(h1, port) == (20971, 200), 15, what="policing 20mbps/200")

    # detached (group updated without a profile): marking and policing gone, flows still forward
    bed.netctl("group", "create", "qos-net", "qg")
    wait_for(lambda: not has_flow(h1, "table=1", "->ip_dscp"), 15, what="DSCP flow removed")
    wait_for(lambda: _policing(h1, port) == (0, 0), 15, what="policing removed")
    assert has_flow(h1, "table=1", f"in_port={ofport}")
    assert c1.ping(c2.ip)

    # re-attached: a restarted agent binds the endpoint with the group's QoS again
    bed.netctl("group", "create", "-n", "prof", "qos-net", "qg")
    wait_for(lambda: _dscp_flow(h1, ofport, 20), 15, what="DSCP back after re-attach")
    h1.stop_netplugin()
    h1.vsctl("set", "Interface", port, "ingress_policing_rate=0")
    h1.start_netplugin()
    wait_for(lambda: _policing(h1, port) == (20971, 200), 15, what="policing restored after restart")
    assert _dscp_flow(h1, ofport, 20)
