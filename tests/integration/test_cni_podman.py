"""CNI with a real runtime: podman (CNI network backend) on both hosts of the test bed runs containers
on the contiv network through the ``contivk8s`` plugin and netplugin's CNI server.

Covers: podman containers on two hosts get contiv addresses and ping each other; a label in
``podman run --network contiv`` CNI_ARGS is not needed (defaults: tenant default, network
default-net); ``podman rm`` (CNI DEL) releases the address, the OVS port and the records.
Not covered here: a podman container next to a Docker container on one network (the Docker test bed
fixture is not combined with podman yet).
"""

from __future__ import annotations

import pytest

from tests.fixtures.podman import PodmanHost, podman_missing

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


@pytest.fixture(scope="module")
def bed():
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
