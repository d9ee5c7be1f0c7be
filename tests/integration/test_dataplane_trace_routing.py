"""``netctl trace`` in routing mode (vxlan + ``--fwdmode routing``) on the real two-host test bed.

Every packet goes to the router MAC and is routed by the ``ip`` table (7): a /32 per endpoint, output
port locally, tun_id + VTEP remotely (docs/ovs-pipeline.md "Routing mode"). The trace must show that
table by name and the same final actions as in bridge mode, across networks of one tenant too.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.testbed import wait_for
from tests.integration.test_dataplane_basic import make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

ROUTER_MAC = "00:00:11:11:11:11"


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.netctl("global", "set", "--fwd-mode", "routing")
        b.start_all("--netmode", "vxlan", "--fwdmode", "routing")
        yield b


def trace(bed, host, *args: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, "trace", "--json",
         "--agent", host.debug_url, *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)


def test_trace_routed_local_and_remote(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("trr1", "10.132.1.0/24", gateway="10.132.1.254")
    bed.create_network("trr2", "10.132.2.0/24", gateway="10.132.2.254")
    ia, a = make_ep(h1, "trr1", "trra")
    ib, b = make_ep(h1, "trr2", "trrb")
    ic, c = make_ep(h2, "trr1", "trrc")
    wait_for(lambda: any(ic["ip_address"] in f for f in h1.flows() if f.startswith("table=7,")), 10)
    # local, across networks of one tenant: routed by the ip table to b's port
    res = trace(bed, h1, "--proto", "tcp", "--port", "7000", "trra", ib["ip_address"])
    assert res["destination"]["mac"] == ROUTER_MAC
    names = [s["tableName"] for s in res["steps"]]
    assert "ip" in names and names[-1] in ("ip", "mac_dest")
    assert res["final"]["kind"] == "output" and res["final"]["port"] == ib["ovs_port"]
    assert a.tcp_ok(b, port=7000)
    # remote: the ip table's /32 sends it through the tunnel to h2
    res = trace(bed, h1, "trra", ic["ip_address"])
    assert res["final"]["kind"] == "tunnel" and res["final"]["vtep"] == h2.ip
    assert any(s["tableName"] == "ip" and s["owner"].startswith("rep:") for s in res["steps"])
    assert a.ping(c.ip)
