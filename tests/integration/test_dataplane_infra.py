"""Infra networks on the real test bed (netplugin/managers/infra.py, docs/docker.md "Infra networks").

Checks: an infra network gives every host an OVS internal port named after it, with the host's own
address (netmaster endpoint ``<net>.<tenant>-<host>-native-intf``), and hosts ping each other over it;
deleting it removes ports, oper records and the netmaster endpoints; an agent restart keeps address and
flows. The special network contivh1 (routes, routed flows) is tested in test_dataplane_contivh1.py.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep

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


def test_data_network_reusing_a_deleted_infra_networks_vlan(bed):
    """The infra networks above are gone; a new network gets their VLAN/VNI back from netmaster. The
    late removal of the infra network (it waits for its port) must not take the new one, nor its VRF id."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("reuse", "10.133.4.0/24", gateway="10.133.4.254")
    i1, c1 = make_ep(h1, "reuse", "ru1")
    i2, c2 = make_ep(h2, "reuse", "ru2")
    wait_for(lambda: has_flow(h1, f"dl_dst={i2['mac_address']}") and has_flow(h2, f"dl_dst={i1['mac_address']}"),
             15, what="remote endpoints learnt")  # fmt: skip
    assert c1.ping(c2.ip) and c2.ping(c1.ip)
