"""Agent-independent ARP (issue 7, defect 9) on the two-host test bed.

In proxy mode ARP requests for known addresses are answered by ``arp_responder`` flows in OVS
(docs/ovs-pipeline.md), so a host whose netplugin is killed with -9 keeps resolving: containers on
both hosts ping each other continuously (VXLAN and VLAN networks, same host and across hosts) while
the agent of host 1 is killed, every neighbour table is flushed (repeatedly, so ARP really happens
while the agent is down), and the agent is restarted; not one ping may be lost.  The responder
flows are checked with ``ovs-ofctl -O OpenFlow13 dump-flows``: one per endpoint (local and remote)
and one per gateway, and gone with the endpoint when it is deleted.

A longer outage lets the agent's 10 s registration lease expire; the peers then keep their tunnel
to the host for ``REMOVE_GRACE`` seconds, so an agent restarted within that time costs nothing
either (``test_lease_expiry_during_outage_keeps_tunnels``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from contivpy.netplugin.managers.vtep import REMOVE_GRACE
from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import delete_ep, has_flow, make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.timeout(300)]

GW = "10.131.1.254"
GW_MAC = "00:00:11:11:11:11"
INTERVAL = 0.05  # 20 pings per second per pair
DURATION = 24.0  # s; covers kill, outage, restart and a quiet period after it


class Pinger:
    """``ping -c N -i 0.05`` in a container: a fixed count, so the summary never counts a probe that
    was cut off by stopping the process early."""

    def __init__(self, src, dst_ip: str, duration: float = DURATION) -> None:
        self.src, self.dst = src, dst_ip
        n = int(duration / INTERVAL)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", src.name, "ping", "-n", "-q", "-c", str(n), "-i", str(INTERVAL), "-W", "2", dst_ip],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def result(self, timeout: float = DURATION + 20) -> tuple[int, int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert m, out
        return int(m.group(1)), int(m.group(2)), out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def flush_all(containers) -> None:
    for c in containers:
        c.exec("ip", "neigh", "flush", "all", check=False)


def neigh_mac(c, ip: str) -> str:
    out = c.exec("ip", "neigh", "show", ip, check=False)
    m = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return m.group(1) if m and "FAILED" not in out and "INCOMPLETE" not in out else ""


def responder_hits(h, ip: str, bridge: str) -> int:
    out = h.ofctl("dump-flows", bridge, "table=10", check=False)
    return sum(
        int(m.group(1))
        for ln in out.splitlines()
        if f"arp_tpa={ip}," in ln
        for m in [re.search(r"n_packets=(\d+)", ln)]
        if m
    )


@pytest.fixture(scope="module")
def bed():
    with Testbed(2) as b:
        b.start_all()
        yield b


@pytest.fixture(scope="module")
def eps(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("arpx", "10.131.1.0/24", gateway=GW)
    bed.create_network("arpv", "10.132.1.0/24", encap="vlan", pktTag=113)
    e = {
        "x1": make_ep(h1, "arpx", "ax1"),
        "x1b": make_ep(h1, "arpx", "ax1b"),
        "x2": make_ep(h2, "arpx", "ax2"),
        "v1": make_ep(h1, "arpv", "av1"),
        "v2": make_ep(h2, "arpv", "av2"),
    }
    for key, (i, _) in e.items():  # each endpoint known as remote on the other host
        other = h1 if key.startswith(("x2", "v2")) else h2
        wait_for(
            lambda i=i, o=other: has_flow(o, "table=10", f"arp_tpa={i['ip_address']},", bridge=i["bridge"]),
            15, what=f"responder flow of {i['ip_address']} on {other.name}",
        )  # fmt: skip
    return e


def test_responder_flows_per_endpoint_and_gateway(bed, eps):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    for h in (h1, h2):
        for key in ("x1", "x1b", "x2"):
            i = eps[key][0]
            line = [f for f in h.flows("contivVxlanBridge") if f"arp_tpa={i['ip_address']}," in f]
            assert len(line) == 1, line
            local = (key == "x2") == (h is h2)
            assert ("metadata=0/0x1" in line[0]) != local  # remote ones answer local askers only
            assert f"set_field:{i['mac_address']}->eth_src" in line[0] and line[0].endswith(
                "pop_vlan,IN_PORT"
            )
        gw = [f for f in h.flows("contivVxlanBridge") if f"arp_tpa={GW}," in f]
        assert len(gw) == 1 and f"set_field:{GW_MAC}->arp_sha" in gw[0]
        for key in ("v1", "v2"):
            i = eps[key][0]
            line = [f for f in h.flows("contivVlanBridge") if f"arp_tpa={i['ip_address']}," in f]
            assert len(line) == 1 and "metadata=0x" in line[0] and line[0].endswith("arp_spa,IN_PORT"), line
        # nothing punts ARP before the responder
        assert not [f for f in h.flows("contivVxlanBridge") if "table=0" in f and "arp" in f]


def test_pings_survive_agent_kill9_and_neighbour_flush(bed, eps):
    h1 = bed.hosts[1]
    cx1, cx1b, cx2 = eps["x1"][1], eps["x1b"][1], eps["x2"][1]
    cv1, cv2 = eps["v1"][1], eps["v2"][1]
    containers = [cx1, cx1b, cx2, cv1, cv2]
    for a, b in ((cx1, cx2), (cx1, cx1b), (cv1, cv2)):
        assert a.ping(b.ip), f"{a.ip} -> {b.ip} before the test"
    # short neighbour timers: entries are re-validated every second or so, as they would be over time
    for c in containers:
        c.exec("sysctl", "-qw", "net.ipv4.neigh.eth0.base_reachable_time_ms=1000")
        c.exec("sysctl", "-qw", "net.ipv4.neigh.eth0.delay_first_probe_time=1")
    pairs = [(cx1, cx2), (cx2, cx1), (cx1, cx1b), (cx1b, cx1), (cv1, cv2), (cv2, cv1)]
    hits_before = responder_hits(h1, cx2.ip, "contivVxlanBridge")
    pingers = [Pinger(a, b.ip) for a, b in pairs]
    try:
        time.sleep(1.5)
        t_kill = time.monotonic()
        h1.stop_netplugin(signal.SIGKILL)
        wait_for(
            lambda: "true" not in h1.vsctl("--columns=is_connected", "list", "controller", check=False),
            5, 0.1, "OVS to notice the controller is gone",
        )  # fmt: skip
        # agent down: flush every neighbour table, several times; each container must re-resolve
        for _ in range(4):
            flush_all(containers)
            time.sleep(1.0)
        resolved = {c.name: neigh_mac(c, p.ip) for c, p in pairs}
        assert neigh_mac(cx1, cx2.ip) == eps["x2"][0]["mac_address"], resolved
        assert neigh_mac(cx1, cx1b.ip) == eps["x1b"][0]["mac_address"], resolved
        assert neigh_mac(cv1, cv2.ip) == eps["v2"][0]["mac_address"], resolved
        # the gateway resolves too (ARP only: nothing routes behind it in bridge mode)
        out = cx1.exec("busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0", GW, check=False)
        assert GW_MAC in out.lower(), out
        assert responder_hits(h1, cx2.ip, "contivVxlanBridge") > hits_before
        down_for = time.monotonic() - t_kill
        assert h1.netplugin is None and down_for < 9, down_for  # under the 10 s registration lease
        h1.start_netplugin()
        # agent back: flush again, answered the same way
        for _ in range(3):
            flush_all(containers)
            time.sleep(1.0)
        results = [(a.ip, b.ip, *p.result()) for (a, b), p in zip(pairs, pingers, strict=True)]
    finally:
        for p in pingers:
            p.kill()
        if h1.netplugin is None:  # failed while the agent was down: the next tests need it back
            h1.start_netplugin()
    lost = {f"{s}->{d}": tx - rx for s, d, tx, rx, _ in results if tx != rx}
    assert all(tx >= DURATION / INTERVAL * 0.9 for _, _, tx, _, _ in results), results
    assert not lost, f"pings lost: {lost}\n" + "\n".join(r[4] for r in results)


def test_responder_flows_go_with_the_endpoint(bed, eps):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    i, c = make_ep(h1, "arpx", "axdel")
    ip = i["ip_address"]
    wait_for(lambda: has_flow(h2, "table=10", f"arp_tpa={ip},"), 15, what="remote responder flow on h2")
    assert has_flow(h1, "table=10", f"arp_tpa={ip},", "IN_PORT")
    assert eps["x2"][1].ping(ip)
    h1.containers.remove(c)
    subprocess.run(["ip", "netns", "del", c.name], check=True)
    delete_ep(h1, "arpx", "axdel")
    assert not has_flow(h1, f"arp_tpa={ip},")
    wait_for(lambda: not has_flow(h2, f"arp_tpa={ip},"), 15, what="remote responder flow gone on h2")
    # the others' flows are untouched
    assert has_flow(h1, "table=10", f"arp_tpa={eps['x2'][0]['ip_address']},")
    assert has_flow(h2, "table=10", f"arp_tpa={eps['x1'][0]['ip_address']},")


def test_lease_expiry_during_outage_keeps_tunnels(bed, eps):
    """The agent stays down until its registration lease has expired and its VTEP key is gone; host 2
    keeps its tunnel (same port, same ofport, same flows) and, once the agent is back and registered
    again, nothing was rebuilt and no ping was lost across the hosts."""
    h1, h2 = bed.hosts[1], bed.hosts[2]
    cx1, cx2 = eps["x1"][1], eps["x2"][1]
    port = "vxif" + h1.ip.replace(".", "")
    key = f"/contiv.io/service/netplugin.vtep/{h1.ip}:4789"
    ofport = h2.vsctl("get", "interface", port, "ofport").strip()
    flows_before = h2.flows("contivVxlanBridge")
    pingers = [Pinger(cx1, cx2.ip, 30.0), Pinger(cx2, cx1.ip, 30.0)]
    try:
        time.sleep(1.0)
        h1.stop_netplugin(signal.SIGKILL)
        t_kill = time.monotonic()
        wait_for(
            lambda: not bed.etcdctl("get", key, "--print-value-only").strip(), 15, 0.2, "h1's lease to expire"
        )
        expired_after = time.monotonic() - t_kill
        flush_all([cx1, cx2])
        time.sleep(1.0)
        assert port in h2.ports("contivVxlanBridge")
        assert "keeping its tunnel" in (h2.dir / "netplugin.log").read_text()
        h1.start_netplugin()
        wait_for(
            lambda: bed.etcdctl("get", key, "--print-value-only").strip(), 15, 0.2, "h1 registered again"
        )
        assert time.monotonic() - t_kill < REMOVE_GRACE
        time.sleep(REMOVE_GRACE - (time.monotonic() - t_kill) + 1)  # past the grace: nothing may go now
        flush_all([cx1, cx2])
        results = [p.result(60) for p in pingers]
    finally:
        for p in pingers:
            p.kill()
    assert h2.vsctl("get", "interface", port, "ofport").strip() == ofport
    assert h2.flows("contivVxlanBridge") == flows_before
    lost = [tx - rx for tx, rx, _ in results]
    assert lost == [0, 0], (expired_after, [r[2] for r in results])
