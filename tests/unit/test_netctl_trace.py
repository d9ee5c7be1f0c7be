"""``netctl trace`` argument checks (exit 1 + help, before any request) and its text rendering.

The requests themselves (netmaster inspect, the agent's ``/debug/trace``) run against the real test bed
in tests/integration/test_dataplane_trace.py.
"""

from __future__ import annotations

import pytest

from contivpy.netctl.commands_trace import render
from tests.support.netctl_fakeserver import run_inprocess

NOWHERE = "http://127.0.0.1:1"  # nothing listens: any request would fail with exit 2


@pytest.mark.parametrize(
    "args,msg",
    [
        (["ep1"], "Source endpoint and destination IP address required"),
        (["ep1", "10.1.1.2", "extra"], "Source endpoint and destination IP address required"),
        (["ep1", "10.1.1"], "Invalid destination IP address '10.1.1' (want an IPv4 address)"),
        (["ep1", "fe80::1"], "Invalid destination IP address"),
        (["--proto", "sctp", "ep1", "10.1.1.2"], "Invalid protocol 'sctp' (want tcp, udp or icmp)"),
        (["--proto", "udp", "ep1", "10.1.1.2"], "--proto udp needs --port 1-65535"),
        (["--proto", "tcp", "--port", "70000", "ep1", "10.1.1.2"], "--proto tcp needs --port 1-65535"),
        (["--port", "80", "ep1", "10.1.1.2"], "A port needs --proto tcp or udp"),
        (["--agent", "127.0.0.1:9090", "ep1", "10.1.1.2"], "write it as --agent http://HOST:9090"),
    ],
)
def test_bad_arguments_exit_1_with_help_and_no_request(tmp_path, args, msg):
    code, out, err = run_inprocess(["--netmaster", NOWHERE, "trace", *args], env={"HOME": str(tmp_path)})
    assert code == 1 and msg in err and "Traceback" not in err
    assert "netctl trace [command options] [endpoint] [destination-ip]" in out  # the command's help


def test_unreachable_netmaster_is_exit_2(tmp_path):
    code, _, err = run_inprocess(
        ["--netmaster", NOWHERE, "trace", "ep1", "10.1.1.2"], env={"HOME": str(tmp_path)}
    )
    assert code == 2 and "connection refused" in err


def test_render_names_tables_rule_and_tunnel():
    res = {
        "host": "h1",
        "bridge": "contivVxlanBridge",
        "source": {"endpoint": "n.default-a", "ip": "10.1.1.1", "mac": "02:02:0a:01:01:01", "port": "vvport1",
                   "ofport": 3},
        "destination": {"ip": "10.1.1.3", "mac": "02:02:0a:01:01:03", "macFrom": "remote endpoint 10.1.1.3"},
        "protocol": "icmp",
        "port": 0,
        "steps": [
            {"table": 0, "tableName": "input", "priority": 1, "owner": "base", "actions": ["goto_table:1"]},
            {"table": 9, "tableName": "mac_dest", "priority": 100, "owner": "rep:10.1.1.3:default",
             "actions": ["set_field:0x1->tun_id", "pop_vlan", "output:2"]},
        ],
        "policy": {"verdict": "allow", "rule": {"id": "a:g:a:p:a:p:7:inRx", "action": "allow", "priority": 3,
                   "tenant": "a", "group": "g", "policy": "p", "ruleId": "7", "direction": "inRx"}},
        "final": {"kind": "tunnel", "port": "vxif19216821312", "ofport": 2, "vtep": "192.168.213.12", "vni": 1},
    }  # fmt: skip
    text = render(res)
    assert "0      input     1         base" in text
    assert (
        "9      mac_dest  100       rep:10.1.1.3:default  set_field:0x1->tun_id; pop_vlan; output:2" in text
    )
    assert "Policy:       allowed by rule 7 of policy a/p (group g, inRx, priority 3, action allow)" in text
    assert "Result:       tunnel to VTEP 192.168.213.12 (port vxif19216821312, VNI 1)" in text
    res["final"] = {"kind": "drop", "table": "policy"}
    res["policy"] = {
        "verdict": "deny",
        "rule": None,
        "reason": "no policy rule matched, the policy table's default",
    }
    assert "Result:       drop in table policy" in render(res)


def test_netctl_imports_nothing_of_the_agent():
    import subprocess
    import sys

    code = (
        "import sys, contivpy.netctl.app as a; a.build_app('netctl'); "
        "print(sorted(m for m in sys.modules if m.startswith(('contivpy.ofnet', 'contivpy.netplugin', "
        "'aiohttp', 'ipaddress', 'json'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
