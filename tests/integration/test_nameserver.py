"""The agent's name server (netplugin/nameserver.py): answers from real etcd state, reply frames,
and the whole punt path on a real ovs-vswitchd (netdev datapath) with an OfnetAgent: a container
asks an upstream address through its gateway, the agent answers its tenant's names and re-injects
the rest, which then travels the pipeline like any packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import subprocess
import uuid
from types import SimpleNamespace

import dns.flags
import dns.message
import dns.rcode
import pytest

from contivpy.model import keys
from contivpy.netplugin.nameserver import NameServer, NameTable, answer
from contivpy.ofnet import LocalEndpoint, OfnetAgent
from contivpy.ofnet import packets as P

pytestmark = pytest.mark.etcd
OVS_PREFIX = "tdn"
UPSTREAM = "192.168.213.253"


async def put_ep(kv, sid, **v):
    await kv.put(keys.ep_state(sid), json.dumps({"id": sid, **v}))


@pytest.fixture
async def table(etcd_kv):
    t = f"tdn{uuid.uuid4().hex[:6]}"
    await put_ep(
        etcd_kv, f"n.{t}-e1", netID=f"n.{t}", ipAddress="10.5.0.1", epCommonName="Web1", serviceName="web"
    )
    await put_ep(
        etcd_kv, f"n.{t}-e2", netID=f"n.{t}", ipAddress="10.5.0.2", epCommonName="web2", serviceName="web"
    )
    await put_ep(etcd_kv, f"n.{t}x-e3", netID=f"n.{t}x", ipAddress="10.5.0.3", epCommonName="secret")
    await put_ep(
        etcd_kv, f"n.{t}-e4", netID=f"n.{t}", ipAddress="10.5.0.4", ipv6Address="fd00::4", epCommonName="v6"
    )
    for i in range(12):
        await put_ep(etcd_kv, f"m.{t}-b{i}", netID=f"m.{t}", ipAddress=f"10.6.0.{i + 1}", serviceName="big")
    await etcd_kv.put(
        keys.SERVICE_LB + f"svc1:{t}",
        json.dumps({"servicename": "svc1", "tenantname": t, "ipaddress": "10.5.0.200"}),
    )
    nt = NameTable(etcd_kv)
    await nt.rebuild()
    return nt, t


def ask(nt, tenant, name, rdtype="A"):
    wire = answer(nt, tenant, dns.message.make_query(name, rdtype).to_wire())
    return None if wire is None else dns.message.from_wire(wire)


def ips(r):
    return sorted(rd.address for rr in r.answer for rd in rr)


async def test_names_groups_services_in_tenant(table):
    nt, t = table
    r = ask(nt, t, "web1")  # case-insensitive
    assert r.rcode() == dns.rcode.NOERROR and ips(r) == ["10.5.0.1"] and r.flags & dns.flags.AA
    assert r.answer[0].ttl == 120
    assert ips(ask(nt, t, "web.")) == ["10.5.0.1", "10.5.0.2"]
    assert ips(ask(nt, t, "svc1")) == ["10.5.0.200"]
    assert len(ips(ask(nt, t, "big"))) == 10  # an EPG answers at most 10 records
    r = ask(nt, t, "web1", "AAAA")  # known name, no v6 address: NOERROR, no data (no forwarding)
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert ips(ask(nt, t, "v6", "AAAA")) == ["fd00::4"] and ips(ask(nt, t, "v6")) == ["10.5.0.4"]


async def test_aliases_answered_in_tenant_and_bad_ones_ignored(etcd_kv, table):
    """``--network-alias`` names stored with the endpoint (``aliases``) are answered like its name,
    in its tenant only; a malformed ``aliases`` value is ignored, the rest of the table stands."""
    nt, t = table
    await put_ep(etcd_kv, f"n.{t}-a1", netID=f"n.{t}", ipAddress="10.5.0.7", ipv6Address="fd00::7",
                 epCommonName="cache1", aliases=["Cache", "cache.tier"])  # fmt: skip
    await put_ep(
        etcd_kv, f"n.{t}-a2", netID=f"n.{t}", ipAddress="10.5.0.8", epCommonName="odd", aliases="cache"
    )
    await put_ep(
        etcd_kv, f"n.{t}-a3", netID=f"n.{t}", ipAddress="10.5.0.9", epCommonName="odd2", aliases=[5, None]
    )
    await nt.rebuild()
    assert ips(ask(nt, t, "cache")) == ["10.5.0.7"]
    assert ips(ask(nt, t, "CACHE.tier.")) == ["10.5.0.7"]
    assert ips(ask(nt, t, "cache", "AAAA")) == ["fd00::7"]
    assert ips(ask(nt, t, "odd")) == ["10.5.0.8"] and ips(ask(nt, t, "odd2")) == ["10.5.0.9"]
    assert ask(nt, f"{t}x", "cache") is None


async def test_other_tenant_unknown_and_garbage_are_not_ours(table):
    nt, t = table
    assert ask(nt, t, "secret") is None  # another tenant's name: forwarded, never answered
    assert ips(ask(nt, f"{t}x", "secret")) == ["10.5.0.3"]
    assert ask(nt, t, "example.com") is None
    assert answer(nt, t, b"\x00\x01garbage") is None
    resp = dns.message.make_response(dns.message.make_query("web1", "A")).to_wire()
    assert answer(nt, t, resp) is None  # a response is not a query


def query_frame(name: str, src_ip="10.1.1.1", dst_ip=UPSTREAM, sport=40001) -> bytes:
    return P.build_udp(
        P.Ethernet(dst="00:00:11:11:11:11", src="02:02:0a:01:01:01", ethertype=0x0800),
        P.IPv4(src=src_ip, dst=dst_ip, proto=17),
        P.Udp(src_port=sport, dst_port=53),
        dns.message.make_query(name, "A").to_wire(),
    )


async def test_resolver_frame_is_the_query_turned_around_and_table_follows_etcd(etcd_kv, table):
    nt, t = table
    ns = NameServer(etcd_kv)
    agent = SimpleNamespace(local_endpoint=lambda port: SimpleNamespace(vrf=t) if port == 7 else None)
    ns.attach(agent)
    task = asyncio.create_task(ns.run())
    try:
        out = await agent.dns_resolver(7, query_frame("web2"))
        pkt = P.parse(out)
        eth, ip4, u = pkt.eth, pkt.ip, pkt.udp
        assert (eth.src, eth.dst) == ("00:00:11:11:11:11", "02:02:0a:01:01:01")
        assert (ip4.src, ip4.dst, u.src_port, u.dst_port) == (UPSTREAM, "10.1.1.1", 53, 40001)
        # checksums are right: rebuilding the parsed packet gives the same bytes, and both sum to zero
        assert P.build_udp(eth, ip4, u, pkt.payload) == out
        assert P.checksum(out[14:34]) == 0
        assert P.checksum(out[26:34] + struct.pack("!BBH", 0, 17, len(out) - 34) + out[34:]) == 0
        assert ips(dns.message.from_wire(pkt.payload)) == ["10.5.0.2"]
        assert await agent.dns_resolver(8, query_frame("web2")) is None  # not a local endpoint
        assert await agent.dns_resolver(7, query_frame("secret")) is None
        # a name added later is answered (watch marks the table stale, the query rebuilds it)
        await asyncio.sleep(0.3)
        await put_ep(etcd_kv, f"n.{t}-e9", netID=f"n.{t}", ipAddress="10.5.0.9", epCommonName="late")
        for _ in range(50):
            out = await agent.dns_resolver(7, query_frame("late"))
            if out:
                break
            await asyncio.sleep(0.1)
        assert out and ips(dns.message.from_wire(P.parse(out).payload)) == ["10.5.0.9"]
        assert ns.stats["answered"] == 2 and ns.stats["forwarded"] >= 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---- the punt path on a real OVS ---------------------------------------------------------------

BR = "contivVxlanBridge"
MAC1, MAC2 = "02:02:0a:01:01:01", "02:02:0a:01:01:02"


@contextlib.asynccontextmanager
async def punt_agent(ovs, etcd_kv):
    """An OfnetAgent on BR of ``ovs`` (connected) with a NameServer attached and running."""
    ag = OfnetAgent(BR, "vxlan", sock=ovs.listen_socket(0), echo_interval=1.0)
    await ag.start()
    ns = NameServer(etcd_kv)
    ns.attach(ag)
    task = asyncio.create_task(ns.run())
    try:
        await asyncio.to_thread(ovs.add_bridge, BR, ag.port)
        await ag.wait_connected(20)
        yield ag
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ag.stop()


def _ns(ns, *cmd, timeout=30):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


@pytest.mark.ovs
@pytest.mark.root
@pytest.mark.timeout(180)
async def test_punt_answers_tenant_names_and_reinjects_the_rest(ovs_instance, etcd_kv):
    ovs = ovs_instance
    sfx = uuid.uuid4().hex[:5]
    c1, c2 = f"tdnc1{sfx}", f"tdnc2{sfx}"
    async with punt_agent(ovs, etcd_kv) as ag:
        p1 = await asyncio.to_thread(ovs.add_veth_port, BR, "tdnvp1", c1, "eth0", MAC1, "10.1.1.1/24")
        p2 = await asyncio.to_thread(ovs.add_veth_port, BR, "tdnvp2", c2, "eth0", MAC2, "10.1.1.2/24")
        for c in (c1, c2):
            await asyncio.to_thread(_ns, c, "ip", "route", "add", "default", "via", "10.1.1.254")
        await ag.add_network(1, 1, "10.1.1.254", "default")
        await ag.add_local_endpoint(LocalEndpoint(p1, MAC1, "10.1.1.1", 1))
        await ag.add_local_endpoint(LocalEndpoint(p2, MAC2, "10.1.1.2", 1))
        await put_ep(etcd_kv, "n.default-e2", netID="n.default", ipAddress="10.1.1.2", epCommonName="tdnweb")
        await put_ep(etcd_kv, "n.tdnx-e3", netID="n.tdnx", ipAddress="10.1.1.3", epCommonName="tdnother")

        # to an upstream behind the gateway: ARP for the gateway answered, the query punted and answered
        r = await asyncio.to_thread(_ns, c1, "busybox", "nslookup", "tdnweb", UPSTREAM)
        assert "10.1.1.2" in r.stdout, r.stdout + r.stderr
        st = ag.statistics()
        # the gateway's ARP answer comes from its arp_responder flow (OVS), the DNS answer from us
        assert st["arp_gateway_replies"] == 0 and st["dns_answers"] >= 1
        neigh = await asyncio.to_thread(_ns, c1, "ip", "neigh", "show", "10.1.1.254")
        assert "00:00:11:11:11:11" in neigh.stdout

        # another tenant's name and an unknown name: not answered; re-injected (VLAN 4093) and
        # forwarded normally -> a query to c2's address reaches c2 through the pipeline
        answers = st["dns_answers"]
        dump = subprocess.Popen(
            ["ip", "netns", "exec", c2, "tcpdump", "-i", "eth0", "-n", "-l", "-p", "udp dst port 53"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            await asyncio.sleep(1.0)
            for name in ("tdnother", "tdn-unknown.example"):
                r = await asyncio.to_thread(_ns, c1, "busybox", "nslookup", name, "10.1.1.2")
                assert "10.1.1.3" not in r.stdout
            await asyncio.sleep(0.5)
        finally:
            dump.terminate()
            seen = dump.communicate(timeout=10)[0]
        assert "10.1.1.1." in seen and "10.1.1.2.53" in seen, seen
        assert "tdnother" in seen and "tdn-unknown" in seen, seen
        st = ag.statistics()
        assert st["dns_answers"] == answers and st["dns_reinjects"] >= 2
        # the re-inject flow (table 0, VLAN 4093 -> pop, goto 1) carried them
        flows = ovs.dump_flows(BR)
        reinj = [f for f in flows if "dl_vlan=4093" in f]
        assert reinj and "n_packets=0" not in ovs.ofctl("dump-flows", BR, "dl_vlan=4093")


@pytest.mark.ovs
@pytest.mark.root
@pytest.mark.timeout(180)
async def test_network_without_gateway_answers_off_subnet_arp_and_names(ovs_instance, etcd_kv):
    """A network without a gateway: the container has ``default dev eth0`` (the plugin's Join), so
    it ARPs for its upstream resolver itself. The agent answers ARP for addresses outside the
    subnet (not inside it) with the router MAC, and the query is then punted and answered."""
    ovs = ovs_instance
    c1 = f"tdnc1{uuid.uuid4().hex[:5]}"
    async with punt_agent(ovs, etcd_kv) as ag:
        p1 = await asyncio.to_thread(ovs.add_veth_port, BR, "tdnvp1", c1, "eth0", MAC1, "10.1.1.1/24")
        await asyncio.to_thread(_ns, c1, "ip", "route", "add", "default", "dev", "eth0")
        await ag.add_network(1, 1, "", "default", subnet="10.1.1.0/24")
        await ag.add_local_endpoint(LocalEndpoint(p1, MAC1, "10.1.1.1", 1))
        await put_ep(etcd_kv, "n.default-e2", netID="n.default", ipAddress="10.1.1.2", epCommonName="tdnweb")

        r = await asyncio.to_thread(_ns, c1, "busybox", "nslookup", "tdnweb", UPSTREAM)
        assert "10.1.1.2" in r.stdout, r.stdout + r.stderr
        neigh = await asyncio.to_thread(_ns, c1, "ip", "neigh", "show", UPSTREAM)
        assert "00:00:11:11:11:11" in neigh.stdout, neigh.stdout
        assert ag.statistics()["arp_gateway_replies"] >= 1

        # an unknown address inside the subnet is not the router's
        await asyncio.to_thread(_ns, c1, "ping", "-c", "1", "-W", "1", "10.1.1.77")
        neigh = await asyncio.to_thread(_ns, c1, "ip", "neigh", "show", "10.1.1.77")
        assert "00:00:11:11:11:11" not in neigh.stdout, neigh.stdout
