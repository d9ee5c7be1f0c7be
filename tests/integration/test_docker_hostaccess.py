"""Issue 8's complaint with real Docker: ``docker run --net test-net busybox wget http://<outside>``.

Two hosts with dockerd + netplugin (tests/fixtures/docker.py ``start_docker_bed``) and the test bed's
"outside" server behind a router on the hosts' default route. A network without a gateway (the seed's
``netctl network create --subnet 10.103.1.0/24 test-net``): the container reaches its own host, the other
host and the outside server, which sees the host's address; names still resolve (DNS punt).
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.testbed import OUTSIDE_IP, wait_for

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.docker]


@pytest.fixture(scope="module")
def dbed():
    from tests.fixtures.docker import start_docker_bed

    b = start_docker_bed(2)
    try:
        b.bed.add_outside()
        yield b
    finally:
        b.close()


def wget(d, name: str, url: str, budget: float = 12.0) -> str | None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        r = d.docker_rc("exec", name, "timeout", "3", "wget", "-q", "-O", "-", url, timeout=10)
        if r.returncode == 0:
            return r.stdout.strip()
        time.sleep(0.3)
    return None


def test_docker_container_reaches_host_and_outside(dbed):
    bed, d1, d2 = dbed.bed, dbed.dockers[1], dbed.dockers[2]
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.netctl("network", "create", "--subnet", "10.103.1.0/24", "test-net")
    for d in (d1, d2):
        wait_for(lambda d=d: "test-net" in d.networks(), 20, 0.2, what="docker network test-net")
    d1.run("tnphbox1", "test-net")
    d2.run("tnphbox2", "test-net")
    assert d1.ping("tnphbox1", h1.ip) and d1.ping("tnphbox1", h2.ip)
    assert wget(d1, "tnphbox1", f"http://{OUTSIDE_IP}/cgi-bin/ip") == h1.ip
    assert wget(d2, "tnphbox2", f"http://{OUTSIDE_IP}/cgi-bin/ip") == h2.ip
    # the name of the container on the other host still resolves and answers
    assert d1.ping("tnphbox1", "tnphbox2", budget=15)
