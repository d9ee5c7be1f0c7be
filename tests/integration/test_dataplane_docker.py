"""The seed scenario with real Docker: two hosts, each with dockerd + netplugin (+ its Docker plugin),
``netctl network create --subnet 10.103.1.0/24 test-net``, ``docker run --net test-net`` on each host;
the containers reach each other across VXLAN (ping and TCP), and ``docker rm`` cleans the data plane.
Uses the docker helper's ``start_docker_bed`` (tests/fixtures/docker.py) on top of this test bed.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.fixtures.testbed import wait_for

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.docker]


def tcp(dsrv, srv, dcli, cli, ip: str, attempts: int = 5) -> bool:
    """Busybox nc server in ``srv``, client in ``cli``; True once the payload arrives."""
    for n in range(attempts):
        port = 7100 + n
        dsrv.docker("exec", "-d", srv, "sh", "-c", f"nc -l -p {port} > /tmp/got{port}")
        time.sleep(0.3)
        dcli.docker_rc("exec", cli, "sh", "-c", f"echo hello-docker | nc -w 2 {ip} {port}")
        time.sleep(0.3)
        if "hello-docker" in dsrv.docker_rc("exec", srv, "cat", f"/tmp/got{port}").stdout:
            return True
    return False


def test_docker_containers_on_two_hosts_talk_over_vxlan(docker_bed2):
    bed, d1, d2 = docker_bed2.bed, docker_bed2.dockers[1], docker_bed2.dockers[2]
    h1, h2 = bed.hosts[1], bed.hosts[2]
    assert "Creating network default:test-net" in bed.netctl(
        "network", "create", "--subnet", "10.103.1.0/24", "test-net"
    )
    for d in (d1, d2):  # each agent's Docker plugin syncs the docker network from etcd
        wait_for(lambda d=d: "test-net" in d.networks(), 20, 0.2, what="docker network test-net")
    d1.run("tnpbox1", "test-net")
    d2.run("tnpbox2", "test-net")
    ip1 = d1.exec("tnpbox1", "ip", "-o", "-4", "addr", "show", "eth0").split()[3].split("/")[0]
    ip2 = d2.exec("tnpbox2", "ip", "-o", "-4", "addr", "show", "eth0").split()[3].split("/")[0]
    assert ip1 != ip2 and ip1.startswith("10.103.1.") and ip2.startswith("10.103.1.")
    assert d1.ping("tnpbox1", ip2) and d2.ping("tnpbox2", ip1)
    # TCP both ways (busybox nc; the agent turned TX checksum offload off on vportN)
    assert tcp(d2, "tnpbox2", d1, "tnpbox1", ip2) and tcp(d1, "tnpbox1", d2, "tnpbox2", ip1)
    # oper state names the container's host and port
    ep_keys = bed.etcdctl("get", "--prefix", "/contiv.io/oper/eps/", "--keys-only").split()
    opers = [json.loads(bed.etcdctl("get", k, "--print-value-only")) for k in ep_keys]
    assert {(o["homingHost"], o["ipAddress"]) for o in opers} >= {("h1", ip1), ("h2", ip2)}
    # docker rm: port, veth and flows gone here, remote flow gone on the other host
    mac1 = next(o["macAddress"] for o in opers if o["ipAddress"] == ip1)
    d1.docker("rm", "-f", "tnpbox1")
    wait_for(
        lambda: not any(p.startswith("vvport") for p in h1.ports("contivVxlanBridge")), 10, what="port gone"
    )
    wait_for(lambda: not any(f"dl_dst={mac1}" in f for f in h2.flows()), 10, what="remote flow gone on h2")
    assert not any(n.startswith("vport") or n.startswith("vvport") for n in h1.links())
