"""The installed commands are the launchers of bin/ (Python started with -S, see bin/netctl).

They must start the right program with its arguments, from the installed copy next to the
interpreter (#!/bin/sh, or pinned to the venv's interpreter by scripts/pin-launchers.sh) and from
the checkout's bin/ directory alike.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.launcher import is_launcher

BIN = Path(__file__).resolve().parents[2] / "bin"
COMMANDS = ["netctl", "netmaster", "netplugin"]


def test_launchers_are_identical_copies():
    texts = {c: (BIN / c).read_bytes() for c in [*COMMANDS, "contivk8s"]}
    assert texts["netctl"].startswith(b"#!/bin/sh")
    assert texts["netctl"] == texts["netmaster"] == texts["netplugin"] == texts["contivk8s"]


def test_contivk8s_launcher_answers_version():
    """The CNI plugin from the checkout's bin/ (installed copies appear with the next install)."""
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION", "PYTHONPATH": str(BIN.parent)}
    out = subprocess.run(
        [str(BIN / "contivk8s")],
        input='{"cniVersion":"0.4.0"}',
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out
    assert out.stdout.strip() == '{"cniVersion": "0.4.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]}'
    assert out.stderr == ""


@pytest.mark.parametrize("where", ["installed", "checkout"])
def test_launchers_run_their_program(where):
    base = Path(sys.executable).parent if where == "installed" else BIN
    for cmd in COMMANDS:
        assert is_launcher(base / cmd), f"{base / cmd} is not the launcher"
    out = subprocess.run([str(base / "netmaster"), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("Version: "), out
    out = subprocess.run(
        [str(base / "netplugin"), "--mode", "bogus"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 22, out  # netplugin's own config error exit code, not a launcher failure
    out = subprocess.run([str(base / "netctl"), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Version:" in out.stdout, out
    assert "Traceback" not in out.stderr
