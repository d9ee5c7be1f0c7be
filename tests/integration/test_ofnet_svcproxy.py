"""Service load balancer (ofnet/svcproxy.py) on a real ovs-vswitchd (netdev datapath) in a private netns.

Two client "containers" and two provider containers (each a small TCP server on the provider port
that answers with its name and the peer address it sees) on one vxlan bridge.  Oracle: the TCP
exchange through VIP:svcPort (the handshake only completes if the SYN-ACK comes back from the VIP),
``ovs-ofctl dump-flows`` of tables 3/6, and the rendezvous hash (``hrw_choice``) for who serves whom.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from contivpy.common.errors import ValidationError
from contivpy.ofnet import LocalEndpoint, OfnetAgent, Service
from contivpy.ofnet.svcproxy import hrw_choice

pytestmark = [pytest.mark.ovs, pytest.mark.root, pytest.mark.timeout(240)]
OVS_PREFIX = "tsv"
BR = "contivVxlanBridge"
VIP, P1, P2 = "10.1.1.100", "10.1.1.3", "10.1.1.4"
SVC_PORT, PROV_PORT = 80, 8080

SERVER = r"""
import socket, sys
name = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    with c:
        c.sendall(f"{name} {peer[0]}\n".encode())
"""
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.getpeername()[0], s.getpeername()[1], s.recv(100).decode().strip())
"""

UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
while True:
    _, peer = s.recvfrom(100)
    s.sendto(f"{sys.argv[1]} {peer[0]}".encode(), peer)
"""
UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
for _ in range(3):
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
    try:
        data, peer = s.recvfrom(100)
        break
    except socket.timeout:
        continue
print(peer[0], peer[1], data.decode())
"""


def mac(ip: str) -> str:
    return "02:02:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def pick_clients() -> tuple[str, str]:
    """Two client IPs the hash spreads over both providers (one each)."""
    cands = [f"10.1.1.{i}" for i in range(10, 60)]
    a = next(c for c in cands if hrw_choice(c, [P1, P2]) == P1)
    b = next(c for c in cands if hrw_choice(c, [P1, P2]) == P2)
    return a, b


