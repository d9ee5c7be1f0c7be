"""netctl argument parsing, help texts, usage errors and exit codes (no server needed unless noted)."""

import re
import subprocess
import sys

import pytest

from contivpy.netctl import app as netctl_app
from contivpy.netctl.cli import FlagSet, UsageError, parse_go_int
from contivpy.netctl.tree import TENANT, Flag
from tests.support.netctl_fakeserver import ReplayServer, run_inprocess

TS = re.compile(r'time="[^"]*"')
DEAD = "http://127.0.0.1:9"  # nothing listens there: commands that reach the network fail with exit 2


def netctl(*args, home="/nonexistent-tct-home"):
    code, out, err = run_inprocess(["--netmaster", DEAD, *args], env={"HOME": home, "NETMASTER": None})
    return code, out, TS.sub('time="T"', err)


GROUP_INSPECT_HELP = (
    "NAME:\n   netctl group inspect - Inspect a EndpointGroup\n\nUSAGE:\n"
    "   netctl group inspect [command options] [group]\n\nOPTIONS:\n"
    '   --tenant, -t "default"\tName of the tenant\n   \n'
)


def test_usage_error_prints_help_on_stdout_and_error_on_stderr_transcript_4_2():
    assert netctl("group", "inspect", "test-net", "web") == (
        1,
        GROUP_INSPECT_HELP,
        'time="T" level=error msg="EndpointGroup name required" \n',
    )


def test_unknown_flag_is_incorrect_usage_transcript_4_2_then_hint_and_exit_2():
    # stdout as in the original (transcript 4.2); the hint line and exit 2 are contivpy's
    # (the original exited 0; docs/decisions.md)
    assert netctl("global", "inspect", "--json") == (
        2,
        "Incorrect Usage.\n\nNAME:\n   netctl global inspect - Inspect Global Operational Information\n\n"
        "USAGE:\n   netctl global inspect  \n",
        "netctl global inspect: flag provided but not defined: -json; see 'netctl global inspect --help'\n",
    )


@pytest.mark.parametrize(
    "args,msg",
    [
        (["network", "create", "n1"], "Subnet is required"),
        (["network", "create", "-s", "10.1.1.0/24"], "Network name required"),
        (["network", "create", "-s", "10.1.1.0/24", "a", "b"], "Network name required"),
        (
            ["network", "create", "-s", "10.1.1.0/24", "-g", "10.1.1", "n"],
            "Invalid gateway - Enter in A.B.C.D format",
        ),
        (["network", "create", "-s", "10.1.1.0/24", "--g6", "zz", "n"], "Invalid IPv6 gateway "),
        (["network", "ls", "extra"], "More arguments than required"),
        (["network", "inspect"], "Network name required"),
        (["network", "rm"], "Network name required"),
        (["tenant", "create"], "Tenant name required"),
        (["tenant", "ls", "x"], "More arguments than required"),
        (["group", "create", "net"], "Network and group name required"),
        (["group", "rm"], "EndpointGroup name required"),
        (["policy", "create"], "Policy name required"),
        (["policy", "rule-add", "p1"], "Policy name and Rule ID required"),
        (["policy", "rule-rm", "p1"], "Policy name and Rule ID required"),
        (["policy", "rule-ls"], "Policy name required"),
        (["netprofile", "create"], "Net profile name required"),
        (["bgp", "create"], "Host name required"),
        (["bgp", "create", "h1", "--router-ip", "1.2.3.4"], "Wrong CIDR format. Enter in x.x.x.x/len format"),
        (["bgp", "create", "h1", "--router-ip", "1.2.3.4/24"], "Wrong IP format. Enter in x.x.x.x format"),
        (["bgp", "create", "h1", "--router-ip", "1.2.3.4/24", "--neighbor", "1.2.3.5"], "Missing attributes"),
        (["service", "create"], "Service name required"),
        (["app-profile", "create"], "Profile name required"),
        (["endpoint", "inspect"], "Endpoint name required"),
        (["global", "info", "x"], "More arguments than required"),
        (["version", "x"], "More arguments than required"),
    ],
)
def test_usage_errors_exit_1_with_help(args, msg):
    code, out, err = netctl(*args)
    assert code == 1
    assert err == f'time="T" level=error msg="{msg}" \n'
    assert out.startswith("NAME:\n   netctl ")


