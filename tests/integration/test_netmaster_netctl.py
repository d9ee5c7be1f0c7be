"""netctl against a real netmaster process: the seed session of transcript §4.2, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.etcd


def netctl(nm, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", nm.url, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ),
    )


def test_seed_session(netmaster):
    r = netctl(netmaster, "network", "create", "--subnet", "10.103.1.0/24", "test-net")
    assert (r.returncode, r.stdout) == (0, "Creating network default:test-net\n"), r.stderr
    r = netctl(netmaster, "network", "ls")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "Tenant   Network   Nw Type  Encap type  Packet tag  Subnet         Gateway  IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------   -------   -------  ----------  ----------  -------        ------   ----------  -----------  ---------\n"
        "default  test-net  data     vxlan       0           10.103.1.0/24                                    \n"
    )
    r = netctl(netmaster, "tenant", "create", "t1")
    assert r.stdout == "Creating tenant: t1\n"
    r = netctl(
        netmaster,
        "network",
        "create",
        "-t",
        "t1",
        "--encap",
        "vlan",
        "--pkt-tag",
        "100",
        "--subnet",
        "20.1.1.0/24",
        "--gateway",
        "20.1.1.254",
        "n2",
    )
    assert r.stdout == "Creating network t1:n2\n", r.stderr
    r = netctl(netmaster, "policy", "create", "p1")
    assert r.stdout == "Creating policy default:p1\n"
    r = netctl(
        netmaster,
        "policy",
        "rule-add",
        "p1",
        "1",
        "--direction",
        "in",
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--action",
        "allow",
    )
    assert r.returncode == 0, r.stderr
    r = netctl(netmaster, "tenant", "rm", "t1")
    assert r.returncode == 3 and 'msg="cannot delete t1 has 1 networks' in r.stderr
    r = netctl(netmaster, "global", "info")
    assert r.stdout == (
        "Fabric mode: default\nForward mode: bridge\nARP mode: proxy\nVlan Range: 1-4094\n"
        "Vxlan range: 1-10000\nPrivate subnet: 172.19.0.0/16\n"
    )
