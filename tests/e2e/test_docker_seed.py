"""End to end with real Docker: two hosts, each with its own OVS, dockerd and netplugin; etcd and
netmaster; networks made with the real netctl; containers started with ``docker run --net``.

The bed starts netmaster and each netplugin with exactly the issue's command lines (checked from
/proc/<pid>/cmdline against the issue's text by the first test, and again once the seed has run).

Order matters (module-scoped bed): the seed network ``test-net`` and containers tdkc1 (host 1) /
tdkc2 (host 2) are used by the later tests.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
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
    def count(d) -> int:  # by name: netmaster and host 1's agent both create it, one must remain
        return sum(1 for n in d.api("GET", "/networks")[1] if n["Name"] == name)

    def ok():
        return all(count(d) == int(present) for d in dbed.dockers.values())

    wait_until(ok, timeout, f"docker network {name} {'on' if present else 'gone from'} every host")


def eth0(d, name: str) -> tuple[str, str]:
    out = d.exec(name, "ip", "-o", "-4", "addr", "show", "eth0")
    ip = out.split(" inet ")[1].split()[0]
    mac = d.exec(name, "cat", "/sys/class/net/eth0/address").strip()
    return ip, mac


def ep_state(bed, net_id: str) -> list[dict]:
    out = bed.etcdctl("get", "--prefix", f"/contiv.io/state/eps/{net_id}-", "--print-value-only")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# The issue's command lines, verbatim. IP, PATH and NAME stand for the bed's concrete values; the
# ports 2379/9999 may be free ones instead (other runs on this machine may hold them).
ISSUE_NETMASTER = (
    "netmaster --etcd-endpoints http://IP:2379 --mode docker --netmode vlan --fwdmode bridge "
    "--listen-url IP:9999 --control-url IP:9999 --docker-host unix://PATH"
)
ISSUE_NETPLUGIN = (
    "netplugin --etcd-endpoints http://IP:2379 --mode docker --netmode vlan --fwdmode bridge --host NAME "
    "--vtep-ip IP --ctrl-ip IP --ovsdb unix:PATH --ovs-datapath netdev --plugin-socket PATH "
    "--docker-host unix://PATH"
)
_PLACEHOLDERS = {"IP": r"\d{1,3}(?:\.\d{1,3}){3}", "PATH": r"/[^\s]+", "NAME": r"[A-Za-z0-9][A-Za-z0-9_.-]*"}


def issue_patterns(line: str) -> tuple[str, list[re.Pattern]]:
    """(program, one regex per argument after it) from the issue's command line."""
    prog, *args = line.split()
    out = []
    for a in args:
        rx = re.escape(a)
        for ph, sub in _PLACEHOLDERS.items():
            rx = rx.replace(ph, sub)
        out.append(re.compile(rx.replace("2379", r"\d+").replace("9999", r"\d+")))
    return prog, out


