"""Packaging: `python3 -m build` makes a wheel and an sdist; the wheel installed into a fresh venv
(made with Debian's /usr/bin/python3) gives working commands; `make install` / `make uninstall`
into a temporary root.

Marked ``packaging`` (about 40 s: one build, two venvs; deselect with ``-m 'not packaging'``). No
PYTHONPATH reaches the installed commands and they run from a temporary directory, so what runs is
the installed copy, never this checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.netmaster import _free_port, netmaster_args

pytestmark = [pytest.mark.packaging]

ROOT = Path(__file__).resolve().parents[2]
BASE_PYTHON = "/usr/bin/python3"
COMMANDS = ("netctl", "netmaster", "netplugin")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.pop("NETMASTER", None)
    return env


def run(*cmd, cwd, timeout=300, env=None) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env or clean_env(),
    )
    assert r.returncode == 0, f"{cmd} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    if not os.access(BASE_PYTHON, os.X_OK):
        pytest.skip(f"{BASE_PYTHON} is missing")
    out = tmp_path_factory.mktemp("tpk-dist")
    run(sys.executable, "-m", "build", "-o", out, ROOT, cwd=out)
    wheels = list(out.glob("contivpy-*-py3-none-any.whl"))
    sdists = list(out.glob("contivpy-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0]


def test_build_makes_wheel_and_sdist(dist):
    wheel, sdist = dist
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for c in COMMANDS:
        assert any(n.endswith(f".data/scripts/{c}") for n in names), c
    for u in ("netmaster.service", "netplugin.service"):
        assert any(n.endswith(f".data/data/share/contivpy/systemd/{u}") for n in names), u
    assert any(n.endswith("share/doc/contivpy/deployment.md") for n in names)
    assert "Requires-Dist: prometheus-client" in meta
    with tarfile.open(sdist) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    for f in (
        "Makefile",
        "scripts/install.sh",
        "systemd/netplugin.service",
        "docs/deployment.md",
        "contrib/completion/bash/netctl",
        "bin/netctl",
    ):
        assert f in members, f


def test_wheel_in_fresh_venv_gives_working_commands(dist, tmp_path, etcd_server):
    wheel, _ = dist
    venv = tmp_path / "venv"
    run(BASE_PYTHON, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    where = run(venv / "bin/python", "-c", "import contivpy; print(contivpy.__file__)", cwd=tmp_path).stdout
    assert where.startswith(str(venv)), where

    for c in ("netmaster", "netplugin"):
        out = run(venv / "bin" / c, "--version", cwd=tmp_path).stdout
        assert out.startswith("Version: 0.1.0-contivpy") and "GitCommit: \n" in out, out  # no checkout
    out = run(venv / "bin/netctl", "--version", cwd=tmp_path).stdout
    assert out.startswith("netctl version") and "Version:" in out

    # The installed netmaster serves the installed netctl against the real etcd.
    if etcd_server.proc is None:
        etcd_server.start()
    etcd_server.etcdctl("del", "--prefix", "/contiv.io")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "netmaster.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [str(venv / "bin/netmaster"), *netmaster_args(etcd_server.url, port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=clean_env(), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "netmaster.log").read_text()
            try:
                with urllib.request.urlopen(url + "/version", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "netmaster.log").read_text()
            time.sleep(0.1)
        nc = [venv / "bin/netctl", "--netmaster", url]
        run(*nc, "network", "create", "--subnet", "10.36.1.0/24", "tpk-net", cwd=tmp_path)
        out = run(*nc, "network", "ls", cwd=tmp_path).stdout
        assert "tpk-net" in out and "10.36.1.0/24" in out, out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        etcd_server.etcdctl("del", "--prefix", "/contiv.io")


def test_make_install_and_uninstall_into_a_temp_root(dist, tmp_path):
    wheel, _ = dist
    if shutil.which("make") is None:
        pytest.skip("make is missing")
    prefix, sbin, units = tmp_path / "opt/contivpy", tmp_path / "sbin", tmp_path / "units"
    bashc, zshc = tmp_path / "bash-completion", tmp_path / "zsh"
    vars_ = [
        f"PREFIX={prefix}", f"SBINDIR={sbin}", f"UNITDIR={units}", f"SRC={wheel}",
        f"BASHCOMPDIR={bashc}", f"ZSHCOMPDIR={zshc}",
    ]  # fmt: skip
    run("make", "-s", "-C", ROOT, "install", *vars_, cwd=tmp_path)

    assert (prefix / "pyvenv.cfg").is_file()
    assert "home = /usr/bin" in (prefix / "pyvenv.cfg").read_text()  # Debian's python3, not another
    for c in COMMANDS:
        link = sbin / c
        assert link.is_symlink() and os.readlink(link) == f"{prefix}/bin/{c}"
    # Through the links: the launcher follows them to the venv's interpreter.
    out = run(sbin / "netmaster", "--version", cwd=tmp_path).stdout
    assert out.startswith("Version: 0.1.0-contivpy") and "GitCommit: \n" in out, out
    assert run(sbin / "netplugin", "-v", cwd=tmp_path).stdout.startswith("Version: ")
    assert run(sbin / "netctl", "--version", cwd=tmp_path).stdout.startswith("netctl version")

    for u in ("netmaster", "netplugin"):
        text = (units / f"{u}.service").read_text()
        assert f"ExecStart={sbin}/{u} " in text and "/usr/local/sbin/" not in text
        assert f"Documentation=file://{prefix}/share/doc/contivpy/deployment.md" in text
        assert (prefix / "share/doc/contivpy/deployment.md").is_file()
        assert oct((units / f"{u}.service").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in units.iterdir()) == ["netmaster.service", "netplugin.service"]  # no .wants
    if shutil.which("systemd-analyze"):
        r = subprocess.run(
            ["systemd-analyze", "verify", *sorted(map(str, units.iterdir()))], capture_output=True, text=True
        )
        assert r.returncode == 0 and r.stderr == "", r.stderr

    assert (bashc / "netctl").read_bytes() == (ROOT / "contrib/completion/bash/netctl").read_bytes()
    assert (zshc / "_netctl").read_bytes() == (ROOT / "contrib/completion/zsh/_netctl").read_bytes()

    unrelated = sbin / "other-tool"
    unrelated.symlink_to("/bin/true")
    for _ in range(2):  # idempotent
        run("make", "-s", "-C", ROOT, "uninstall", *vars_, cwd=tmp_path)
        assert not prefix.exists()
        assert [p.name for p in sbin.iterdir()] == ["other-tool"]  # only our links are removed
        assert list(units.iterdir()) == [] and list(bashc.iterdir()) == [] and list(zshc.iterdir()) == []