@pytest.mark.parametrize(
    "args,msg",
    [
        (["policy", "rule-add", "p", "1", "-e", "g"], "Cant specify to-group for incoming rule"),
        (["policy", "rule-add", "p", "1", "-o", "n"], "Cant specify to-network for incoming rule"),
        (
            ["policy", "rule-add", "p", "1", "-g", "a", "-n", "b"],
            "Can't specify both from-group argument and -from-network ",
        ),
        (
            ["policy", "rule-add", "p", "1", "-d", "out", "-g", "a"],
            "Cant specify from-group for outgoing rule",
        ),
        (
            ["policy", "rule-add", "p", "1", "-d", "out", "-n", "a"],
            "Cant specify from-network for outgoing rule",
        ),
        (
            ["policy", "rule-add", "p", "1", "-d", "out", "-i", "1.1.1.1"],
            "Cant specify from-ip-address for outgoing rule",
        ),
        (
            ["policy", "rule-add", "p", "1", "-d", "out", "-e", "a", "-o", "b"],
            "Can't specify both -to-group and -to-network",
        ),
        (["policy", "rule-add", "p", "1", "-direction=sideways"], "Unknown direction"),
        (["external-contracts", "create", "c1", "-a", "x"], "Either provided or consumed must be specified"),
        (["external-contracts", "create", "c1", "-p", "-c"], "Cannot use both provided and consumed"),
        (["external-contracts", "create", "c1", "-p"], "Contracts not provided"),
    ],
)
def test_client_side_checks_exit_1_without_help(args, msg):
    assert netctl(*args) == (1, "", f'time="T" level=error msg="{msg}" \n')


def test_message_with_only_safe_characters_is_not_quoted():
    from contivpy.netctl.output import format_error_line

    assert format_error_line("Unknown", now=0) == 'time="1970-01-01T00:00:00Z" level=error msg=Unknown \n'
    assert format_error_line("x y", tty=True) == "\x1b[31mERRO\x1b[0m[0000] x y" + " " * 41 + " \n"


@pytest.mark.parametrize(
    "argv",
    [
        ["network", "create", "-subnet", "10.1.1.0/24", "n1"],
        ["network", "create", "--subnet=10.1.1.0/24", "n1"],
        ["network", "create", "-s", "10.1.1.0/24", "n1"],
        ["network", "create", "n1", "-s", "10.1.1.0/24"],
        ["network", "create", "n1", "-subnet=10.1.1.0/24", "-t", "default"],
        ["net", "create", "--", "n1"],
    ],
)
def test_flag_spellings_and_options_after_positionals(argv, tmp_path):
    body = (
        b'{"encap":"vxlan","networkName":"n1","nwType":"data","subnet":"10.1.1.0/24","tenantName":"default",'
        b'"link-sets":{},"links":{"Tenant":{}}}'
    )
    with ReplayServer({("POST", "/api/v1/networks/default:n1/"): (200, "{}")}) as srv:
        if argv[-1] == "n1" and argv[2] == "--":
            argv = ["net", "create", "-s", "10.1.1.0/24", "--", "n1"]
        code, out, err = run_inprocess(["--netmaster", srv.url, *argv], env={"HOME": str(tmp_path)})
        assert (code, out, err) == (0, "Creating network default:n1\n", "")
        assert srv.requests[0][3] == body


def test_rule_add_single_dash_long_forms(tmp_path):
    with ReplayServer({("POST", "/api/v1/rules/t:web-policy:3/"): (200, "{}")}) as srv:
        argv = ["policy", "rule-add", "-t", "t", "-direction=out", "-protocol=tcp", "-priority=7"]
        argv += ["-to-group=db", "-P", "0x50", "-action", "deny", "web-policy", "3"]
        code, out, err = run_inprocess(["--netmaster", srv.url, *argv], env={"HOME": str(tmp_path)})
        assert (code, out, err) == (0, "", "")
        assert srv.requests[0][3] == (
            b'{"action":"deny","direction":"out","policyName":"web-policy","port":80,"priority":7,'
            b'"protocol":"tcp","ruleId":"3","tenantName":"t","toEndpointGroup":"db","link-sets":{},'
            b'"links":{"MatchEndpointGroup":{}}}'
        )


