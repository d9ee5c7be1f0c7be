"""The infra network contivh1 on the real test bed (netplugin/managers/infra.py, ofnet/infraroute.py).

Bridge mode: host routes ``<subnet> via <contivh1 address>`` to every vxlan data subnet of its tenant
(``ip route``), the host pings containers on its own and on the other host and a container pings the
host's contivh1 address, another tenant stays isolated (tagged FORWARD drop), a data network deleted takes
its route with it, an agent restart converges without duplicates (same flows, one route per subnet).
Routing mode (the original's host access scenario, TestBasicHostAccess): table ``ip`` routes the contivh1
port's VRF and the bridge-mode routed flows are absent. Each test has its own test bed.
"""

from __future__ import annotations

import pytest

from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep
from tests.integration.test_dataplane_infra import addr, host_ping, routes

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


def test_contivh1_in_routing_mode():
    """The original's host access scenario: routing mode, table ip routes the contivh1 port's VRF."""
    with Testbed(2) as rb:
        rb.netctl("global", "set", "--fwd-mode", "routing")
        rb.start_all("--netmode", "vxlan", "--fwdmode", "routing")
        h1, h2 = rb.hosts[1], rb.hosts[2]
        rb.create_network("pipe-net", "10.132.4.0/22", gateway="10.132.7.254")
        rb.create_network("contivh1", "10.132.100.0/24", nwType="infra")
        for h in (h1, h2):
            wait_for(lambda h=h: addr(h, "contivh1"), 15, what=f"contivh1 address on {h.name}")
            via = addr(h, "contivh1")
            wait_for(lambda h=h, via=via: any(r.startswith(f"10.132.4.0/22 via {via} dev contivh1") for r in routes(h)),
                     15, what=f"route on {h.name}")  # fmt: skip
        _, c1 = make_ep(h1, "pipe-net", "rh1a")
        _, c2 = make_ep(h2, "pipe-net", "rh1b")
        wait_for(
            lambda: has_flow(h1, f"nw_dst={c2.ip}") and has_flow(h2, f"nw_dst={c1.ip}"), 15, what="routes"
        )
        assert host_ping(h1, c1.ip) and host_ping(h1, c2.ip), "host -> containers (routed)"
        assert c2.ping(addr(h1, "contivh1")), "container -> a host's contivh1 address"
        assert not any("priority=60" in f and "table=6" in f for f in h1.flows()), "no bridge-mode routes"


def test_contivh1_routes_data_subnets():
    with Testbed(2) as bed:
        bed.start_all()
        _contivh1_bridge(bed)


def _contivh1_bridge(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("pipenet", "10.131.4.0/24", gateway="10.131.4.254")
    bed.create_network("bunker", "10.131.5.0/24", gateway="10.131.5.254")
    bed.create_network("other", "10.131.6.0/24", tenant="ct2", gateway="10.131.6.254")
    bed.create_network("vlnet", "10.131.7.0/24", encap="vlan", pktTag=431)
    bed.create_network("contivh1", "10.131.100.0/24", nwType="infra")
    via = {}
    for h in (h1, h2):
        wait_for(lambda h=h: addr(h, "contivh1"), 15, what=f"contivh1 address on {h.name}")
        via[h.idx] = addr(h, "contivh1")
        want = [
            f"10.131.4.0/24 via {via[h.idx]} dev contivh1",
            f"10.131.5.0/24 via {via[h.idx]} dev contivh1",
        ]
        wait_for(lambda h=h, want=want: all(any(r.startswith(w) for r in routes(h)) for w in want), 15,
                 what=f"routes on {h.name}")  # fmt: skip
        assert not any("10.131.6.0" in r or "10.131.7.0" in r for r in routes(h)), "same tenant, vxlan only"
    i1, c1 = make_ep(h1, "pipenet", "ch1a")
    i2, c2 = make_ep(h2, "pipenet", "ch1b")
    _, c3 = make_ep(h1, "bunker", "ch1c")
    wait_for(lambda: has_flow(h1, f"dl_dst={i2['mac_address']}") and has_flow(h2, f"dl_dst={i1['mac_address']}"),
             15, what="remote endpoints learnt")  # fmt: skip
    assert c1.ping(c2.ip)
    assert host_ping(h1, c1.ip) and host_ping(h1, c3.ip), "host -> its containers over contivh1"
    assert host_ping(h1, c2.ip), "host -> a container on the other host"
    assert c2.ping(via[1]) and c1.ping(via[1]), "containers -> a host's contivh1 address"
    _, o1 = make_ep(h1, "other", "ch1o", tenant="ct2")
    # another tenant reaches the host (host access, like any host address) but not through its routes
    assert not o1.ping(c1.ip, budget=2) and not o1.ping(c2.ip, budget=2), "tenant isolation"
    block = "-A FORWARD -i contivh0 -o contivh1 -m comment --comment contivpy -j DROP"
    assert h1.exec("iptables", "-w", "-S", "FORWARD").splitlines().count(block) == 1
    # restart: identical flows, one route per subnet
    before = h1.flows()
    h1.stop_netplugin()
    h1.start_netplugin()
    wait_for(lambda: h1.flows() == before, 15, what="same flows after restart")
    rs = routes(h1)
    assert len([r for r in rs if r.startswith("10.131.4.0/24")]) == 1 and len(rs) == 3, rs
    assert h1.exec("iptables", "-w", "-S", "FORWARD").splitlines().count(block) == 1
    assert host_ping(h1, c2.ip)
    # a data network deleted takes its route with it
    from tests.integration.test_dataplane_basic import delete_ep

    delete_ep(h1, "bunker", "ch1c")
    bed.delete_network("bunker")
    for h in (h1, h2):
        wait_for(
            lambda h=h: not any("10.131.5.0" in r for r in routes(h)), 15, what=f"route gone on {h.name}"
        )
        assert any(r.startswith("10.131.4.0/24") for r in routes(h))
    bed.delete_network("contivh1")
    for h in (h1, h2):
        wait_for(lambda h=h: "contivh1" not in h.ports("contivVxlanBridge"), 15, what="contivh1 gone")
        assert not any("10.131.4.0" in r for r in routes(h))
    assert not any("table=10" in f and "priority=101" in f for f in h1.flows()), "routing flows gone"
    assert block not in h1.exec("iptables", "-w", "-S", "FORWARD")