def daemon_argv(pid: int) -> tuple[str, list[str]]:
    """(program, arguments after it) of a running daemon from /proc/<pid>/cmdline."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
    assert argv[1] == "-m" and argv[2].startswith("contivpy."), argv
    return argv[2].removeprefix("contivpy."), argv[3:]


def assert_matches_issue(pid: int, line: str) -> dict[str, str]:
    prog, pats = issue_patterns(line)
    got_prog, args = daemon_argv(pid)
    assert got_prog == prog
    assert len(args) == len(pats), f"{prog} argv differs from the issue's:\n  {args}\n  {line}"
    for a, p in zip(args, pats, strict=True):
        assert p.fullmatch(a), f"{prog}: {a!r} does not match the issue's {p.pattern!r} ({args})"
    return dict(zip(args[0::2], args[1::2], strict=True))


def same_ns(pid_a: int | str, path_b: str, kind: str = "net") -> bool:
    return os.stat(f"/proc/{pid_a}/ns/{kind}").st_ino == os.stat(path_b).st_ino


def assert_issue_command_lines(dbed) -> None:
    """netmaster and every netplugin run with exactly the issue's flags (and these values), each
    netplugin and dockerd in its host's netns, each dockerd in its own mount namespace, and the
    host's underlay IP on an OVS bridge holding the underlay port."""
    bed = dbed.bed
    h1 = bed.hosts[1]
    nm = assert_matches_issue(bed.netmaster_proc.pid, ISSUE_NETMASTER)
    assert nm["--etcd-endpoints"] == bed.etcd_url
    assert nm["--listen-url"] == nm["--control-url"] == bed.netmaster_url.removeprefix("http://")
    assert nm["--docker-host"] == dbed.dockers[1].host_url == h1.docker_host
    assert same_ns(bed.netmaster_proc.pid, "/proc/self/ns/net")  # root netns: the control address
    mount_ns = set()
    for i, h in bed.hosts.items():
        np = assert_matches_issue(h.netplugin.pid, ISSUE_NETPLUGIN)
        d = dbed.dockers[i]
        assert np == {
            "--etcd-endpoints": bed.etcd_url, "--mode": "docker", "--netmode": "vlan", "--fwdmode": "bridge",
            "--host": h.name, "--vtep-ip": h.ip, "--ctrl-ip": h.ip, "--ovsdb": f"unix:{h.db_sock}",
            "--ovs-datapath": "netdev", "--plugin-socket": h.plugin_socket, "--docker-host": d.host_url,
        }  # fmt: skip
        assert os.path.exists(d.host_url.removeprefix("unix://")), (
            "engine socket reachable from the root netns"
        )
        assert same_ns(h.netplugin.pid, f"/run/netns/{h.netns}")
        dpid = int((d.dir / "docker.pid").read_text())
        assert open(f"/proc/{dpid}/comm").read().strip() == "dockerd"
        assert same_ns(dpid, f"/run/netns/{h.netns}")
        assert not same_ns(dpid, "/proc/self/ns/mnt", "mnt")
        mount_ns.add(os.stat(f"/proc/{dpid}/ns/mnt").st_ino)
        assert f" {h.ip}/24 " in h.exec("ip", "-o", "-4", "addr", "show", "dev", "br-phy")
        assert h.ports("br-phy") == ["eth1"]
        assert " inet " not in h.exec("ip", "-o", "-4", "addr", "show", "dev", "eth1")
    assert len(mount_ns) == len(bed.hosts), "each dockerd in its own mount namespace"


def test_daemons_run_with_the_issue_command_lines(docker_bed2):
    assert_issue_command_lines(docker_bed2)
    # the patterns are strict: an extra flag, a missing one or another value is caught
    _, pats = issue_patterns(ISSUE_NETPLUGIN)
    assert not pats[-1].fullmatch("none") and not pats[1].fullmatch("http://h1:2379")
    assert len(pats) == 22 and len(issue_patterns(ISSUE_NETMASTER)[1]) == 14


