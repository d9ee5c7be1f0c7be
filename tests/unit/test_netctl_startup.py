"""netctl's start-up stays short (docs/benchmarks.md, "netctl start-up"), checked without timing.

The installed command runs `network ls` through the launcher (bin/netctl) with Python's own import
log (PYTHONPROFILEIMPORTTIME) and must import only what the command needs: no `os` and no `site`
(about 1 ms each at every start), none of the heavy standard library (http.client pulls email.*,
json pulls re, socket and ssl pull enum), only the command module that runs, one connection for
both GETs, and no interpreter finalisation at the end (netctl leaves with _exit: its Python -v
log has no "# cleanup" lines). The launcher pinned by scripts/pin-launchers.sh starts Python
directly (#! line) and works through a symbolic link like the sh form.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.netctl_fakeserver import ReplayServer

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "netctl"
NETS = '[{"key":"default:n1","networkName":"n1","tenantName":"default","subnet":"10.1.1.0/24","encap":"vxlan","nwType":"data"}]'
ROUTES = {
    ("GET", "/api/v1/tenants/default/"): (200, '{"key":"default","tenantName":"default"}'),
    ("GET", "/api/v1/networks/"): (200, NETS),
}
# Modules whose import would put start-up time back (each one measured at 0.5-5 ms).
HEAVY = {
    "os", "site", "http", "http.client", "email", "email.parser", "json", "re", "enum", "socket",
    "ssl", "typing", "collections", "ipaddress", "dataclasses", "inspect", "argparse", "logging",
    "urllib", "urllib.parse", "pathlib", "datetime", "selectors", "subprocess", "importlib.util",
}  # fmt: skip
COMMAND_MODULES = {
    "contivpy.netctl.commands_app", "contivpy.netctl.commands_auth", "contivpy.netctl.commands_bgp",
    "contivpy.netctl.commands_global", "contivpy.netctl.commands_netprofile",
    "contivpy.netctl.commands_service", "contivpy.netctl.commands_trace",
    "contivpy.netctl.commands_version", "contivpy.netctl.completion",
}  # fmt: skip


def imported_modules(stderr: str) -> set[str]:
    """Module names of Python's -X importtime log ("import time: self | cumulative | name")."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def run_traced(
    cmd: list[str], url: str, tmp_path: Path, verbose: bool = False
) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PYTHONVERBOSE" if verbose else "PYTHONPROFILEIMPORTTIME": "1",
    }
    return subprocess.run(
        [*cmd, "--netmaster", url, "network", "ls"], capture_output=True, text=True, env=env, timeout=60
    )


def check_network_ls(proc: subprocess.CompletedProcess) -> set[str]:
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[2].split() == ["default", "n1", "data", "vxlan", "0", "10.1.1.0/24"]
    mods = imported_modules(proc.stderr)
    assert "contivpy.netctl.commands_net" in mods, "the import log was not read"
    assert not mods & HEAVY, f"netctl start-up imports {sorted(mods & HEAVY)}"
    assert not mods & COMMAND_MODULES, (
        f"netctl imports unused command modules {sorted(mods & COMMAND_MODULES)}"
    )
    assert not {m for m in mods if m.startswith("contivpy.") and not m.startswith("contivpy.netctl")}
    return mods


@pytest.fixture
def server():
    with ReplayServer(ROUTES) as srv:
        accepted: list = []
        srv.verify_request = lambda request, address: accepted.append(address) or True
        srv.accepted = accepted
        yield srv


def test_network_ls_through_the_sh_launcher_imports_nothing_heavy(server, tmp_path):
    assert LAUNCHER.read_bytes().startswith(b'#!/bin/sh\n""":"\n')
    check_network_ls(run_traced([str(LAUNCHER)], server.url, tmp_path))
    assert len(server.accepted) == 1  # both GETs on one keep-alive connection
    # `sh bin/netctl` (how bench/ and some scripts call it) takes the same path
    check_network_ls(run_traced(["sh", str(LAUNCHER)], server.url, tmp_path))


