"""Service load balancing across two hosts: real etcd, netmaster and one netplugin process per host
(tests/fixtures/testbed.py).  The ServiceLBState / ProviderState records are written into etcd by the
test (the netmaster side is another part's); endpoints come from the agents' debug REST.

Client containers on host 1, one provider on host 1 and one on host 2, each a TCP server on the
provider port answering its name and the peer address it sees; clients connect to VIP:svcPort.
Oracle: the answers (which provider, client address preserved, connected to the VIP), the per-client
flows in tables 3/6 on host 1, and an agent kill -9 + restart: identical flow tables afterwards, a
TCP connection opened before the restart (through a remote provider) still carries data, new ones work.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from contivpy.model import keys
from contivpy.model.state import ProviderState, ServiceLBState
from contivpy.ofnet.svcproxy import hrw_choice
from tests.fixtures.testbed import Testbed, http_json, wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep
from tests.integration.test_dataplane_restart import snapshot

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.timeout(400)]

SID, VIP = "tsvsvc:default", "10.120.1.200"
SVC_PORT, PROV_PORT = 80, 8080

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(16)
def serve(c, peer):
    with c:
        c.sendall(f"{name} {peer[0]}\n".encode())
        f = c.makefile("rb")
        for line in f:
            c.sendall(b"echo " + line)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""
CLIENT = r"""
import socket, sys, time
d = time.time() + 8
while True:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); break
    except OSError:
        if time.time() > d:
            raise
        time.sleep(0.3)
print(s.getpeername()[0], s.getpeername()[1], s.recv(100).decode().strip(), flush=True)
if len(sys.argv) > 3:  # keep the connection: echo every stdin line through it
    for line in sys.stdin:
        s.sendall(line.encode()); print(s.recv(100).decode().strip(), flush=True)
"""


class Servers:
    """Processes a test starts in its containers: ``start(name, netns)`` runs SERVER (answering
    ``name``) on PROV_PORT and waits until it listens; ``adopt(proc)`` takes any other process.
    ``servers()`` kills every one when its block ends, also on failure."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def adopt(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc

    def start(self, name: str, ns: str) -> None:
        srv = self.adopt(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, name, str(PROV_PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ))  # fmt: skip
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    srv = Servers()
    try:
        yield srv
    finally:
        for p in srv.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def clients_for_each_provider(host, net: str, prefix: str, provs: dict[str, str]) -> dict[str, object]:
    """Endpoints ``prefix0``, ``prefix1``... on ``net`` at ``host`` until the service hash has given
    each provider (ip -> name) to one of them: provider name -> that client container."""
    chosen: dict[str, object] = {}
    for n in range(10):
        info, c = make_ep(host, net, f"{prefix}{n}")
        chosen.setdefault(provs[hrw_choice(info["ip_address"], list(provs))], c)
        if len(chosen) == len(provs):
            return chosen
    raise AssertionError("hash never chose every provider")


def connect_from(ns: str, ip: str, port: int) -> str:
    """One TCP connection from namespace ``ns`` to ip:port: "peer-ip peer-port greeting"."""
    r = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, ip, str(port)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def connect(c) -> str:
    return connect_from(c.name, VIP, SVC_PORT)


def test_service_lb_across_hosts_and_agent_restart():
    with Testbed(2) as bed, servers() as srv:
        _run(bed, srv)


def _run(bed, srv: Servers):
    bed.start_all()
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("tsvnet", "10.120.1.0/24")
    ip1, pv1 = make_ep(h1, "tsvnet", "tsvp1")
    ip2, pv2 = make_ep(h2, "tsvnet", "tsvp2")
    provs = {ip1["ip_address"]: "p1", ip2["ip_address"]: "p2"}
    chosen = clients_for_each_provider(h1, "tsvnet", "tsvc", provs)  # clients on host 1
    srv.start("p1", pv1.name)
    srv.start("p2", pv2.name)

    lb = ServiceLBState(
        id=SID, servicename="tsvsvc", tenantname="default", subnet="tsvnet", ports=[f"{SVC_PORT}:{PROV_PORT}:TCP"],
        selectors={"app": "tsv"}, ipaddress=VIP,
    )  # fmt: skip
    bed.etcdctl("put", keys.SERVICE_LB + SID, lb.to_json())
    bed.etcdctl("put", keys.PROVIDER + SID, ProviderState(SID, sorted(provs)).to_json())
    for h in (h1, h2):
        wait_for(lambda h=h: has_flow(h, "table=3", "priority=10,", f"nw_dst={VIP}", "CONTROLLER"), 15,
                 what=f"watch flow on {h.name}")  # fmt: skip

    # TCP through the VIP reaches both providers (local and remote), client address preserved
    for name, c in sorted(chosen.items()):
        assert connect(c) == f"{VIP} {SVC_PORT} {name} {c.ip}"
    pv_ip = {v: k for k, v in provs.items()}
    for name, c in chosen.items():
        assert has_flow(
            h1,
            "table=3",
            "priority=100",
            f"nw_src={c.ip},nw_dst={VIP}",
            f"nat(dst={pv_ip[name]}:{PROV_PORT})",
        )
        assert has_flow(
            h1, "table=6", "priority=100", f"nw_src={pv_ip[name]},nw_dst={c.ip}", "ct(table=9,zone=65000,nat)"
        )
    assert not has_flow(h2, "table=3", "priority=100")  # clients' NAT lives on the client's host only
    st, stats = http_json("GET", h1.debug_url + "/svcstats")
    assert st == 200 and stats[0]["ServiceIP"] == VIP and stats[0]["Tenant"] == "default"
    assert stats[0]["Clients"] == {c.ip: pv_ip[name] for name, c in chosen.items()}

    # a long-lived connection through the remote provider (host 2) survives an agent kill -9
    far = chosen["p2"]
    keep = subprocess.Popen(
        ["ip", "netns", "exec", far.name, sys.executable, "-c", CLIENT, VIP, str(SVC_PORT), "keep"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    srv.adopt(keep)
    assert keep.stdout.readline().strip() == f"{VIP} {SVC_PORT} p2 {far.ip}"
    before1, before2 = snapshot(h1), snapshot(h2)
    h1.stop_netplugin(signal.SIGKILL)
    h1.start_netplugin()
    wait_for(lambda: snapshot(h1) == before1, 20, what="h1 flow table identical after restart")
    assert snapshot(h2) == before2
    keep.stdin.write("after-restart\n")
    keep.stdin.flush()
    assert keep.stdout.readline().strip() == "echo after-restart"
    for name, c in sorted(chosen.items()):
        assert connect(c) == f"{VIP} {SVC_PORT} {name} {c.ip}"
    assert snapshot(h1) == before1  # served by the re-adopted flows: nothing re-punted or changed

    # provider 1 leaves the provider record: its client moves to provider 2
    bed.etcdctl("put", keys.PROVIDER + SID, ProviderState(SID, [pv_ip["p2"]]).to_json())
    near = chosen["p1"]
    wait_for(lambda: not has_flow(h1, f"nw_src={near.ip},nw_dst={VIP}"), 15, what="client flows of p1 gone")
    assert connect(near) == f"{VIP} {SVC_PORT} p2 {near.ip}"
    # the service goes: no service flow left on either host
    bed.etcdctl("del", keys.SERVICE_LB + SID)
    bed.etcdctl("del", keys.PROVIDER + SID)
    for h in (h1, h2):
        wait_for(lambda h=h: not has_flow(h, VIP), 15, what=f"service flows gone on {h.name}")
