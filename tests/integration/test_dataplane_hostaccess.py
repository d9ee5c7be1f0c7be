"""Host access in bridge mode on the real test bed (docs/ovs-pipeline.md "Host access", docs/deployment.md).

Two hosts + an "outside" HTTP server behind a router on the hosts' default route (tests/fixtures/testbed.py,
``add_outside``). Checks: contivh0 (address/MAC from pvtSubnet, OVS internal port), the tagged iptables nat
rules (once, also after an agent restart; gone after ``netplugin --cleanup``), a live pvtSubnet change and
the refusal of one that is not a /16, and from netns "containers" on vxlan networks with and without a
gateway: own host, other host, outside (the server sees the host's address), host -> container (private
address), isolation between tenants. Read back with ``ip``, ``ovs-ofctl`` and ``iptables -t nat -S``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.fixtures.testbed import _TCP_CLIENT, OUTSIDE_IP, REPO, http_json, wait_for
from tests.integration.test_dataplane_basic import make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

MASQ = "-A POSTROUTING -s {} ! -o contivh0 -m comment --comment contivpy -j MASQUERADE"


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.add_outside()
        b.start_all()
        yield b


def nat_rules(host) -> list[str]:
    return host.exec("iptables", "-w", "-t", "nat", "-S").splitlines()


def ours(host) -> list[str]:
    return [r for r in nat_rules(host) if "--comment contivpy" in r]


def addr_of(host, dev: str = "contivh0") -> str:  # (contivh0v: the vlan bridge's host port)
    return host.exec("ip", "-o", "-4", "addr", "show", "dev", dev, check=False)


def wget(c, url: str, budget: float = 10.0) -> str | None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        try:  # (busybox 1.35 wget crashes with -T: the timeout is the subprocess's)
            r = subprocess.run(
                ["ip", "netns", "exec", c.name, "busybox", "wget", "-q", "-O", "-", url],
                capture_output=True,
                text=True,
                timeout=3,
            )
        except subprocess.TimeoutExpired:
            continue
        if r.returncode == 0:
            return r.stdout.strip()
        time.sleep(0.3)
    return None


def host_ping(host, ip: str, budget: float = 6.0) -> bool:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        r = subprocess.run(
            ["ip", "netns", "exec", host.netns, "busybox", "ping", "-c", "1", "-W", "1", ip],
            capture_output=True,
        )
        if r.returncode == 0:
            return True
        time.sleep(0.2)
    return False


def host_tcp(host, c, ip: str, port: int = 7790, budget: float = 8.0) -> bool:
    """busybox nc server in container ``c``; a line sent from the host netns to ``ip:port`` arrives."""
    srv = subprocess.Popen(
        ["ip", "netns", "exec", c.name, "busybox", "nc", "-l", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(0.2)
        client = _TCP_CLIENT.replace("BUDGET", str(budget)).replace("ADDR", repr((ip, port)))
        r = subprocess.run(
            ["ip", "netns", "exec", host.netns, sys.executable, "-c", client], timeout=budget + 5
        )
        return r.returncode == 0 and "hello-tnp" in srv.communicate(timeout=5)[0]
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def pvt_ip(host, ep_id: str) -> str:
    st, drv = http_json("GET", host.debug_url + "/inspect/driver")
    assert st == 200
    return drv["vxlan"]["EndpointDb"][ep_id]["HostPvtIp"]


def test_host_port_and_nat_rules(bed):
    for h in bed.hosts.values():
        wait_for(lambda h=h: "172.19.255.254/16" in addr_of(h), 15, what=f"contivh0 address on {h.name}")
        assert "02:02:ac:13:ff:fe" in h.exec("ip", "-o", "link", "show", "contivh0")
        assert h.vsctl("get", "Port", "contivh0", "tag").strip() == "2"
        assert h.vsctl("get", "Interface", "contivh0", "type").strip() == "internal"
        assert h.exec("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        rules = nat_rules(h)
        assert rules.count(MASQ.format("172.19.0.0/16")) == 1
        assert "-N CONTIV-NODEPORT" in rules
        assert len(ours(h)) == 2, ours(h)
        ofport = int(h.vsctl("get", "Interface", "contivh0", "ofport"))
        assert any(f"in_port={ofport}" in f and "goto_table:2" in f for f in h.flows()), h.flows()
        assert any(
            "table=6" in f and "dl_dst=00:00:11:11:11:11" in f and "goto_table:8" in f for f in h.flows()
        )


def test_private_subnet_refused_unless_a_16_and_applied_live(bed):
    h1 = bed.hosts[1]
    r = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, "global", "set",
         "--private-subnet", "10.250.0.0/24"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert r.returncode != 0
    assert "pvtSubnet string invalid format" in r.stdout + r.stderr, r.stdout + r.stderr  # modelgen wording
    assert "Traceback" not in r.stderr
    assert "Private subnet: 172.19.0.0/16" in bed.netctl("global", "info")
    # no networks yet: a valid change is applied live by every agent (address, MAC, nat rule, flows)
    bed.netctl("global", "set", "--private-subnet", "172.20.0.0/16")
    try:
        for h in bed.hosts.values():
            wait_for(
                lambda h=h: "172.20.255.254/16" in addr_of(h), 15, what=f"new contivh0 address on {h.name}"
            )
            wait_for(lambda h=h: MASQ.format("172.20.0.0/16") in nat_rules(h), 10, what="new nat rule")
            assert MASQ.format("172.19.0.0/16") not in nat_rules(h) and len(ours(h)) == 2
            assert "02:02:ac:14:ff:fe" in h.exec("ip", "-o", "link", "show", "contivh0")
            wait_for(lambda h=h: any("nw_dst=172.20.255.254" in f for f in h.flows()), 10, what="new flows")
    finally:
        bed.netctl("global", "set", "--private-subnet", "172.19.0.0/16")
    for h in bed.hosts.values():
        wait_for(lambda h=h: "172.19.255.254/16" in addr_of(h), 15, what="contivh0 address back")
        wait_for(lambda h=h: MASQ.format("172.19.0.0/16") in nat_rules(h), 10, what="nat rule back")
    assert "172.20." not in addr_of(h1)


def test_containers_reach_host_other_host_and_outside(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("hnet", "10.71.1.0/24")  # no gateway: "default dev eth0"
    # "hgw.ht2" sorts before "hnet.default": a restart replays them in the other order (VRF ids hold)
    bed.create_network("hgw", "10.71.2.0/24", tenant="ht2", gateway="10.71.2.254")
    ia1, a1 = make_ep(h1, "hnet", "ha1")
    ia2, a2 = make_ep(h2, "hnet", "ha2")
    ib1, b1 = make_ep(h1, "hgw", "hb1", tenant="ht2")
    a1.exec("ip", "route", "replace", "default", "dev", "eth0")  # what Join answers without a gateway
    a2.exec("ip", "route", "replace", "default", "dev", "eth0")
    assert a1.ping(a2.ip), "same network across hosts (VXLAN) still works"
    # container -> own host, -> other host (underlay addresses)
    assert a1.ping(h1.ip) and a1.ping(h2.ip) and b1.ping(h1.ip) and b1.ping(h2.ip)
    assert a1.ping("172.19.255.254")  # contivh0's own address is the one private address allowed
    # container -> outside HTTP server: the server sees the container's host address (MASQUERADE)
    url = f"http://{OUTSIDE_IP}/cgi-bin/ip"
    assert wget(a1, url) == h1.ip
    assert wget(a2, url) == h2.ip
    assert wget(b1, url) == h1.ip  # network with a gateway, other tenant
    assert wget(a1, f"http://{OUTSIDE_IP}/") == "tnp-outside"
    # host -> its containers, at their private addresses
    p_a1, p_b1 = pvt_ip(h1, ia1["id"]), pvt_ip(h1, ib1["id"])
    assert p_a1.startswith("172.19.") and p_b1.startswith("172.19.") and p_a1 != p_b1
    assert p_a1 == "172.19." + ".".join(str(b) for b in divmod(ia1["ofport"], 256))
    assert host_ping(h1, p_a1) and host_ping(h1, p_b1)
    assert host_tcp(h1, a1, p_a1), "TCP host -> container (private address)"
    # the flows that carried it (n_packets > 0): host_snat and host_dnat of a1
    dump = h1.ofctl("dump-flows", "contivVxlanBridge")
    snat = [ln for ln in dump.splitlines() if "table=8" in ln and f"in_port={ia1['ofport']}" in ln]
    dnat = [ln for ln in dump.splitlines() if "table=2" in ln and f"nw_dst={p_a1}" in ln]
    assert len(snat) == 1 and "n_packets=0," not in snat[0] and f"set_field:{p_a1}->ip_src" in snat[0]
    assert (
        len(dnat) == 1
        and "n_packets=0," not in dnat[0]
        and f"set_field:{ia1['ip_address']}->ip_dst" in dnat[0]
    )
    # isolation: another tenant's container, by its address or its private address, stays unreachable
    a1.exec("ip", "route", "replace", "10.71.2.0/24", "dev", "eth0")
    assert not a1.ping(b1.ip, budget=2)
    assert not a1.ping(p_b1, budget=2)
    assert not b1.ping(a1.ip, budget=2)
    assert not b1.ping(pvt_ip(h1, ia1["id"]), budget=2)
    assert not a2.ping(b1.ip, budget=2)


def test_host_access_in_arp_flood_mode(bed):
    """ARP flood mode: requests for the router are answered (gateway in OVS, off-subnet by the controller),
    so containers still reach their host, the other host and the outside; in-subnet ARP still floods."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    a1 = next(c for c in h1.containers if c.ip.startswith("10.71.1."))
    a2 = next(c for c in h2.containers if c.ip.startswith("10.71.1."))
    b1 = next(c for c in h1.containers if c.ip.startswith("10.71.2."))
    bed.netctl("global", "set", "--arp-mode", "flood")
    try:
        for h in (h1, h2):
            wait_for(
                lambda h=h: not any("table=6" in f and "priority=100,arp,arp_op=1 " in f for f in h.flows()),
                10,
                what=f"proxy ARP divert gone on {h.name}",
            )
        assert any("table=6" in f and "priority=99," in f and "CONTROLLER" in f for f in h1.flows())
        assert any("table=6" in f and "arp_tpa=10.71.2.254" in f and "goto_table:10" in f for f in h1.flows())
        for c in (a1, a2, b1):
            c.exec("ip", "neigh", "flush", "all")
        assert a1.ping(a2.ip), "in-subnet ARP floods across hosts"
        assert a1.ping(h1.ip) and a1.ping(h2.ip) and b1.ping(h1.ip), "container -> hosts"
        assert wget(a1, f"http://{OUTSIDE_IP}/cgi-bin/ip") == h1.ip
        assert wget(b1, f"http://{OUTSIDE_IP}/cgi-bin/ip") == h1.ip  # network with a gateway
        assert "00:00:11:11:11:11" in a1.exec("ip", "neigh", "show", OUTSIDE_IP)
        assert host_ping(h1, _pvt_of(h1, a1.ip)), "host -> container (private address)"
    finally:
        bed.netctl("global", "set", "--arp-mode", "proxy")
    wait_for(
        lambda: any("table=6" in f and "priority=100,arp,arp_op=1 " in f for f in h1.flows()),
        10,
        what="proxy back",
    )


