"""CNI with a real runtime: podman (CNI network backend) on both hosts of the test bed runs containers
on the contiv network through the ``contivk8s`` plugin and netplugin's CNI server.

Covers: podman containers on two hosts get contiv addresses (the defaults: tenant default, network
default-net) and ping each other; ``podman rm`` (CNI DEL) releases the address, the OVS port and the
records; a Docker container (libnetwork plugin) and podman containers on one network, on the same
host and across hosts, ping each other.
"""

from __future__ import annotations

import pytest

from tests.fixtures.podman import PodmanHost, podman_missing

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


@pytest.fixture
def bed():  # function scope: the next test's Docker bed needs the test bed's names free
    why = podman_missing()
    if why:
        pytest.skip(why)
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.start_all()
        b.create_network("default-net", "10.123.1.0/24", gateway="10.123.1.254")
        pms: list[PodmanHost] = []
        try:
            for h in b.hosts.values():
                pms.append(PodmanHost(h))
            b.podman = pms  # type: ignore[attr-defined]
            yield b
        finally:
            for p in pms:
                p.close()


def keys(bed, prefix: str) -> list[str]:
    return sorted(k for k in bed.etcdctl("get", prefix, "--prefix", "--keys-only").split() if k)


def state(bed) -> dict:
    out = {p: keys(bed, p) for p in ("/contiv.io/state/eps/", "/contiv.io/oper/eps/", "/contiv.io/oper/cni/")}
    for i, h in bed.hosts.items():
        out[f"ports{i}"] = [p for p in h.ports("contivVxlanBridge") if "vport" in p]
    return out


def test_podman_containers_on_two_hosts_ping_and_rm_releases(bed):
    p1, p2 = bed.podman
    before = state(bed)
    ip1 = p1.run("tnpkpod1")
    ip2 = p2.run("tnpkpod2")
    assert ip1.startswith("10.123.1.") and ip2.startswith("10.123.1.") and ip1 != ip2
    addr = p1.exec("tnpkpod1", "ip", "-o", "addr", "show", "dev", "eth0")
    assert f"{ip1}/24" in addr
    assert "default via 10.123.1.254" in p1.exec("tnpkpod1", "ip", "route")
    assert "1 packets received" in p1.exec("tnpkpod1", "ping", "-c", "1", "-W", "2", ip2, check=False)
    assert "1 packets received" in p2.exec("tnpkpod2", "ping", "-c", "1", "-W", "2", ip1, check=False)
    cni_keys = keys(bed, "/contiv.io/oper/cni/")
    assert len(cni_keys) == 2 and any(k.startswith("/contiv.io/oper/cni/h1/") for k in cni_keys)
    p1.podman("rm", "-f", "-t", "0", "tnpkpod1")
    p2.podman("rm", "-f", "-t", "0", "tnpkpod2")
    assert state(bed) == before


def test_podman_and_docker_containers_on_one_network(docker_bed2):
    """A Docker container (libnetwork plugin) and podman containers (CNI) on one contiv network, on the
    same host and across hosts, reach each other: both paths make the same endpoints."""
    why = podman_missing()
    if why:
        pytest.skip(why)
    from tests.fixtures.testbed import wait_for

    bed, d1 = docker_bed2.bed, docker_bed2.dockers[1]
    out = bed.netctl("network", "create", "--subnet", "10.124.1.0/24", "-g", "10.124.1.254", "default-net")
    assert "Creating network default:default-net" in out
    wait_for(lambda: "default-net" in d1.networks(), 30, what="docker network on h1")
    pms = [PodmanHost(h) for h in bed.hosts.values()]
    try:
        d1.run("tnpkdock", "default-net")
        ipd = d1.exec("tnpkdock", "ip", "-o", "-4", "addr", "show", "eth0").split()[3].split("/")[0]
        ip1 = pms[0].run("tnpkpm1")  # same host as the Docker container
        ip2 = pms[1].run("tnpkpm2")  # the other host
        assert len({ipd, ip1, ip2}) == 3 and all(ip.startswith("10.124.1.") for ip in (ipd, ip1, ip2))
        assert d1.ping("tnpkdock", ip1) and d1.ping("tnpkdock", ip2)
        for pm, name in ((pms[0], "tnpkpm1"), (pms[1], "tnpkpm2")):
            assert "1 packets received" in pm.exec(name, "ping", "-c", "1", "-W", "2", ipd, check=False)
    finally:
        for pm in pms:
            pm.close()
        d1.docker("rm", "-f", "tnpkdock", check=False)
