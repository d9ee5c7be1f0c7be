"""Both daemons write the same log lines (common/logfmt.py): logrus-like text by default,
``--use-json-log`` for one JSON object per line, ``--use-syslog --syslog-url`` to a syslog server.

netmaster runs against the session etcd; netplugin runs with an etcd address where nothing
listens (127.0.0.1:<closed port>), so it logs its start-up and its store retries without touching
any shared state. The syslog server is a UDP socket of this test on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT = re.compile(
    r'^time="[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\.\d{9}" level=(debug|info|warning|error|fatal) msg="(.*)"$'
)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
SYSLOG = re.compile(r"^<(\d+)>(netmaster|netplugin)\[(\d+)\]: (.*)\x00?$", re.S)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_text(lines: list[str]) -> list[str]:
    msgs = []
    for line in lines:
        m = TEXT.match(line)
        assert m, f"not a logrus text line: {line!r}"
        msgs.append(json.loads(f'"{m.group(2)}"'))
    return msgs


def check_json(lines: list[str]) -> list[str]:
    msgs = []
    for line in lines:
        obj = json.loads(line)
        assert list(obj) == ["level", "msg", "time"], line
        assert obj["level"] in ("debug", "info", "warning", "error", "fatal"), line
        assert RFC3339.match(obj["time"]), line
        msgs.append(obj["msg"])
    return msgs


class Netplugin:
    """A netplugin process with an unreachable store; output captured in ``log``."""

    def __init__(self, tmp: Path, args: list[str]) -> None:
        self.log = tmp / "netplugin.log"
        cmd = [
            sys.executable, "-m", "contivpy.netplugin", "--etcd-endpoints", f"http://127.0.0.1:{_closed_port()}",
            "--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge", "--vtep-ip", "127.0.0.1",
            "--ovsdb", f"unix:{tmp}/no-ovsdb.sock", "--debug-listen", "127.0.0.1:0",
            "--plugin-socket", f"{tmp}/tlog-plugin.sock", "--cni-socket", f"{tmp}/tlog-cni.sock",
            "--docker-host", "none", *args,
        ]  # fmt: skip
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
            )  # fmt: skip

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> list[str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return [ln for ln in self.log.read_text().splitlines() if ln]


@pytest.fixture
def netplugin_run(tmp_path):
    started: list[Netplugin] = []

    def run(*args: str) -> Netplugin:
        np = Netplugin(tmp_path, list(args))
        started.append(np)
        return np

    yield run
    for np in started:
        np.stop()


@pytest.fixture
def syslog_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    try:
        yield s
    finally:
        s.close()


def receive(sock: socket.socket, want: str, timeout: float = 20) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(want in g for g in got):
        assert time.monotonic() < deadline, got
        try:
            got.append(sock.recv(65535).decode())
        except TimeoutError:
            pass
    return got


@pytest.mark.etcd
def test_netmaster_text_and_json_lines(netmaster_factory):
    nm = netmaster_factory()
    msgs = check_text([ln for ln in nm.log_path.read_text().splitlines() if ln])
    assert any(m.startswith("Using netmaster mode: test") for m in msgs), msgs
    nm = netmaster_factory(args=["--use-json-log"])
    msgs = check_json([ln for ln in nm.log_path.read_text().splitlines() if ln])
    assert any(m.startswith("Using netmaster mode: test") for m in msgs), msgs


def test_netplugin_text_lines_like_netmaster(netplugin_run):
    np = netplugin_run()
    np.wait_for("cannot reach the state store")
    msgs = check_text(np.stop())
    assert any(m.startswith("debug REST server listening on 127.0.0.1:") for m in msgs), msgs
    assert any(m.startswith("no --vlan-if given") for m in msgs), msgs


@pytest.mark.parametrize("flag", [["--use-json-log"], ["--json-log"], ["-json-log"], ["--use-json-log=true"]])
def test_netplugin_json_lines_like_netmaster(netplugin_run, flag):
    np = netplugin_run(*flag)
    np.wait_for("cannot reach the state store")
    lines = np.stop()
    msgs = check_json(lines)
    warn = next(json.loads(ln) for ln in lines if "no --vlan-if given" in ln)
    assert warn["level"] == "warning"
    assert any("cannot reach the state store" in m for m in msgs)


def test_netplugin_json_log_from_env(tmp_path, netplugin_run, monkeypatch):
    monkeypatch.setenv("CONTIV_NETPLUGIN_USE_JSON_LOG", "true")
    np = netplugin_run()
    np.wait_for("debug REST server listening")
    check_json(np.stop())


@pytest.mark.etcd
def test_netmaster_syslog(netmaster_factory, syslog_server):
    port = syslog_server.getsockname()[1]
    nm = netmaster_factory(args=["--use-syslog", "--syslog-url", f"udp://127.0.0.1:{port}"])
    got = receive(syslog_server, "Using netmaster mode")
    m = SYSLOG.match(next(g for g in got if "Using netmaster mode" in g))
    assert m and m.group(2) == "netmaster" and int(m.group(3)) == nm.proc.pid, got
    assert int(m.group(1)) == 8 + 6  # facility user, severity info
    check_text([m.group(4).rstrip("\x00")])
    assert "Using netmaster mode" not in nm.log_path.read_text()  # syslog instead of stderr


def test_netplugin_syslog_json(netplugin_run, syslog_server):
    port = syslog_server.getsockname()[1]
    np = netplugin_run("--use-syslog", "--syslog-url", f"udp://127.0.0.1:{port}", "--use-json-log")
    got = receive(syslog_server, "no --vlan-if given")
    m = SYSLOG.match(next(g for g in got if "no --vlan-if given" in g))
    assert m and m.group(2) == "netplugin" and int(m.group(3)) == np.proc.pid, got
    assert int(m.group(1)) == 8 + 4  # facility user, severity warning
    assert check_json([m.group(4).rstrip("\x00")]) == [
        "no --vlan-if given in vlan mode: VLAN networks will not reach other hosts"
    ]
    assert "no --vlan-if given" not in "\n".join(np.stop())


@pytest.mark.parametrize(
    "daemon,argv,message",
    [
        ("netmaster", ["--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge", "--log-level", "loud"],
         'not a valid logrus Level: "loud"'),
        ("netplugin", ["--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge", "--log-level", "loud"],
         'not a valid logrus Level: "loud"'),
        ("netmaster", ["--mode", "docker", "--fwdmode", "bridge"], "netmaster network mode is not set"),
        ("netplugin", ["--mode", "docker", "--fwdmode", "bridge"], "netplugin network mode is not set"),
    ],
)  # fmt: skip
def test_config_errors_are_one_error_line_and_exit_22(daemon, argv, message):
    check_one_error_line(daemon, argv, message)


@pytest.mark.parametrize("daemon", ["netmaster", "netplugin"])
@pytest.mark.parametrize(
    "url,message",
    [
        ("http://127.0.0.1:514", "invalid syslog url 'http://127.0.0.1:514' (want udp://host:port, tcp://host:port or kernel)"),
        ("udp://127.0.0.1:x", "invalid syslog url 'udp://127.0.0.1:x' (want udp://host:port, tcp://host:port or kernel)"),
        ("tcp://127.0.0.1:{closed}", "cannot use syslog tcp://127.0.0.1:{closed}: Connection refused"),
    ],
)  # fmt: skip
def test_unusable_syslog_is_a_config_error(daemon, url, message):
    closed = _closed_port()
    url, message = url.format(closed=closed), message.format(closed=closed)
    argv = ["--etcd-endpoints", f"http://127.0.0.1:{_closed_port()}", "--mode", "docker", "--netmode", "vlan",
            "--fwdmode", "bridge", "--use-syslog", "--syslog-url", url]  # fmt: skip
    if daemon == "netplugin":
        argv += ["--vtep-ip", "127.0.0.1"]
    check_one_error_line(daemon, argv, message)


def check_one_error_line(daemon, argv, message):
    r = subprocess.run(
        [sys.executable, "-m", f"contivpy.{daemon}", *argv], capture_output=True, text=True, timeout=60,
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert r.returncode == 22, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln]
    assert len(lines) == 1, r.stderr
    m = TEXT.match(lines[0])
    assert m and m.group(1) == "error" and json.loads(f'"{m.group(2)}"') == message, lines