def test_seed_network_on_both_hosts_and_ping(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    # the seed's exact command: no gateway (names must resolve all the same, see test below)
    out = bed.netctl("network", "create", "--subnet", "10.103.1.0/24", "test-net")
    assert out.strip() == "Creating network default:test-net"
    wait_net(docker_bed2, "test-net")
    n = d2.networks()["test-net"]
    assert n["Scope"] == "local" and n["IPAM"]["Driver"] == "netplugin"
    d1.run("tdkc1", "test-net")  # as the seed: no --dns (dockerd's --dns is a test-bed address)
    d2.run("tdkc2", "test-net")
    ip1, mac1 = eth0(d1, "tdkc1")
    ip2, mac2 = eth0(d2, "tdkc2")
    assert (ip1, mac1) == ("10.103.1.1/24", "02:02:0a:67:01:01")
    assert (ip2, mac2) == ("10.103.1.2/24", "02:02:0a:67:01:02")
    assert "mtu 1450" in d1.exec("tdkc1", "ip", "link", "show", "eth0")
    # no gateway: the plugin's Join gives "default dev eth0" and no docker_gwbridge second interface
    for d, c in ((d1, "tdkc1"), (d2, "tdkc2")):
        assert "default dev eth0" in d.exec(c, "ip", "route")
        assert "eth1" not in d.exec(c, "ip", "link")
    assert d1.ping("tdkc1", "10.103.1.2"), "h1 -> h2 by IP"
    assert d2.ping("tdkc2", "10.103.1.1"), "h2 -> h1 by IP"
    eps = ep_state(bed, "test-net.default")
    assert sorted(e["ipAddress"] for e in eps) == ["10.103.1.1", "10.103.1.2"]


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
    assert "10.103.1.2" in out
    # the seed's exact command
    assert "4 packets received" in d1.exec("tdkc1", "ping", "-c", "4", "tdkc2", timeout=60)
    # answered by h1's agent from the OpenFlow punt (Docker only knows its own host's names)
    assert dns_stats(bed.hosts[1])["dns_answers"] > 0
    assert dns_stats(bed.hosts[2])["dns_answers"] > 0
    # the seed ran against the daemons started with the issue's command lines (same processes)
    assert_issue_command_lines(docker_bed2)


def test_network_alias_resolves_on_the_other_host(docker_bed2):
    """`docker run --network-alias`: Docker's embedded resolver knows the alias on its own host
    only; the start event brings it into the endpoint state and h1's agent answers it too."""
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    try:
        d2.run("tdka2", "test-net", "--network-alias", "tdk-alias")
        ip = eth0(d2, "tdka2")[0].split("/")[0]
        wait_until(
            lambda: any("tdk-alias" in (e.get("aliases") or []) for e in ep_state(bed, "test-net.default")),
            20,
            "alias recorded in the endpoint state",
        )
        assert d1.ping("tdkc1", "tdk-alias"), "h1 -> h2 by alias"
        assert ip in d1.exec("tdkc1", "nslookup", "tdk-alias")
    finally:
        d2.docker_rc("rm", "-f", "tdka2")


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
        # an unknown name: not answered by the agent; the query goes on to the upstream resolver the
        # way any outside traffic does since host access (docs/ovs-pipeline.md): NATed by the host,
        # never as a container address and never inside a VXLAN packet on the underlay
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
        seen = [ln for ln in dump.communicate(timeout=10)[0].splitlines() if ln.strip()]
        host_ips = {h.ip for h in bed.hosts.values()}
        for ln in seen:
            assert " 4789" not in ln and ".4789" not in ln, f"DNS inside VXLAN on the underlay: {ln}"
            if " ARP, " in ln:
                assert ln.rsplit(" tell ", 1)[1].split(",")[0] in host_ips, f"not from a host: {ln}"
            else:
                src = ln.split(" IP ", 1)[1].split(" > ")[0].rsplit(".", 1)[0]
                assert src in host_ips, f"upstream query not NATed to a host address: {ln}"
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
    bed.netctl("network", "create", "-t", "t1", "--subnet", "10.103.1.0/24", "-g", "10.103.1.254", "test-net")
    wait_net(docker_bed2, "test-net/t1")
    d1.run("tdkt1a", "test-net/t1")
    assert eth0(d1, "tdkt1a")[0] == "10.103.1.1/24"
    # 10.103.1.2 exists in tenant default (tdkc2): unreachable from t1
    assert not d1.ping("tdkt1a", "10.103.1.2", budget=3), "tenant t1 reached tenant default"
    d2.run("tdkt1b", "test-net/t1")
    assert eth0(d2, "tdkt1b")[0] == "10.103.1.2/24"
    assert d1.ping("tdkt1a", "10.103.1.2"), "t1 containers reach each other"
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

    # netmaster (engine of host 1) records, after Docker succeeded, the id of the network host 1
    # has (its reconciler and host 1's netplugin both create it: one copy is kept, the same by both)
    def recorded():
        out = bed.etcdctl("get", "/contiv.io/oper/docknet/default.test-net.web", "--print-value-only")
        return out.strip() and json.loads(out)["docknetUUID"] == d1.networks()["web"]["Id"]

    wait_until(recorded, 30, "docknet record of web names host 1's network")
    d1.run("tdkw1", "web")
    d2.run("tdkw2", "web")
    ipw2 = eth0(d2, "tdkw2")[0].split("/")[0]
    assert d1.ping("tdkw1", ipw2), "web h1 -> web h2"
    assert d2.ping("tdkw2", "10.103.1.1"), "web h2 -> test-net h1 (default allow)"
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
    assert d1.ping("tdkc1", "10.103.1.2"), "connectivity while netplugin is down"
    h1.start_netplugin()
    # the same dockerd keeps using the plugin: a new container on h1 works and reaches h2
    d1.run("tdkr1", "test-net")
    ip = eth0(d1, "tdkr1")[0].split("/")[0]
    assert d2.ping("tdkc2", ip), "new container after restart reachable"
    assert d1.ping("tdkc1", "10.103.1.2") and d2.ping("tdkc2", "10.103.1.1"), (
        "old containers keep connectivity"
    )
    assert d1.ping("tdkc1", "tdkc2"), "DNS served again after the restart"
    d1.docker("rm", "-f", "tdkr1")


def test_twenty_containers_in_parallel(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    names = [(d1 if i % 2 else d2, f"tdkp{i}") for i in range(20)]
    with cf.ThreadPoolExecutor(20) as ex:
        list(ex.map(lambda dn: dn[0].run(dn[1], "test-net"), names))
    ips = {n: eth0(d, n)[0].split("/")[0] for d, n in names}
    assert len(set(ips.values())) == 20
    assert set(ips.values()).isdisjoint({"10.103.1.1", "10.103.1.2", "10.103.1.254"})
    # every container reaches one on the other host; one container reaches all
    with cf.ThreadPoolExecutor(10) as ex:
        peers = [(d, n, ips[names[(k + 1) % 20][1]]) for k, (d, n) in enumerate(names)]
        assert all(ex.map(lambda p: p[0].ping(p[1], p[2]), peers))
        assert all(ex.map(lambda ip: d1.ping("tdkc1", ip), ips.values()))
    with cf.ThreadPoolExecutor(10) as ex:
        list(ex.map(lambda dn: dn[0].docker("rm", "-f", dn[1]), names))
    eps = ep_state(bed, "test-net.default")
    assert sorted(e["ipAddress"] for e in eps) == ["10.103.1.1", "10.103.1.2"]


def test_service_lb_to_labelled_containers(docker_bed2):
    """`netctl service create -l app=tdkweb -p 80:8080:TCP`: containers started with that label on
    both hosts become its providers (labels sent after Join); clients on both hosts reach a provider
    through the VIP; removing the provider a client used moves that client to the other one."""
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    web = ("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www")
    try:
        d1.run("tdks1", "test-net", "--label", "app=tdkweb", "--hostname", "tdks1", cmd=web)
        d2.run("tdks2", "test-net", "--label", "app=tdkweb", "--hostname", "tdks2", cmd=web)
        out = bed.netctl(
            "service", "create", "-s", "test-net", "-l", "app=tdkweb", "-p", "80:8080:TCP", "tdksvc"
        )
        assert out.strip() == "Creating ServiceLB default:tdksvc"

        def providers() -> list[str]:
            raw = bed.etcdctl("get", "/contiv.io/state/provider/tdksvc:default", "--print-value-only")
            return json.loads(raw)["Providers"] if raw.strip() else []

        ips = {n: eth0(d, n)[0].split("/")[0] for d, n in ((d1, "tdks1"), (d2, "tdks2"))}
        wait_until(lambda: sorted(providers()) == sorted(ips.values()), 30, "both providers recorded")
        vip = json.loads(bed.netctl("service", "inspect", "tdksvc"))["Oper"]["serviceVip"]

        def fetch(d, c) -> str:
            # busybox-static's `wget -T` crashes (SIGSEGV): bound it with `timeout` instead
            r = d.docker_rc("exec", c, "timeout", "3", "wget", "-q", "-O", "-", f"http://{vip}:80/")
            return r.stdout.strip() if r.returncode == 0 else ""

        used = {}
        for d, c in ((d1, "tdkc1"), (d2, "tdkc2")):
            used[c] = wait_until(lambda d=d, c=c: fetch(d, c), 30, f"{c} -> VIP {vip}:80")
            assert used[c] in ("tdks1", "tdks2")
        # the provider tdkc1 used goes away: tdkc1 is moved to the other one
        gone = used["tdkc1"]
        (d1 if gone == "tdks1" else d2).docker("rm", "-f", gone)
        other = "tdks2" if gone == "tdks1" else "tdks1"
        wait_until(lambda: providers() == [ips[other]], 30, "provider removed")
        assert wait_until(lambda: fetch(d1, "tdkc1") == other, 30, "tdkc1 moved to the other provider")
    finally:
        for d, n in ((d1, "tdks1"), (d2, "tdks2")):
            d.docker_rc("rm", "-f", n)
        bed_netctl_rc(bed, "service", "rm", "tdksvc")
    assert not bed.etcdctl("get", "--prefix", "/contiv.io/state/provider/tdksvc", "--keys-only").strip()


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
    assert not [f for f in h1.flows() if "02:02:0a:67:01:01" in f or "10.103.1.1," in f]
    net = json.loads(bed.etcdctl("get", "/contiv.io/state/nets/test-net.default", "--print-value-only"))
    assert net["epCount"] == 0 and net["epAddrCount"] == 0
    out = bed.netctl("network", "rm", "test-net")
    assert "Deleting network default:test-net" in out
    wait_net(docker_bed2, "test-net", present=False)