def test_two_forms_of_one_flag():
    code, out, err = netctl("network", "create", "-t", "a", "--tenant", "b", "x")
    assert (code, err) == (
        2,
        "netctl network create: Cannot use two forms of the same flag: t tenant; "
        "see 'netctl network create --help'\n",
    )
    assert out.startswith(
        "Cannot use two forms of the same flag: t tenant\n\nNAME:\n   netctl network create"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["network", "create", "-p", "abc", "n"],  # bad int
        ["network", "create", "-s"],  # missing value
        ["network", "ls", "-a=maybe"],  # bad bool
        ["network", "ls", "---x"],  # bad syntax
    ],
)
def test_parse_errors_are_incorrect_usage(argv):
    code, out, err = netctl(*argv)
    assert code == 2
    assert err.startswith(f"netctl network {argv[1]}: ") and err.count("\n") == 1
    assert err.endswith(f"; see 'netctl network {argv[1]} --help'\n")
    assert out.startswith(f"Incorrect Usage.\n\nNAME:\n   netctl network {argv[1]} - ")


def test_help_texts():
    code, out, _ = netctl("network")
    assert code == 0
    assert out == (
        "NAME:\n   netctl network - Network manipulation tools\n\nUSAGE:\n"
        "   netctl network command [command options] [arguments...]\n\nCOMMANDS:\n"
        "   ls, list\tList networks\n   inspect\tInspect a Network\n   rm, delete\tDelete a network\n"
        "   create\tCreate a network\n   help, h\tShows a list of commands or help for one command\n   \n"
        "OPTIONS:\n   --help, -h\tshow help\n   \n"
    )
    assert netctl("network", "--help")[1] == out
    assert netctl("network", "help", "inspect")[1] == netctl("network", "inspect", "-h")[1]
    assert netctl("network", "inspect", "-h")[1] == (
        "NAME:\n   netctl network inspect - Inspect a Network\n\nUSAGE:\n"
        "   netctl network inspect [command options] [network]\n\nOPTIONS:\n"
        '   --tenant, -t "default"\tName of the tenant\n   \n'
    )
    top = netctl()[1]
    assert top.startswith("NAME:\n   netctl - A command line client for Contiv netplugin\n\nUSAGE:\n")
    assert "   network, net\t\tNetwork manipulation tools\n" in top
    assert '   --netmaster "http://netmaster:9999"\tThe hostname of the netmaster [$NETMASTER]\n' in top
    assert netctl("-h")[1] == top == netctl("help")[1]
    assert netctl("help", "nosuch") == (0, "No help topic for 'nosuch'\n", "")  # asking for help
    assert netctl("nosuch") == (
        2,
        "No help topic for 'nosuch'\n",
        "netctl: unknown command 'nosuch'; see 'netctl --help'\n",
    )
    assert netctl("network", "nosuch") == (
        2,
        "No help topic for 'nosuch'\n",
        "netctl network: unknown command 'nosuch'; see 'netctl network --help'\n",
    )
    code, out, err = netctl("--bogus")
    assert out.startswith("Incorrect Usage.\n\nNAME:\n   netctl - ")
    assert (code, err) == (2, "netctl: flag provided but not defined: -bogus; see 'netctl --help'\n")


def test_version_flag():
    code, out, _ = netctl("-v")
    assert code == 0
    assert out.startswith("netctl version \nVersion: ") and out.endswith("\n\n")


def test_go_int_and_flagset():
    assert parse_go_int("0x10") == 16 and parse_go_int("010") == 8 and parse_go_int("-7") == -7
    with pytest.raises(UsageError):
        parse_go_int("9" * 30)
    fs = FlagSet([TENANT, Flag("slice", "policy, p"), Flag("bool", "all, a")])
    fs.parse(["-p", "a", "--p=b", "-a", "net", "-t", "x"])
    fs.normalize()
    assert fs.get("policy") == ["a", "b"] and fs.get("all") is True and fs.args == ["net", "-t", "x"]
    assert fs.get("tenant") == "default"


def test_transport_error_exit_2_and_version():
    code, out, err = netctl("version")
    assert (code, out) == (2, "")
    assert err.startswith(f'time="T" level=error msg="Get "{DEAD}/version": dial tcp 127.0.0.1:9: connect: ')


def test_keyboard_interrupt_exits_130_quietly(monkeypatch):
    from contivpy.netctl import commands_net

    def boom(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(netctl_app, "_run", lambda argv: boom(None))
    assert netctl("network", "ls") == (130, "", "")
    monkeypatch.setattr(netctl_app, "_run", lambda argv: commands_net.no_such_function())
    code, out, err = netctl("network", "ls")
    assert (code, out) == (1, "")
    assert "Traceback" not in err and 'msg="internal error: AttributeError' in err


def test_console_script_runs_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", DEAD, "group", "inspect"],
        capture_output=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout.decode().startswith("NAME:\n   netctl group inspect - Inspect a EndpointGroup\n")
    assert b"Traceback" not in proc.stderr
