"""Transcript 4.2 (basic netctl session) replayed through netctl and a REAL netmaster on a real etcd.

Every step compares stdout, stderr (timestamp normalised) and the exit status with the
original's verbatim output. Differences caused by the run mode are normalised explicitly:
the fixture runs netmaster in ``--mode test`` (the transcript used docker mode), so
``clusterMode`` reads "test"; the server version block is whatever our netmaster reports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.launcher import is_launcher
from tests.support.netctl_fakeserver import run_inprocess

pytestmark = pytest.mark.etcd

TS = re.compile(r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')

NET_HDR = "Tenant{a}Network{b}Nw Type  Encap type  Packet tag  Subnet{c}Gateway{d}IPv6Subnet  IPv6Gateway  Cfgd Tag \n"

# (argv, stdout, stderr, exit) - verbatim from docs/original.md R4.2
SESSION = [
    (
        ["network", "create", "--subnet", "10.103.1.0/24", "test-net"],
        "Creating network default:test-net\n",
        "",
        0,
    ),
    (
        ["network", "ls"],
        "Tenant   Network   Nw Type  Encap type  Packet tag  Subnet         Gateway  IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------   -------   -------  ----------  ----------  -------        ------   ----------  -----------  ---------\n"
        "default  test-net  data     vxlan       0           10.103.1.0/24                                    \n",
        "",
        0,
    ),
    (
        ["network", "ls", "--json"],
        '[\n  {\n    "key": "default:test-net",\n    "encap": "vxlan",\n    "networkName": "test-net",\n'
        '    "nwType": "data",\n    "subnet": "10.103.1.0/24",\n    "tenantName": "default",\n'
        '    "link-sets": {},\n    "links": {\n      "Tenant": {\n        "type": "tenant",\n'
        '        "key": "default"\n      }\n    }\n  }\n]\n',
        "",
        0,
    ),
    (
        ["network", "inspect", "test-net"],
        '{\n  "Config": {\n    "key": "default:test-net",\n    "encap": "vxlan",\n    "networkName": "test-net",\n'
        '    "nwType": "data",\n    "subnet": "10.103.1.0/24",\n    "tenantName": "default",\n'
        '    "link-sets": {},\n    "links": {\n      "Tenant": {\n        "type": "tenant",\n'
        '        "key": "default"\n      }\n    }\n  },\n  "Oper": {\n'
        '    "availableIPAddresses": "10.103.1.1-10.103.1.254",\n    "externalPktTag": 1,\n'
        '    "networkTag": "test-net.default",\n    "pktTag": 1\n  }\n}\n',
        "",
        0,
    ),
    (["tenant", "create", "t1"], "Creating tenant: t1\n", "", 0),
    (["tenant", "ls"], "Name     \n------   \ndefault  \nt1       \n", "", 0),
    (
        [
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
        ],
        "Creating network t1:n2\n",
        "",
        0,
    ),
    (
        ["network", "ls", "-t", "t1"],
        "Tenant  Network  Nw Type  Encap type  Packet tag  Subnet       Gateway     IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------  -------  -------  ----------  ----------  -------      ------      ----------  -----------  ---------\n"
        "t1      n2       data     vlan        100         20.1.1.0/24  20.1.1.254                           \n",
        "",
        0,
    ),
    (["group", "create", "test-net", "web"], "Creating EndpointGroup default:web\n", "", 0),
    (
        ["group", "ls"],
        "Tenant   Group  Network   IP Pool  CfgdTag  Policies  Network profile\n"
        "------   -----  -------   -------  -------  --------  ---------------\n"
        "default  web    test-net                              \n",
        "",
        0,
    ),
    (
        ["group", "ls", "--json"],
        '[\n  {\n    "key": "default:web",\n    "groupName": "web",\n    "networkName": "test-net",\n'
        '    "tenantName": "default",\n    "link-sets": {},\n    "links": {\n      "AppProfile": {},\n'
        '      "NetProfile": {},\n      "Network": {\n        "type": "network",\n'
        '        "key": "default:test-net"\n      },\n      "Tenant": {\n        "type": "tenant",\n'
        '        "key": "default"\n      }\n    }\n  }\n]\n',
        "",
        0,
    ),
    (
        ["group", "inspect", "test-net", "web"],
        "NAME:\n   netctl group inspect - Inspect a EndpointGroup\n\nUSAGE:\n"
        "   netctl group inspect [command options] [group]\n\nOPTIONS:\n"
        '   --tenant, -t "default"\tName of the tenant\n   \n',
        'time="T" level=error msg="EndpointGroup name required" \n',
        1,
    ),
    (["policy", "create", "p1"], "Creating policy default:p1\n", "", 0),
    (
        [
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
        ],
        "",
        "",
        0,
    ),
    (
        ["policy", "rule-ls", "p1"],
        "Incoming Rules:\n"
        "Rule  Priority  From EndpointGroup  From Network  From IpAddress  To IpAddress  Protocol  Port  Action\n"
        "----  --------  ------------------  ------------  ---------       ------------  --------  ----  ------\n"
        "1     1                                                                         tcp       80    allow\n"
        "Outgoing Rules:\n"
        "Rule  Priority  To EndpointGroup  To Network  To IpAddress  Protocol  Port  Action\n"
        "----  --------  ----------------  ----------  ---------     --------  ----  ------\n",
        "",
        0,
    ),
    (["policy", "ls"], "Tenant   Policy\n------   ------\ndefault  p1\n", "", 0),
    (
        ["policy", "inspect", "p1"],
        '{\n  "Config": {\n    "key": "default:p1",\n    "policyName": "p1",\n    "tenantName": "default",\n'
        '    "link-sets": {\n      "Rules": {\n        "default:p1:1": {\n          "type": "rule",\n'
        '          "key": "default:p1:1"\n        }\n      }\n    },\n    "links": {\n      "Tenant": {\n'
        '        "type": "tenant",\n        "key": "default"\n      }\n    }\n  },\n  "Oper": {}\n}\n',
        "",
        0,
    ),
    (
        ["global", "info"],
        "Fabric mode: default\nForward mode: bridge\nARP mode: proxy\nVlan Range: 1-4094\n"
        "Vxlan range: 1-10000\nPrivate subnet: 172.19.0.0/16\n",
        "",
        0,
    ),
    (
        ["global", "inspect"],
        '{\n  "Config": {\n    "key": "global",\n    "arpMode": "proxy",\n    "fwdMode": "bridge",\n'
        '    "name": "global",\n    "networkInfraType": "default",\n    "pvtSubnet": "172.19.0.0/16",\n'
        '    "vlans": "1-4094",\n    "vxlans": "1-10000"\n  },\n  "Oper": {\n    "clusterMode": "test",\n'
        '    "numNetworks": 2,\n    "vlansInUse": "100",\n    "vxlansInUse": "1"\n  }\n}\n',
        "",
        0,
    ),
    (
        ["global", "set", "--fwd-mode", "routing"],
        "",
        'time="T" level=error msg="Unable to update forwarding mode due to existing 1 vlans and 1 vxlans\n" \n',
        3,
    ),
    (
        ["group", "inspect", "web"],
        '{\n  "Config": {\n    "key": "default:web",\n    "groupName": "web",\n    "networkName": "test-net",\n'
        '    "tenantName": "default",\n    "link-sets": {},\n    "links": {\n      "AppProfile": {},\n'
        '      "NetProfile": {},\n      "Network": {\n        "type": "network",\n'
        '        "key": "default:test-net"\n      },\n      "Tenant": {\n        "type": "tenant",\n'
        '        "key": "default"\n      }\n    }\n  },\n  "Oper": {\n    "externalPktTag": 1,\n'
        '    "groupTag": "web.default",\n    "pktTag": 1\n  }\n}\n',
        "",
        0,
    ),
    (
        ["network", "inspect", "-t", "t1", "n2"],
        '{\n  "Config": {\n    "key": "t1:n2",\n    "encap": "vlan",\n    "gateway": "20.1.1.254",\n'
        '    "networkName": "n2",\n    "nwType": "data",\n    "pktTag": 100,\n    "subnet": "20.1.1.0/24",\n'
        '    "tenantName": "t1",\n    "link-sets": {},\n    "links": {\n      "Tenant": {\n'
        '        "type": "tenant",\n        "key": "t1"\n      }\n    }\n  },\n  "Oper": {\n'
        '    "allocatedIPAddresses": "20.1.1.254",\n    "availableIPAddresses": "20.1.1.1-20.1.1.253",\n'
        '    "networkTag": "n2.t1",\n    "pktTag": 100\n  }\n}\n',
        "",
        0,
    ),
    (
        ["policy", "rule-ls", "p1", "--json"],
        '[\n  {\n    "key": "default:p1:1",\n    "action": "allow",\n    "direction": "in",\n'
        '    "policyName": "p1",\n    "port": 80,\n    "priority": 1,\n    "protocol": "tcp",\n'
        '    "ruleId": "1",\n    "tenantName": "default",\n    "link-sets": {\n      "Policies": {\n'
        '        "default:p1": {\n          "type": "policy",\n          "key": "default:p1"\n        }\n'
        '      }\n    },\n    "links": {\n      "MatchEndpointGroup": {}\n    }\n  }\n]\n',
        "",
        0,
    ),
    (
        ["global", "inspect", "--json"],
        "Incorrect Usage.\n\nNAME:\n   netctl global inspect - Inspect Global Operational Information\n\n"
        "USAGE:\n   netctl global inspect  \n",
        "netctl global inspect: flag provided but not defined: -json; see 'netctl global inspect --help'\n",
        2,  # the original exited 0 (docs/decisions.md)
    ),
    # tear-down part of transcript 4.8
    (["network", "rm", "-t", "t1", "n2"], "Deleting network t1:n2\n", "", 0),
    (["policy", "rule-rm", "p1", "1"], "", "", 0),
]


def _run(url: str, home: str, argv: list[str]):
    code, out, err = run_inprocess(["--netmaster", url, *argv], env={"HOME": home, "NETMASTER": None})
    return out, TS.sub('time="T"', err), code


def test_transcript_4_2_session_against_real_netmaster(netmaster, tmp_path):
    failures = []
    for argv, out, err, code in SESSION:
        got = _run(netmaster.url, str(tmp_path), argv)
        if got != (out, err, code):
            failures.append(f"$ netctl {' '.join(argv)}\n  want {(out, err, code)!r}\n  got  {got!r}")
    assert not failures, "\n".join(failures)


def test_version_and_unreachable_netmaster(netmaster, tmp_path):
    out, err, code = _run(netmaster.url, str(tmp_path), ["version"])
    assert (err, code) == ("", 0)
    lines = out.split("\n")
    assert lines[0] == "Client Version:" and lines[4] == "" and lines[5] == "Server Version:"
    assert [ln.split(":")[0] for ln in lines[6:9]] == ["Version", "GitCommit", "BuildTime"]
    port = netmaster.port
    netmaster.stop()
    out, err, code = _run(f"http://127.0.0.1:{port}", str(tmp_path), ["network", "ls"])
    assert (out, code) == ("", 2)
    assert err == (
        f'time="T" level=error msg="Get "http://127.0.0.1:{port}/api/v1/tenants/default/": '
        f'dial tcp 127.0.0.1:{port}: connect: connection refused" \n'
    )


def test_console_entry_point_against_real_netmaster(netmaster, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", netmaster.url, "tenant", "ls"],
        capture_output=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"Name     \n------   \ndefault  \n", b"")


def test_installed_launcher_against_real_netmaster(netmaster, tmp_path):
    """The installed ``netctl`` is the launcher (bin/netctl, #!/bin/sh or pinned to the venv's
    interpreter) that starts Python with -S; it must behave exactly like the module entry point,
    without the environment's site hooks."""
    script = Path(sys.executable).with_name("netctl")
    assert is_launcher(script), "netctl is not the bin/netctl launcher"
    proc = subprocess.run(
        [str(script), "--netmaster", netmaster.url, "tenant", "ls"],
        capture_output=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"Name     \n------   \ndefault  \n", b"")