def _ns(ns, *cmd, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


async def connect(ns: str, ip: str = VIP, port: int = SVC_PORT) -> str:
    r = await asyncio.to_thread(_ns, ns, sys.executable, "-c", CLIENT, ip, str(port))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


@pytest.fixture
async def bed(ovs_instance):
    ovs = ovs_instance
    ag = OfnetAgent(BR, "vxlan", sock=ovs.listen_socket(0), echo_interval=1.0)
    await ag.start()
    sfx = uuid.uuid4().hex[:5]
    c1ip, c2ip = pick_clients()
    names = {"c1": (c1ip, f"tsvc1{sfx}"), "c2": (c2ip, f"tsvc2{sfx}"), "p1": (P1, f"tsvp1{sfx}"),
             "p2": (P2, f"tsvp2{sfx}")}  # fmt: skip
    servers = []
    try:
        await asyncio.to_thread(ovs.add_bridge, BR, ag.port)
        await ag.wait_connected(20)
        await ag.add_network(1, 1, "10.1.1.254", "default", "10.1.1.0/24")
        eps = {}
        for i, (role, (ip, ns)) in enumerate(sorted(names.items())):
            port = await asyncio.to_thread(
                ovs.add_veth_port, BR, f"tsvvp{i}", ns, "eth0", mac(ip), f"{ip}/24"
            )
            eps[role] = LocalEndpoint(port, mac(ip), ip, 1)
            await ag.add_local_endpoint(eps[role])
        for role in ("p1", "p2"):
            ns = names[role][1]
            srv = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, role, str(PROV_PORT)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            servers.append(srv)
            assert (await asyncio.to_thread(srv.stdout.readline)).strip() == "ready"
        yield ovs, ag, {r: ns for r, (_, ns) in names.items()}, {r: ip for r, (ip, _) in names.items()}, eps
    finally:
        for srv in servers:
            srv.kill()
            srv.wait()
        await ag.stop()


def svc_flows(ovs) -> list[str]:
    return [f for f in ovs.dump_flows(BR) if f.startswith(("table=3, priority=1", "table=6, priority=1"))
            and "priority=1 " not in f]  # fmt: skip


async def test_vip_balances_by_hash_and_replies_come_from_the_vip(bed):
    ovs, ag, ns, ip, _eps = bed
    before = ovs.dump_flows(BR)
    await ag.add_service(Service(VIP, "default", [(SVC_PORT, PROV_PORT, "TCP")], [P1, P2]))
    flows = ovs.dump_flows(BR)
    watch = "table=3, priority=10,tcp,metadata=0x100000000/0xff00000000,nw_dst=10.1.1.100 actions=CONTROLLER:65535"
    assert watch in flows, "\n".join(flows)
    vip_arp = [f for f in flows if f.startswith("table=10, priority=95,") and f"arp_tpa={VIP}," in f]
    assert len(vip_arp) == 1 and "set_field:02:02:0a:01:01:64->arp_sha" in vip_arp[0], "\n".join(flows)
    assert "vlan_tci=0x1000/0x1000" in vip_arp[0] and "metadata=0x100000000/0xff00000001" in vip_arp[0]
    assert len(flows) == len(before) + 2  # watch + VIP ARP answer

    # client 1 -> provider 1, client 2 -> provider 2 (as the hash says); the provider sees the
    # client's own address; the client is connected to VIP:80 (so the SYN-ACK came from the VIP)
    assert await connect(ns["c1"]) == f"{VIP} {SVC_PORT} p1 {ip['c1']}"
    assert await connect(ns["c2"]) == f"{VIP} {SVC_PORT} p2 {ip['c2']}"
    assert await connect(ns["c1"]) == f"{VIP} {SVC_PORT} p1 {ip['c1']}"  # now via the installed flows
    st = ag.statistics()
    assert st["arp_replies"] == 0, st  # the VIP's ARP (and the clients') answered in OVS
    assert st["svc_reinjects"] == 2, st
    neigh = await asyncio.to_thread(_ns, ns["c1"], "ip", "neigh", "show", VIP)
    assert "02:02:0a:01:01:64" in neigh.stdout
    hit = [f for f in ovs.ofctl("dump-flows", BR, "table=10").splitlines() if f"arp_tpa={VIP}," in f]
    assert hit and "n_packets=0," not in hit[0], hit

    flows = ovs.dump_flows(BR)
    for c, p in (("c1", P1), ("c2", P2)):
        dnat = (
            f"table=3, priority=100,tcp,metadata=0x100000000/0xff00000000,nw_src={ip[c]},nw_dst={VIP},tp_dst=80 "
            f"actions=set_field:{mac(p)}->eth_dst,ct(commit,table=4,zone=65000,nat(dst={p}:8080))"
        )
        snat = (
            f"table=6, priority=100,tcp,metadata=0x100000000/0xff00000000,nw_src={p},nw_dst={ip[c]},tp_src=8080 "
            f"actions=ct(table=9,zone=65000,nat)"
        )
        assert dnat in flows and snat in flows, "\n".join(flows)
    assert len(flows) == len(before) + 2 + 4
    assert len(flows) == ag.statistics()["flows"]

    # provider 1 goes: only client 1's flows go, its next connection lands on provider 2
    await ag.add_service(Service(VIP, "default", [(SVC_PORT, PROV_PORT, "TCP")], [P2]))
    flows = ovs.dump_flows(BR)
    assert not [f for f in flows if f"nw_src={ip['c1']}," in f or f"nw_src={P1}," in f]
    assert [f for f in flows if f"nw_src={ip['c2']},nw_dst={VIP}" in f]
    assert await connect(ns["c1"]) == f"{VIP} {SVC_PORT} p2 {ip['c1']}"
    assert await connect(ns["c2"]) == f"{VIP} {SVC_PORT} p2 {ip['c2']}"
    # it comes back: the hash gives client 1 back to provider 1 (client 2 keeps its flows)
    await ag.add_service(Service(VIP, "default", [(SVC_PORT, PROV_PORT, "TCP")], [P1, P2]))
    assert await connect(ns["c1"]) == f"{VIP} {SVC_PORT} p1 {ip['c1']}"
    assert ag.services()[0]["Clients"] == {ip["c1"]: P1, ip["c2"]: P2}

    # removing the service leaves the flow table exactly as before it was added
    assert await ag.remove_service(VIP, "default") is True
    assert await ag.remove_service(VIP, "default") is False
    assert ovs.dump_flows(BR) == before
    assert ag.controller.switch.stats["errors"] == 0


async def test_direct_connection_to_a_provider_after_using_the_vip(bed):
    """Stateful reverse NAT: once a client used the VIP, its *direct* connection to the same
    provider's port is not rewritten (the reply comes from the provider, which sees the client's
    own address), while connections through the VIP still come back from VIP:svcPort."""
    ovs, ag, ns, ip, _eps = bed
    await ag.add_service(Service(VIP, "default", [(SVC_PORT, PROV_PORT, "TCP"), (81, 8081, "UDP")], [P1, P2]))
    assert await connect(ns["c1"]) == f"{VIP} {SVC_PORT} p1 {ip['c1']}"
    assert [f for f in svc_flows(ovs) if f"nw_src={P1},nw_dst={ip['c1']},tp_src={PROV_PORT}" in f]

    # direct to the chosen provider (stateless SNAT rewrote this reply to VIP:80 -> timeout)
    assert await connect(ns["c1"], P1, PROV_PORT) == f"{P1} {PROV_PORT} p1 {ip['c1']}"
    assert await connect(ns["c1"]) == f"{VIP} {SVC_PORT} p1 {ip['c1']}"
    assert await connect(ns["c1"], P1, PROV_PORT) == f"{P1} {PROV_PORT} p1 {ip['c1']}"
    # conntrack (zone 65000) holds the VIP connections with their DNAT, not the direct ones
    ct = await asyncio.to_thread(ovs.appctl, "dpctl/dump-conntrack", "zone=65000")
    vip_conns = [ln for ln in ct.splitlines() if f"src={ip['c1']},dst={VIP}" in ln]
    assert vip_conns and all(f"src={P1},dst={ip['c1']},sport={PROV_PORT}" in ln for ln in vip_conns), ct
    assert not [ln for ln in ct.splitlines() if f"src={ip['c1']},dst={P1}," in ln], ct
    assert ag.statistics()["svc_punts"] == 1

    # UDP: same conntrack NAT (the reply's source is VIP:81 through the VIP, P1:8081 when direct)
    udp = subprocess.Popen(
        ["ip", "netns", "exec", ns["p1"], sys.executable, "-c", UDP_SERVER, "p1", "8081"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert (await asyncio.to_thread(udp.stdout.readline)).strip() == "ready"
        for dst, port in ((VIP, 81), (P1, 8081), (VIP, 81)):
            r = await asyncio.to_thread(_ns, ns["c1"], sys.executable, "-c", UDP_CLIENT, dst, str(port))
            assert r.stdout.strip() == f"{dst} {port} p1 {ip['c1']}", r.stdout + r.stderr
    finally:
        udp.kill()
        udp.wait()
    assert await ag.remove_service(VIP, "default") is True


async def test_local_provider_endpoint_removal_and_restart_adoption(bed):
    ovs, ag, ns, ip, eps = bed
    base = ovs.dump_flows(BR)
    await ag.add_service(Service(VIP, "default", ["80:8080:TCP"], [P1, P2]))
    assert (await connect(ns["c1"])).endswith(f"p1 {ip['c1']}")
    assert (await connect(ns["c2"])).endswith(f"p2 {ip['c2']}")
    with_clients = ovs.dump_flows(BR)

    # a new agent (process restart) re-applying the same state re-adopts the client flows: no flow-mods
    port = ag.port
    await ag.stop()
    ag2 = OfnetAgent(BR, "vxlan", sock=ovs.listen_socket(port), echo_interval=1.0)
    await ag2.start()
    try:
        await ag2.wait_connected(30)
        await ag2.add_network(1, 1, "10.1.1.254", "default", "10.1.1.0/24")
        await ag2.add_service(Service(VIP, "default", ["80:8080:TCP"], [P1, P2]))  # before the endpoints
        for ep in sorted(eps.values(), key=lambda e: e.ofport):
            await ag2.add_local_endpoint(ep)
        assert await ag2.sync_complete() == 0
        st = ag2.cache.stats
        assert st["flow_add"] == 0 and st["flow_mod"] == 0 and st["flow_del"] == 0, dict(st)
        assert ovs.dump_flows(BR) == with_clients
        assert ag2.services()[0]["Clients"] == {ip["c1"]: P1, ip["c2"]: P2}
        assert (await connect(ns["c1"])).endswith(f"p1 {ip['c1']}")
        assert ag2.statistics()["svc_punts"] == 0  # served by the adopted flows

        # the provider endpoint goes: its client's flows go; the client moves to the other provider
        await ag2.remove_local_endpoint(eps["p1"].ofport)
        assert not [f for f in ovs.dump_flows(BR) if f"nw_src={ip['c1']}," in f]
        assert (await connect(ns["c1"])).endswith(f"p2 {ip['c1']}")
        # a client endpoint goes: its flows go
        await ag2.remove_local_endpoint(eps["c2"].ofport)
        assert not [f for f in ovs.dump_flows(BR) if ip["c2"] + "," in f]
        await ag2.remove_service(VIP)
        await ag2.add_local_endpoint(eps["p1"])
        await ag2.add_local_endpoint(eps["c2"])
        assert ovs.dump_flows(BR) == base
    finally:
        await ag2.stop()


async def test_bad_service_input_is_refused(bed):
    _ovs, ag, *_ = bed
    for bad in (
        lambda: Service("10.1.1.300", "default", ["80:8080:TCP"]),
        lambda: Service(VIP, "default", []),
        lambda: Service(VIP, "default", ["80:8080:SCTP"]),
        lambda: Service(VIP, "default", ["80:8080:TCP", "80:9090:TCP"]),
        lambda: Service(VIP, "default", ["80:70000:TCP"]),
        lambda: Service(VIP, "default", ["80:8080:TCP"], ["x"]),
        lambda: Service(VIP, "default", ["80:8080:TCP"], [VIP]),
    ):
        with pytest.raises(ValidationError):
            bad()
    with pytest.raises(ValidationError):
        await ag.add_service("not a service")
    with pytest.raises(ValidationError):
        await ag.remove_service("nope")
    assert ag.services() == []
