"""netmaster command line: HEAD and legacy spellings, env vars, exit 22 with the original's
messages, --version, and the seed's exact command line starting a working server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from contivpy.netmaster import config

BASE = [
    "--etcd-endpoints",
    "http://127.0.0.1:2379",
    "--mode",
    "docker",
    "--netmode",
    "vlan",
    "--fwdmode",
    "bridge",
]


def build(argv, env=None):
    return config.build(config.parse_args(argv), env or {})


def test_head_flags_and_aliases():
    c = build(BASE + ["--listen-url", "127.0.0.1:9998", "--control-url", "127.0.0.1:9998", "--name", "np2"])
    assert (c.etcd_url, c.cluster_mode, c.net_mode, c.fwd_mode) == (
        "http://127.0.0.1:2379",
        "docker",
        "vlan",
        "bridge",
    )
    assert (c.listen_url, c.control_url, c.plugin_name, c.infra) == (
        "127.0.0.1:9998",
        "127.0.0.1:9998",
        "np2",
        "default",
    )
    c = build(
        [
            "--etcd",
            "http://10.0.0.1:2379,http://10.0.0.2:2379",
            "--cluster-mode",
            "kubernetes",
            "--network-mode",
            "vxlan",
            "--forward-mode",
            "routing",
            "--external-address",
            "0.0.0.0:9999",
            "--internal-address",
            "10.0.0.1:9999",
            "--infra-type",
            "ACI",
            "--plugin-name",
            "x",
            "--log-level",
            "debug",
            "--json-log",
            "--syslog",
        ]
    )
    assert (c.etcd_url, c.cluster_mode, c.net_mode, c.fwd_mode, c.infra) == (
        "http://10.0.0.1:2379,http://10.0.0.2:2379",  # every member (defect 7)
        "kubernetes",
        "vxlan",
        "routing",
        "aci",
    )
    assert (c.control_url, c.log_level, c.json_log, c.syslog) == ("10.0.0.1:9999", "DEBUG", True, True)


def test_legacy_single_dash_flags():
    c = build(
        [
            "-cluster-store",
            "etcd://127.0.0.1:23790",
            "-listen-url",
            "127.0.0.1:9997",
            "-control-url",
            "127.0.0.1:9997",
            "-cluster-mode",
            "swarm-mode",
            "-debug",
            "-plugin-name",
            "p",
        ]
    )
    assert (c.etcd_url, c.cluster_mode, c.log_level, c.plugin_name) == (
        "http://127.0.0.1:23790",
        "swarm-mode",
        "DEBUG",
        "p",
    )
    assert build(["-plugin-mode", "docker", "-netmode=vlan", "-fwdmode=bridge"]).cluster_mode == "docker"
    # legacy defaults: docker mode, no fwd/net mode (set later with `netctl global set`)
    c = build(["-cluster-store", "etcd://127.0.0.1:2379"])
    assert (c.cluster_mode, c.fwd_mode) == ("docker", "")
    assert build(["-cluster-store", "etcd://h:1", "-listen-url", ":9999"]).listen_url == "0.0.0.0:9999"


def test_env_vars_and_precedence():
    env = {
        "CONTIV_NETMASTER_ETCD_ENDPOINTS": "http://127.0.0.9:2379",
        "CONTIV_NETMASTER_MODE": "test",
        "CONTIV_NETMASTER_NET_MODE": "vlan",
        "CONTIV_NETMASTER_FORWARD_MODE": "bridge",
        "CONTIV_NETMASTER_EXTERNAL_ADDRESS": "127.0.0.1:1234",
        "CONTIV_NETMASTER_USE_JSON_LOG": "true",
    }
    c = build([], env)
    assert (c.etcd_url, c.cluster_mode, c.listen_url, c.control_url, c.json_log) == (
        "http://127.0.0.9:2379",
        "test",
        "127.0.0.1:1234",
        "127.0.0.1:1234",
        True,
    )
    assert build(["--mode", "swarm-mode"], env).cluster_mode == "swarm-mode"  # flag beats env


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--netmode", "vlan", "--fwdmode", "bridge"], "netmaster mode is not set"),
        (["--mode", "mesos", "--netmode", "vlan", "--fwdmode", "bridge"], "unknown netmaster mode: mesos"),
        (["--mode", "docker", "--fwdmode", "bridge"], "netmaster network mode is not set"),
        (
            ["--mode", "docker", "--netmode", "gre", "--fwdmode", "bridge"],
            "unknown netmaster network mode: gre",
        ),
        (["--mode", "docker", "--netmode", "vlan"], "netmaster forwarding mode is not set"),
        (
            ["--mode", "docker", "--netmode", "vlan", "--fwdmode", "fast"],
            "unknown netmaster forwarding mode: fast",
        ),
        (
            ["--mode", "docker", "--netmode", "vxlan", "--fwdmode", "bridge"],
            'invalid netmaster forwarding mode: "bridge" (network mode: "vxlan")',
        ),
        (
            BASE + ["--consul-endpoints", "http://c:8500"],
            "ambiguous netmaster db endpoints, both etcd and consul specified: etcd: http://127.0.0.1:2379, consul: http://c:8500",
        ),
        (BASE + ["--listen-url", "9999"], "bind address is not in 'ip:port' format, got 9999"),
        (BASE + ["--control-url", "1.2.3.4:99999"], "bind port is a integer between 1-65535, got 99999"),
        (BASE + ["--infra", "nsx"], "Unknown netmaster infra type: nsx"),
        (BASE + ["--log-level", "loud"], 'not a valid logrus Level: "loud"'),
    ],
)
def test_invalid_config_messages(argv, message):
    with pytest.raises(config.ConfigError) as exc:
        build(argv)
    assert str(exc.value) == message


def _run(args, env=None, timeout=20):
    return subprocess.run(
        [sys.executable, "-m", "contivpy.netmaster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )


def test_exit_22_and_version():
    r = _run(["--mode", "docker", "--netmode", "vxlan", "--fwdmode", "bridge"])
    assert r.returncode == 22
    assert (
        'level=error msg="invalid netmaster forwarding mode: \\"bridge\\" (network mode: \\"vxlan\\")"'
        in r.stderr
    )
    assert "Traceback" not in r.stderr
    r = _run(["--version"])
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Version", "GitCommit", "BuildTime"]
    assert _run(["-version"]).stdout == r.stdout
    assert "--etcd-endpoints" in _run(["--help"]).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.etcd
def test_seed_command_line_starts_fast(etcd_server):
    """`netmaster --etcd-endpoints http://HOST:2379 --mode docker --netmode vlan --fwdmode bridge`
    (listen address from the env so that tests do not take :9999)."""
    etcd_server.etcdctl("del", "--prefix", "/contiv.io")
    port = _free_port()
    exe = shutil.which("netmaster") or ""
    cmd = [exe] if exe else [sys.executable, "-m", "contivpy.netmaster"]
    env = dict(
        os.environ, CONTIV_NETMASTER_EXTERNAL_ADDRESS=f"127.0.0.1:{port}", CONTIV_NETMASTER_RPC_PORT="0"
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd
        + [
            "--etcd-endpoints",
            etcd_server.url,
            "--mode",
            "docker",
            "--netmode",
            "vlan",
            "--fwdmode",
            "bridge",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        first = None
        while time.monotonic() - t0 < 20:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/tenants/", timeout=1) as r:
                    body = r.read().decode()
                    if r.status == 200 and "default" in body:
                        first = time.monotonic() - t0
                        break
            except OSError:
                time.sleep(0.01)
        assert first is not None, proc.stderr.read1().decode() if proc.stderr else ""
        print(f"start -> first API answer with default tenant: {first * 1000:.0f} ms")
        assert first < 3.0  # generous on a shared 2-core box; docs/benchmarks.md has the measurement
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/inspect/globals/global/") as r:
            assert json.loads(r.read())["Oper"]["clusterMode"] == "docker"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        etcd_server.etcdctl("del", "--prefix", "/contiv.io")
    assert proc.returncode == 0