def test_netctl_exits_without_the_interpreter_finalisation(server, tmp_path):
    proc = run_traced([str(LAUNCHER)], server.url, tmp_path, verbose=True)
    assert proc.returncode == 0 and "n1" in proc.stdout
    assert "# installing zipimport hook" in proc.stderr, "the verbose log was not read"
    assert "# cleanup" not in proc.stderr and "# destroy" not in proc.stderr
    # errors too: the message and the exit status are still there
    proc = run_traced([str(LAUNCHER)], "http://127.0.0.1:1", tmp_path, verbose=True)
    assert proc.returncode == 2 and "connect: connection refused" in proc.stderr
    assert "# cleanup" not in proc.stderr


def test_pinned_launcher_starts_python_directly(server, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    (site_packages / "contivpy-checkout.pth").write_text(f"{ROOT}\n")  # as an editable install does
    for c in ("netctl", "netmaster"):
        (venv / "bin" / c).write_bytes(LAUNCHER.read_bytes())
        (venv / "bin" / c).chmod(0o755)
    (venv / "bin" / "other").write_text("#!/bin/sh\necho other\n")
    for _ in range(2):  # idempotent
        subprocess.run(["sh", str(ROOT / "scripts/pin-launchers.sh"), str(venv)], check=True, timeout=60)
    text = (venv / "bin" / "netctl").read_text()
    assert text.splitlines()[0] == f"#!{venv}/bin/python3 -S"
    assert text.splitlines()[1:] == LAUNCHER.read_text().splitlines()[1:]
    assert (venv / "bin" / "netmaster").read_text() == text
    assert (venv / "bin" / "other").read_text() == "#!/bin/sh\necho other\n"  # not ours: untouched
    assert os.access(venv / "bin" / "netctl", os.X_OK)

    link = tmp_path / "sbin" / "netctl"  # as `make install` links it
    link.parent.mkdir()
    link.symlink_to(venv / "bin" / "netctl")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(link), "--version"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("netctl version \nVersion: "), proc
    mods = check_network_ls(run_traced([str(link)], server.url, tmp_path))
    assert "contivpy.netctl.__main__" in mods


def test_pin_refuses_a_relative_venv_and_skips_a_long_path(tmp_path):
    proc = subprocess.run(
        ["sh", str(ROOT / "scripts/pin-launchers.sh"), "rel/venv"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "absolute" in proc.stderr
    long = tmp_path / ("x" * 120)
    (long / "bin").mkdir(parents=True)
    (long / "bin" / "python3").symlink_to(sys.executable)
    (long / "bin" / "netctl").write_bytes(LAUNCHER.read_bytes())
    subprocess.run(["sh", str(ROOT / "scripts/pin-launchers.sh"), str(long)], check=True)
    assert (long / "bin" / "netctl").read_bytes() == LAUNCHER.read_bytes()  # a #! line holds 127 bytes


def test_environment_is_read_without_os(server, tmp_path):
    """NETMASTER and HOME come from the process environment (posix.environ, os is never loaded)."""
    (tmp_path / ".netctl").mkdir()
    (tmp_path / ".netctl" / "config.json").write_text('{"token":"t1"}')  # needs https: refused
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "NETMASTER": server.url}
    proc = subprocess.run(
        [str(LAUNCHER), "network", "ls", "-q"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 3 and proc.stdout == ""
    assert "setting auth token requires a https auth_proxy URL" in proc.stderr
    (tmp_path / ".netctl" / "config.json").unlink()
    proc = subprocess.run(
        [str(LAUNCHER), "network", "ls", "-q"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "n1\n", "")


def test_a_full_disk_is_reported_in_gos_words_not_pythons():
    """stdout on /dev/full: one error line as Go words a failed write, exit code 1, no Python
    exception name or errno in it."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "contivpy.netctl", "--help"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=30,
        )  # fmt: skip
    assert r.returncode == 1
    assert "write /dev/stdout: no space left on device" in r.stderr
    assert "OSError" not in r.stderr and "Errno" not in r.stderr and "Traceback" not in r.stderr
