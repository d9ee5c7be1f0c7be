"""The seed path with netmaster --tls-auto --auth: two hosts (netns + OVS), real etcd, real netplugins.

netplugin gets no new flag: it finds the leader's certificate pin and the agent token in etcd and makes
its /plugin/* calls (allocAddress, createEndpoint) over https. The operator logs in with netctl and
creates the network; the endpoints on both hosts then ping each other.
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.request

import pytest

from tests.fixtures.testbed import CTRL_IP, free_port, wait_for
from tests.integration.test_dataplane_basic import make_ep
from tests.support.netctl_fakeserver import run_inprocess

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

PW = "seed-admin-pw"


def test_seed_with_https_and_auth(tmp_path):
    from tests.fixtures.testbed import Testbed

    (tmp_path / "pw").write_text(PW)
    with Testbed(2, netmaster=False) as bed:
        port = free_port(CTRL_IP)
        args = [*bed.netmaster_args(port), "--tls-auto", "--tls-dir", str(tmp_path / "tls")]
        args += ["--auth", "--auth-admin-password-file", str(tmp_path / "pw")]
        bed.netmaster_url = url = f"https://{CTRL_IP}:{port}"
        bed.netmaster_proc = bed._popen("netmaster", [sys.executable, "-m", "contivpy.netmaster", *args])
        ctx = ssl._create_unverified_context()

        def up():
            assert bed.netmaster_proc.poll() is None, (bed.dir / "netmaster.log").read_text()[-2000:]
            try:
                return urllib.request.urlopen(url + "/version", timeout=1, context=ctx).status == 200
            except OSError:
                return False

        wait_for(up, 30, 0.1, "netmaster over https")
        bed.assert_global_config()
        env = {"HOME": str(tmp_path), "NETMASTER": None, "INSECURE": None}

        def netctl(*argv):
            return run_inprocess(["--netmaster", url, "--insecure", *argv], env=env)

        wait_for(lambda: netctl("login", "-u", "admin", "-p", PW)[0] == 0, 20, 0.2, "login")
        # without a token the API is closed, also for plain requests to the same port
        code, _, err = run_inprocess(
            ["--netmaster", url, "--insecure", "network", "ls"], env=dict(env, HOME="/")
        )
        assert code == 3 and "Unauthorized" in err
        bed.start_all()
        assert netctl("network", "create", "--subnet", "10.103.1.0/24", "test-net")[:2] == (
            0,
            "Creating network default:test-net\n",
        )
        # endpoints: netplugin -> netmaster /plugin/allocAddress + createEndpoint over https, agent token
        i1, c1 = make_ep(bed.hosts[1], "test-net", "ep1")
        i2, c2 = make_ep(bed.hosts[2], "test-net", "ep2")
        assert i1["ip_address"] != i2["ip_address"]
        assert c1.ping(c2.ip) and c2.ping(c1.ip)
        code, out, _ = netctl("network", "inspect", "test-net")
        assert code == 0 and json.loads(out)["Oper"]["numEndpoints"] == 2
