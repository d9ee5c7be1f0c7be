"""netctl with ``NETMASTER=http://host:port/`` (trailing slash) against a real netmaster: every
command works (the original doubled the slash; only its GETs followed the redirect, so its
creates failed). A URL without ``http://`` gets a message that says what to write.

The session below runs every leaf command of netctl's command tree once (``login`` and the
``user`` commands against a netmaster with --auth and TLS); ``test_session_covers_every_command``
keeps it that way when a command is added.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from contivpy.common.registry import ServiceInfo
from contivpy.netctl.tree import COMMANDS

pytestmark = pytest.mark.etcd

SESSION = [
    ["version"],
    ["tenant", "create", "tus"],
    ["tenant", "ls"],
    ["tenant", "inspect", "tus"],
    ["global", "set", "--arp-mode", "flood"],
    ["global", "inspect"],
    ["global", "info"],
    ["network", "create", "-t", "tus", "--subnet", "10.38.1.0/24", "--gateway", "10.38.1.254", "tus-net"],
    ["network", "ls", "-t", "tus"],
    ["network", "inspect", "-t", "tus", "tus-net"],
    ["netprofile", "create", "-t", "tus", "-b", "10Mbps", "tus-np"],
    ["netprofile", "ls", "-t", "tus"],
    ["netprofile", "inspect", "-t", "tus", "tus-np"],
    ["policy", "create", "-t", "tus", "tus-pol"],
    ["policy", "rule-add", "-t", "tus", "--direction", "in", "--protocol", "tcp", "--port", "80",
     "--action", "allow", "tus-pol", "1"],
    ["policy", "rule-ls", "-t", "tus", "tus-pol"],
    ["policy", "ls", "-t", "tus"],
    ["policy", "inspect", "-t", "tus", "tus-pol"],
    ["external-contracts", "create", "-t", "tus", "-c", "-a", "uni/tn-x/brc-y", "tus-ec"],
    ["external-contracts", "ls", "-t", "tus"],
    ["group", "create", "-t", "tus", "-p", "tus-pol", "tus-net", "tus-grp"],
    ["group", "ls", "-t", "tus"],
    ["group", "inspect", "-t", "tus", "tus-grp"],
    ["app-profile", "create", "-t", "tus", "-g", "tus-grp", "tus-app"],
    ["app-profile", "update", "-t", "tus", "-g", "tus-grp", "tus-app"],
    ["app-profile", "ls", "-t", "tus"],
    ["app-profile", "group-ls", "-t", "tus", "tus-app"],
    ["service", "create", "-t", "tus", "-s", "tus-net", "-l", "app=web", "-p", "80:8080:TCP", "tus-svc"],
    ["service", "ls", "-t", "tus"],
    ["service", "inspect", "-t", "tus", "tus-svc"],
    ["bgp", "create", "--router-ip", "192.0.2.1/24", "--as", "65001", "--neighbor-as", "65002",
     "--neighbor", "192.0.2.2", "tus-host"],
    ["bgp", "ls"],
    ["bgp", "inspect", "tus-host"],
    ["endpoint", "inspect", "no-such-ep"],
    ["trace", "no-such-ep", "10.99.1.2"],  # (its success path needs an agent: test_dataplane_trace.py)
    ["bgp", "rm", "tus-host"],
    ["service", "rm", "-t", "tus", "tus-svc"],
    ["app-profile", "rm", "-t", "tus", "tus-app"],
    ["aci-gw", "set", "-e", "yes", "-d", "tus-dom"],
    ["aci-gw", "inspect"],
    ["aci-gw", "info"],
    ["group", "rm", "-t", "tus", "tus-grp"],
    ["external-contracts", "rm", "-t", "tus", "tus-ec"],
    ["policy", "rule-rm", "-t", "tus", "tus-pol", "1"],
    ["policy", "rm", "-t", "tus", "tus-pol"],
    ["netprofile", "rm", "-t", "tus", "tus-np"],
    ["network", "rm", "-t", "tus", "tus-net"],
    ["tenant", "rm", "tus"],
]  # fmt: skip
# Commands whose answer is an error by design in this session (the endpoint does not exist).
EXPECTED_ERRORS = {("endpoint", "inspect"), ("trace",)}
AUTH_SESSION = [
    ["login", "-u", "admin", "-p", "tus-admin-pw"],
    ["user", "create", "-r", "ops", "-p", "tus-ops-pw1", "tus-ops"],
    ["user", "ls"],
    ["user", "inspect", "tus-ops"],
    ["user", "grant", "tus-ops", "default"],
    ["user", "revoke", "tus-ops", "default"],
    ["user", "role", "tus-ops", "admin"],
    ["user", "passwd", "-p", "tus-ops-pw2", "tus-ops"],
    ["user", "rm", "tus-ops"],
]


def leaf_commands() -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()

    def walk(cmds, prefix):
        for c in cmds:
            if c.subcommands:
                walk(c.subcommands, (*prefix, c.name))
            else:
                out.add((*prefix, c.name))

    walk(COMMANDS, ())
    return out


def command_of(argv: list[str], leaves: set[tuple[str, ...]]) -> tuple[str, ...]:
    for n in (2, 1):
        if tuple(argv[:n]) in leaves:
            return tuple(argv[:n])
    raise AssertionError(f"{argv} is no netctl command")


def netctl(url: str, *args: str, home=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NETMASTER"}
    env["NETMASTER"] = url
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_session_covers_every_command():
    leaves = leaf_commands()
    covered = {command_of(a, leaves) for a in SESSION + AUTH_SESSION}
    assert covered == leaves, sorted(leaves - covered)


def test_every_command_with_a_trailing_slash(netmaster, etcd_server, tmp_path):
    leaves = leaf_commands()
    # bgp create needs a host that runs a netplugin: its service registration, as an agent writes it
    reg = ServiceInfo("netplugin", "127.0.0.9", 9002, hostname="tus-host")
    etcd_server.etcdctl("put", reg.key, reg.to_json())
    for slash in ("/", "//"):
        url = netmaster.url + slash
        for argv in SESSION:
            r = netctl(url, *argv, home=tmp_path)
            if command_of(argv, leaves) in EXPECTED_ERRORS:
                assert "//" not in r.stderr.replace("http://", ""), r.stderr
                continue
            assert r.returncode == 0, (url, argv, r.stdout, r.stderr)
            assert "Page not found" not in r.stdout + r.stderr and "301" not in r.stderr, (argv, r.stderr)
    # same answers with and without the slash
    netctl(netmaster.url, "tenant", "create", "tus2")
    for argv in (["tenant", "ls"], ["global", "inspect"], ["version"]):
        a, b = netctl(netmaster.url, *argv, home=tmp_path), netctl(netmaster.url + "/", *argv, home=tmp_path)
        assert (a.returncode, a.stdout) == (b.returncode, b.stdout), argv


def test_login_and_user_commands_with_a_trailing_slash(netmaster_factory, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("tus-admin-pw\n")
    nm = netmaster_factory(
        args=[
            "--tls-auto",
            "--tls-dir",
            str(tmp_path / "tls"),
            "--auth",
            "--auth-admin-password-file",
            str(pw),
        ]
    )
    home = tmp_path / "home"
    home.mkdir()
    for argv in AUTH_SESSION:
        r = netctl(nm.url + "/", "--insecure", *argv, home=home)
        assert r.returncode == 0, (argv, r.stdout, r.stderr)


@pytest.mark.parametrize(
    "url,hint",
    [
        ("127.0.0.1:9999", "write it as --netmaster http://127.0.0.1:9999"),
        ("netmaster:9999/", "write it as --netmaster http://netmaster:9999"),
        ("ftp://h:1", "(unsupported scheme ftp://); write it as --netmaster http://h:1"),
    ],
)
def test_url_without_scheme_says_what_to_write(url, hint, tmp_path):
    for argv in (["network", "ls"], ["network", "create", "-s", "10.39.1.0/24", "n"], ["version"]):
        r = netctl(url, *argv, home=tmp_path)
        assert r.returncode == 1, r
        assert r.stdout == ""
        line = r.stderr
        assert line.count("\n") == 1 and "level=error" in line
        assert 'msg="Error connecting to netmaster: ' in line and hint in line, line
        assert "Traceback" not in line
