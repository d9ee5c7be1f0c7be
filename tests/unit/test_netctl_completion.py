"""netctl shell completion: the candidates netctl lists, and the bash script driving it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from contivpy.netctl.app import run
from contivpy.netctl.completion import candidates

ROOT = Path(__file__).resolve().parents[2]


def test_top_level_lists_every_command_and_help():
    got = candidates([])
    for name in (
        "network",
        "net",
        "tenant",
        "group",
        "policy",
        "netprofile",
        "global",
        "bgp",
        "service",
        "help",
    ):
        assert name in got


def test_a_noun_lists_its_subcommands():
    assert set(candidates(["network"])) >= {"create", "ls", "list", "inspect", "rm", "delete"}
    assert "rule-add" in candidates(["--netmaster", "http://127.0.0.1:1", "policy"])


def test_a_leaf_command_lists_its_flags_and_a_value_is_left_to_the_user():
    got = candidates(["net", "create"])
    assert {"--subnet", "-s", "--tenant", "-t", "--encap"} <= set(got)
    assert candidates(["net", "create", "-t"]) == []  # the tenant name comes next
    assert "--subnet" in candidates(["net", "create", "-t", "blue"])


def test_run_prints_candidates_one_per_line(capsys):
    assert run(["netctl", "tenant", "--generate-bash-completion"]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == candidates(["tenant"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")
def test_bash_script_completes_through_netctl():
    script = ROOT / "contrib" / "completion" / "bash" / "netctl"
    prog = f"""
        netctl() {{ "{ROOT}/bin/netctl" "$@"; }}
        source "{script}"
        COMP_WORDS=(netctl network cr); COMP_CWORD=2
        _contivpy_netctl
        echo "${{COMPREPLY[@]}}"
        COMP_WORDS=(netctl po); COMP_CWORD=1
        _contivpy_netctl
        echo "${{COMPREPLY[@]}}"
    """
    res = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=60)
    lines = res.stdout.splitlines()
    assert lines == ["create", "policy"], res.stdout + res.stderr