def test_host_access_on_the_vlan_bridge(bed):
    """vlan networks: contivh0v (pvtSubnet + 0xfffd/17) on the vlan bridge; a container reaches its host, the
    other host and the outside through its gateway (answered with the router MAC), the host reaches it at
    its private address pvtSubnet + 0x8000 + ofport; vxlan and vlan private addresses stay apart."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    for h in bed.hosts.values():
        wait_for(
            lambda h=h: "172.19.255.253/17" in addr_of(h, "contivh0v"), 15, what=f"contivh0v on {h.name}"
        )
        assert "contivh0v" in h.ports("contivVlanBridge")
    bed.create_network("hvl", "10.72.1.0/24", encap="vlan", pktTag=172, gateway="10.72.1.254")
    iv1, v1 = make_ep(h1, "hvl", "hv1")
    _, v2 = make_ep(h2, "hvl", "hv2")
    assert v1.ping(v2.ip), "vlan network across hosts (uplink) still works"
    assert v1.ping(h1.ip) and v1.ping(h2.ip) and v2.ping(h1.ip), "vlan container -> hosts"
    assert wget(v1, f"http://{OUTSIDE_IP}/cgi-bin/ip") == h1.ip
    assert wget(v2, f"http://{OUTSIDE_IP}/cgi-bin/ip") == h2.ip
    assert "00:00:11:11:11:11" in v1.exec("ip", "neigh", "show", "10.72.1.254")
    pv = "172.19." + ".".join(str(b) for b in divmod(0x8000 + iv1["ofport"], 256))
    assert host_ping(h1, pv), "host -> vlan container at its private address"
    assert host_tcp(h1, v1, pv), "TCP host -> vlan container"
    dump = h1.ofctl("dump-flows", "contivVlanBridge")
    snat = [ln for ln in dump.splitlines() if "table=8" in ln and f"in_port={iv1['ofport']}" in ln]
    assert len(snat) == 1 and "n_packets=0," not in snat[0] and f"set_field:{pv}->ip_src" in snat[0]
    # isolation: a vxlan container does not reach the vlan container's private address, nor the reverse
    a1 = next(c for c in h1.containers if c.ip.startswith("10.71.1."))
    assert not a1.ping(pv, budget=2)
    assert not v1.ping(_pvt_of(h1, a1.ip), budget=2)
    assert not v1.ping("172.19.255.254", budget=2), "only contivh0v's own address is allowed"


def _pvt_of(host, ip: str) -> str:
    st, drv = http_json("GET", host.debug_url + "/inspect/driver")
    assert st == 200
    return next(
        v["HostPvtIp"]
        for v in drv["vxlan"]["EndpointDb"].values()
        if v.get("IpAddr") == ip and "HostPvtIp" in v
    )


def test_restart_keeps_rules_once_and_cleanup_removes_them(bed):
    h1 = bed.hosts[1]
    before = h1.flows()
    h1.stop_netplugin()
    assert len(ours(h1)) == 2  # a plain stop leaves host access in place
    h1.start_netplugin()
    wait_for(lambda: h1.flows() == before, 15, what="same flows after restart")
    assert nat_rules(h1).count(MASQ.format("172.19.0.0/16")) == 1 and len(ours(h1)) == 2
    assert [r for r in nat_rules(h1) if r == "-N CONTIV-NODEPORT"] == ["-N CONTIV-NODEPORT"]
    a1 = next(c for c in h1.containers if c.ip.startswith("10.71.1."))
    assert wget(a1, f"http://{OUTSIDE_IP}/cgi-bin/ip") == h1.ip
    # clean uninstall: rules, chain and port gone; a foreign rule in the same chain is untouched
    h1.exec("iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.9.9.0/24", "-j", "MASQUERADE")
    h1.stop_netplugin()
    r = subprocess.run(
        ["ip", "netns", "exec", h1.netns, sys.executable, "-m", "contivpy.netplugin", "--cleanup",
         "--ovsdb", f"unix:{h1.db_sock}"],
        capture_output=True, text=True, cwd=REPO, timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rules = nat_rules(h1)
    assert not [x for x in rules if "contivpy" in x or "CONTIV" in x], rules
    assert "-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE" in rules
    assert "contivh0" not in h1.ports("contivVxlanBridge")
    assert "contivh0v" not in h1.ports("contivVlanBridge")
    h1.exec("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", "10.9.9.0/24", "-j", "MASQUERADE")
    # a new start re-creates everything once
    h1.start_netplugin()
    wait_for(lambda: len(ours(h1)) == 2 and "172.19.255.254/16" in addr_of(h1), 15, what="host access back")
