"""netmaster runs in its systemd unit's sandbox (systemd/netmaster.service: ``ProtectSystem=strict``
with ``StateDirectory=contiv``, ``CapabilityBoundingSet=CAP_NET_BIND_SERVICE``,
``NoNewPrivileges=yes``; docs/deployment.md).

systemd is not PID 1 here, so the sandbox is rebuilt around one netmaster: ``unshare --mount``
(private propagation: nothing leaks to the host) with the root file system read-only except one
state directory bound writable in its place (what ``StateDirectory=`` does for /var/lib/contiv),
then ``setpriv`` with the unit's bounding set and ``no_new_privs``. With ``--tls-auto`` writing its
certificate under the state directory, netmaster serves HTTPS, becomes leader against the real etcd
and creates a network; pointed at a --tls-dir outside the state directory it stops with a message,
which shows the file system really is read-only for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.netmaster import _free_port, netmaster_args

pytestmark = [pytest.mark.etcd, pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd/netmaster.service"


def unit_setting(name: str) -> str:
    for line in UNIT.read_text().splitlines():
        if line.startswith(name + "="):
            return line.split("=", 1)[1]
    raise AssertionError(f"no {name} in {UNIT}")


def sandboxed(state: Path, argv: list[str]) -> list[str]:
    keep = ",".join(
        "+" + c.removeprefix("CAP_").lower() for c in unit_setting("CapabilityBoundingSet").split()
    )
    script = 'set -e; mount --bind "$STATE" "$STATE"; mount -o remount,bind,ro /; exec "$@"'  # the bind of $STATE is its own mount: it stays writable under the read-only /
    return [
        "unshare", "--mount", "--propagation", "private", "env", f"STATE={state}", "sh", "-c", script, "sh",
        "setpriv", f"--bounding-set=-all,{keep}", "--inh-caps=-all", "--no-new-privs", "--", *argv,
    ]  # fmt: skip


def get(url: str, ctx) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_netmaster_in_the_units_sandbox(etcd_server, tmp_path):
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is absent")
    assert unit_setting("ProtectSystem") == "strict" and unit_setting("StateDirectory") == "contiv"
    if etcd_server.proc is None:
        etcd_server.start()
    etcd_server.etcdctl("del", "--prefix", "/contiv.io")
    state = tmp_path / "var-lib-contiv"
    state.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ctx = ssl._create_unverified_context()
    procs: list[subprocess.Popen] = []

    def start(tls_dir: Path, port: int, log: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "contivpy.netmaster", *netmaster_args(etcd_server.url, port),
               "--tls-auto", "--tls-dir", str(tls_dir)]  # fmt: skip
        with open(log, "wb") as f:
            p = subprocess.Popen(
                sandboxed(state, cmd), stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
                start_new_session=True,
            )  # fmt: skip
        procs.append(p)
        return p

    try:
        port = _free_port()
        log = tmp_path / "netmaster.log"
        p = start(state / "netmaster", port, log)
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert p.poll() is None, log.read_text()
            try:
                if get(url + "/readyz", ctx)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        status = Path(f"/proc/{p.pid}/status").read_text()
        capbnd = next(int(x.split()[1], 16) for x in status.splitlines() if x.startswith("CapBnd:"))
        assert capbnd == 1 << 10  # CAP_NET_BIND_SERVICE only
        mounts = Path(f"/proc/{p.pid}/mounts").read_text().splitlines()
        root_opts = next(m.split()[3] for m in mounts if m.split()[1] == "/")
        assert "ro" in root_opts.split(",")
        assert any(f.suffix in (".pem", ".crt", ".key") for f in (state / "netmaster").iterdir())

        body = json.dumps(
            {"tenantName": "default", "networkName": "tsb-net", "encap": "vxlan", "subnet": "10.41.1.0/24"}
        ).encode()
        req = urllib.request.Request(
            url + "/api/v1/networks/default:tsb-net/", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                assert r.status == 200
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{e.code} {e.read().decode()}\n{log.read_text()[-2000:]}") from None
        assert "tsb-net" in etcd_server.etcdctl("get", "--prefix", "--keys-only", "/contiv.io/state/nets/")

        # outside the state directory the sandbox refuses writes: netmaster stops, with a message
        log2 = tmp_path / "netmaster2.log"
        p2 = start(tmp_path / "elsewhere", _free_port(), log2)
        assert p2.wait(30) != 0
        text = log2.read_text()
        assert "Read-only file system" in text and "Traceback" not in text, text
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        etcd_server.etcdctl("del", "--prefix", "/contiv.io")
