"""Infra networks on the real test bed (netplugin/managers/infra.py, ofnet/infraroute.py, docs/docker.md).

Checks: an infra network gives every host an OVS internal port named after it, with the host's own
address (netmaster endpoint ``<net>.<tenant>-<host>-native-intf``), and hosts ping each other over it;
deleting it removes ports, oper records and the netmaster endpoints. The special network ``contivh1``
installs host routes ``<subnet> via <contivh1 address>`` to every vxlan data subnet of its tenant
(``ip route``), the host pings containers on its own and on the other host and a container pings the
host's contivh1 address; a data network deleted takes its route with it; an agent restart converges
without duplicates (same flows, one route per subnet).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


@pytest.fixture(scope="module")
def bed():
    with Testbed(2) as b:
        b.start_all()
        yield b


def addr(host, dev: str) -> str:
    """The host's IPv4 address on ``dev`` ("" if none)."""
    out = host.exec("ip", "-o", "-4", "addr", "show", "dev", dev, check=False).split()
    return out[out.index("inet") + 1].split("/")[0] if "inet" in out else ""


def host_ping(host, ip: str, budget: float = 6.0) -> bool:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if " 0% packet loss" in host.exec("ping", "-c", "1", "-W", "1", ip, check=False):
            return True
    return False


def routes(host, dev: str = "contivh1") -> list[str]:
    return [
        ln.strip() for ln in host.exec("ip", "-4", "route", "show", check=False).splitlines() if dev in ln
    ]


def oper(bed, ep_id: str) -> dict | None:
    v = bed.etcdctl("get", f"/contiv.io/oper/eps/{ep_id}", "--print-value-only").strip()
    return json.loads(v) if v else None


def test_infra_network_gives_each_host_an_address(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("infra1", "10.130.1.0/24", nwType="infra")
    bed.create_network("infra2", "10.130.2.0/24", nwType="infra")
    for dev, prefix in (("infra1", "10.130.1."), ("infra2", "10.130.2.")):
        for h in (h1, h2):
            wait_for(
                lambda h=h, dev=dev, prefix=prefix: addr(h, dev).startswith(prefix),
                15,
                what=f"{dev} address on {h.name}",
            )
            assert dev in h.ports("contivVxlanBridge")
            assert h.vsctl("get", "Interface", dev, "type").strip() == "internal"
            ep = oper(bed, f"{dev}.default-{h.name}-native-intf")
            assert ep and ep["ipAddress"] == addr(h, dev) and ep["homingHost"] == h.name
        assert addr(h1, dev) != addr(h2, dev)
        assert host_ping(h1, addr(h2, dev)) and host_ping(h2, addr(h1, dev)), f"hosts over {dev}"
    # delete: ports, addresses, oper records and netmaster endpoints go, on both hosts
    bed.delete_network("infra2")
    for h in (h1, h2):
        wait_for(
            lambda h=h: "infra2" not in h.ports("contivVxlanBridge"), 15, what=f"infra2 port gone, {h.name}"
        )
        wait_for(lambda h=h: oper(bed, f"infra2.default-{h.name}-native-intf") is None, 10, what="oper gone")
    assert not bed.etcdctl("get", "--prefix", "/contiv.io/state/eps/infra2.", "--keys-only").strip()
    assert host_ping(h1, addr(h2, "infra1")), "the other infra network is untouched"
    # restart: same address, same flows, still reachable
    before = h1.flows()
    a1 = addr(h1, "infra1")
    h1.stop_netplugin()
    h1.start_netplugin()
    wait_for(lambda: h1.flows() == before, 15, what="same flows after restart")
    assert addr(h1, "infra1") == a1 and host_ping(h2, a1)
    bed.delete_network("infra1")
    for h in (h1, h2):
        wait_for(lambda h=h: "infra1" not in h.ports("contivVxlanBridge"), 15, what="infra1 port gone")


def test_contivh1_routes_data_subnets(bed):
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
    _, c1 = make_ep(h1, "pipenet", "ch1a")
    _, c2 = make_ep(h2, "pipenet", "ch1b")
    _, c3 = make_ep(h1, "bunker", "ch1c")
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
        assert host_ping(h1, c1.ip) and host_ping(h1, c2.ip), "host -> containers (routed)"
        assert c2.ping(addr(h1, "contivh1")), "container -> a host's contivh1 address"
        assert not any("priority=60" in f and "table=6" in f for f in h1.flows()), "no bridge-mode routes"
