"""End to end with real Docker: two hosts, each with its own OVS, dockerd and netplugin; etcd and
netmaster; networks made with the real netctl; containers started with ``docker run --net``.

Order matters (module-scoped bed): the seed network ``test-net`` and containers tdkc1 (host 1) /
tdkc2 (host 2) are used by the later tests.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.docker]


def wait_until(pred, timeout=30.0, what="condition", interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(what)


def wait_net(dbed, name: str, present: bool = True, timeout: float = 30.0):
    def ok():
        return all((name in d.networks()) == present for d in dbed.dockers.values())

    wait_until(ok, timeout, f"docker network {name} {'on' if present else 'gone from'} every host")


def eth0(d, name: str) -> tuple[str, str]:
    out = d.exec(name, "ip", "-o", "-4", "addr", "show", "eth0")
    ip = out.split(" inet ")[1].split()[0]
    mac = d.exec(name, "cat", "/sys/class/net/eth0/address").strip()
    return ip, mac


def ep_state(bed, net_id: str) -> list[dict]:
    out = bed.etcdctl("get", "--prefix", f"/contiv.io/state/eps/{net_id}-", "--print-value-only")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_seed_network_on_both_hosts_and_ping(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    out = bed.netctl("network", "create", "--subnet", "10.1.1.0/24", "-g", "10.1.1.254", "test-net")
    assert out.strip() == "Creating network default:test-net"
    wait_net(docker_bed2, "test-net")
    n = d2.networks()["test-net"]
    assert n["Scope"] == "local" and n["IPAM"]["Driver"] == "netplugin"
    d1.run("tdkc1", "test-net")  # as the seed: no --dns (dockerd's --dns is a test-bed address)
    d2.run("tdkc2", "test-net")
    ip1, mac1 = eth0(d1, "tdkc1")
    ip2, mac2 = eth0(d2, "tdkc2")
    assert (ip1, mac1) == ("10.1.1.1/24", "02:02:0a:01:01:01")
    assert (ip2, mac2) == ("10.1.1.2/24", "02:02:0a:01:01:02")
    assert "mtu 1450" in d1.exec("tdkc1", "ip", "link", "show", "eth0")
    assert "default via 10.1.1.254" in d1.exec("tdkc1", "ip", "route")
    assert d1.ping("tdkc1", "10.1.1.2"), "h1 -> h2 by IP"
    assert d2.ping("tdkc2", "10.1.1.1"), "h2 -> h1 by IP"
    eps = ep_state(bed, "test-net.default")
    assert sorted(e["ipAddress"] for e in eps) == ["10.1.1.1", "10.1.1.2"]


def test_ping_by_name_across_hosts(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    wait_until(
        lambda: {e["epCommonName"] for e in ep_state(bed, "test-net.default")} >= {"tdkc1", "tdkc2"},
        20,
        "container names recorded in the endpoint state",
    )
    assert d1.ping("tdkc1", "tdkc2"), "h1 -> h2 by name"
    assert d2.ping("tdkc2", "tdkc1"), "h2 -> h1 by name"
    out = d1.exec("tdkc1", "nslookup", "tdkc2")
    assert "10.1.1.2" in out
    # the seed's exact command
    assert "4 packets received" in d1.exec("tdkc1", "ping", "-c", "4", "tdkc2", timeout=60)
    # answered by h1's agent from the OpenFlow punt (Docker only knows its own host's names)
    assert dns_stats(bed.hosts[1])["dns_answers"] > 0
    assert dns_stats(bed.hosts[2])["dns_answers"] > 0


def dns_stats(host) -> dict:
    from tests.fixtures.testbed import http_json

    st, body = http_json("GET", host.debug_url + "/inspect/driver")
    assert st == 200
    return body["vxlan"]["Stats"]


def test_dns_groups_tenants_and_unknown_names(docker_bed2):
    """Group names give the members; another tenant's names are not answered; an unknown name is
    left to the pipeline (re-injected, dropped in bridge mode) and no DNS query leaves a host."""
    import subprocess

    from tests.fixtures.docker import DNS_UPSTREAM

    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    bed.netctl("group", "create", "test-net", "tdndb")
    bed.netctl("tenant", "create", "tdnt")
    bed.netctl("network", "create", "-t", "tdnt", "--subnet", "10.9.9.0/24", "-g", "10.9.9.254", "tdnnet")
    wait_net(docker_bed2, "tdndb")
    wait_net(docker_bed2, "tdnnet/tdnt")
    dump = None
    try:
        d1.run("tdndb1", "tdndb")
        d2.run("tdndb2", "tdndb")
        d2.run("tdnsecret", "tdnnet/tdnt")
        d1.run("tdnasker", "tdnnet/tdnt")
        members = {eth0(d1, "tdndb1")[0].split("/")[0], eth0(d2, "tdndb2")[0].split("/")[0]}
        secret = eth0(d2, "tdnsecret")[0].split("/")[0]
        wait_until(
            lambda: (
                {e.get("epCommonName") for e in ep_state(bed, "tdnnet.tdnt")} >= {"tdnsecret", "tdnasker"}
            ),
            20,
            "names recorded",
        )
        # group name -> every member, from a container of another group on either host
        out = d1.exec("tdkc1", "nslookup", "tdndb")
        assert all(ip in out for ip in members), out
        # the tenant's own container resolves its name across hosts; tenant default does not
        assert secret in d1.exec("tdnasker", "nslookup", "tdnsecret")
        assert d1.ping("tdnasker", "tdnsecret"), "tenant tdnt: ping by name across hosts"
        before = dns_stats(bed.hosts[1])
        r = d1.docker_rc("exec", "tdkc1", "nslookup", "tdnsecret")
        assert secret not in r.stdout, r.stdout
        # an unknown name: not answered by the agent, and nothing leaves towards the upstream
        dump = subprocess.Popen(
            ["tcpdump", "-i", "tnpul", "-n", "-l", "-p",
             f"host {DNS_UPSTREAM} or udp port 53 or (udp port 4789 and udp[52:2] = 53)"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        time.sleep(1.0)
        r = d1.docker_rc("exec", "tdkc1", "nslookup", "tdn-nothere.example")
        assert "Address" not in r.stdout.split("tdn-nothere")[-1], r.stdout
        after = dns_stats(bed.hosts[1])
        assert after["dns_reinjects"] > before["dns_reinjects"], (before, after)
        assert after["dns_answers"] == before["dns_answers"], "the agent answered a name it must not"
        time.sleep(0.5)
        dump.terminate()
        leaked = dump.communicate(timeout=10)[0]
        assert not leaked.strip(), f"DNS traffic on the underlay: {leaked}"
    finally:
        if dump is not None and dump.poll() is None:
            dump.kill()
            dump.wait()
        for d, n in ((d1, "tdndb1"), (d2, "tdndb2"), (d2, "tdnsecret"), (d1, "tdnasker")):
            d.docker_rc("rm", "-f", n)
        bed_netctl_rc(bed, "group", "rm", "tdndb")
        bed_netctl_rc(bed, "network", "rm", "-t", "tdnt", "tdnnet")
        bed_netctl_rc(bed, "tenant", "rm", "tdnt")


def test_netctl_network_rm_refused_while_containers_attached(docker_bed2):
    bed = docker_bed2.bed
    r = bed_netctl_rc(bed, "network", "rm", "test-net")
    assert r.returncode != 0
    assert "active endpoints" in (r.stdout + r.stderr)
    assert "test-net" in docker_bed2.dockers[1].networks()


def bed_netctl_rc(bed, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_tenant_same_subnet_is_isolated(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    bed.netctl("tenant", "create", "t1")
    bed.netctl("network", "create", "-t", "t1", "--subnet", "10.1.1.0/24", "-g", "10.1.1.254", "test-net")
    wait_net(docker_bed2, "test-net/t1")
    d1.run("tdkt1a", "test-net/t1")
    assert eth0(d1, "tdkt1a")[0] == "10.1.1.1/24"
    # 10.1.1.2 exists in tenant default (tdkc2): unreachable from t1
    assert not d1.ping("tdkt1a", "10.1.1.2", budget=3), "tenant t1 reached tenant default"
    d2.run("tdkt1b", "test-net/t1")
    assert eth0(d2, "tdkt1b")[0] == "10.1.1.2/24"
    assert d1.ping("tdkt1a", "10.1.1.2"), "t1 containers reach each other"
    d1.docker("rm", "-f", "tdkt1a")
    d2.docker("rm", "-f", "tdkt1b")


def test_endpoint_group_network(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    bed.netctl("group", "create", "test-net", "web")
    wait_net(docker_bed2, "web")
    assert d1.networks()["web"]["IPAM"]["Options"] == {
        "tenant": "default",
        "network": "test-net",
        "group": "web",
    }
    d1.run("tdkw1", "web")
    d2.run("tdkw2", "web")
    ipw2 = eth0(d2, "tdkw2")[0].split("/")[0]
    assert d1.ping("tdkw1", ipw2), "web h1 -> web h2"
    assert d2.ping("tdkw2", "10.1.1.1"), "web h2 -> test-net h1 (default allow)"
    eps = {e["ipAddress"]: e for e in ep_state(bed, "test-net.default")}
    assert eps[ipw2]["endpointGroupKey"] == "web:default"
    d1.docker("rm", "-f", "tdkw1")
    d2.docker("rm", "-f", "tdkw2")
    bed.netctl("group", "rm", "web")
    wait_net(docker_bed2, "web", present=False)


def test_kill9_netplugin_restart_keeps_docker_and_connectivity(docker_bed2):
    import signal

    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    h1 = bed.hosts[1]
    h1.stop_netplugin(signal.SIGKILL)
    # the data path keeps forwarding while the agent is down
    assert d1.ping("tdkc1", "10.1.1.2"), "connectivity while netplugin is down"
    h1.start_netplugin("--docker-host", d1.host_url)
    # the same dockerd keeps using the plugin: a new container on h1 works and reaches h2
    d1.run("tdkr1", "test-net")
    ip = eth0(d1, "tdkr1")[0].split("/")[0]
    assert d2.ping("tdkc2", ip), "new container after restart reachable"
    assert d1.ping("tdkc1", "10.1.1.2") and d2.ping("tdkc2", "10.1.1.1"), "old containers keep connectivity"
    assert d1.ping("tdkc1", "tdkc2"), "DNS served again after the restart"
    d1.docker("rm", "-f", "tdkr1")


def test_twenty_containers_in_parallel(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    names = [(d1 if i % 2 else d2, f"tdkp{i}") for i in range(20)]
    with cf.ThreadPoolExecutor(20) as ex:
        list(ex.map(lambda dn: dn[0].run(dn[1], "test-net"), names))
    ips = {n: eth0(d, n)[0].split("/")[0] for d, n in names}
    assert len(set(ips.values())) == 20
    assert set(ips.values()).isdisjoint({"10.1.1.1", "10.1.1.2", "10.1.1.254"})
    # every container reaches one on the other host; one container reaches all
    with cf.ThreadPoolExecutor(10) as ex:
        peers = [(d, n, ips[names[(k + 1) % 20][1]]) for k, (d, n) in enumerate(names)]
        assert all(ex.map(lambda p: p[0].ping(p[1], p[2]), peers))
        assert all(ex.map(lambda ip: d1.ping("tdkc1", ip), ips.values()))
    with cf.ThreadPoolExecutor(10) as ex:
        list(ex.map(lambda dn: dn[0].docker("rm", "-f", dn[1]), names))
    eps = ep_state(bed, "test-net.default")
    assert sorted(e["ipAddress"] for e in eps) == ["10.1.1.1", "10.1.1.2"]


def test_rm_cleans_ports_flows_and_addresses_then_network_rm(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    h1 = bed.hosts[1]
    ports_before = [p for p in h1.ports("contivVxlanBridge") if p.startswith("vvport")]
    assert ports_before
    d1.docker("stop", "-t", "1", "tdkc1")
    d1.docker("rm", "tdkc1")
    d2.docker("rm", "-f", "tdkc2")
    wait_until(lambda: not ep_state(bed, "test-net.default"), 15, "endpoint state removed")
    assert not [p for p in h1.ports("contivVxlanBridge") if p.startswith("vvport")]
    assert not [f for f in h1.flows() if "02:02:0a:01:01:01" in f or "10.1.1.1," in f]
    net = json.loads(bed.etcdctl("get", "/contiv.io/state/nets/test-net.default", "--print-value-only"))
    assert net["epCount"] == 0 and net["epAddrCount"] == 0
    out = bed.netctl("network", "rm", "test-net")
    assert "Deleting network default:test-net" in out
    wait_net(docker_bed2, "test-net", present=False)
