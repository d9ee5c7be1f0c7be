"""netplugin flags: both spellings, env, defaults, exit code 22 with a clear message on bad config."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contivpy.netplugin.config import ConfigError, parse

SEED = [
    "--etcd-endpoints",
    "http://10.0.0.1:2379",
    "--mode",
    "docker",
    "--netmode",
    "vlan",
    "--fwdmode",
    "bridge",
]


def test_seed_line_is_accepted_without_vlan_if():
    cfg = parse(SEED + ["--vtep-ip", "10.0.0.5"], env={})
    assert cfg.store_url == "http://10.0.0.1:2379"
    assert (cfg.mode, cfg.netmode, cfg.fwdmode) == ("docker", "vlan", "bridge")
    assert cfg.vlan_uplinks == [] and cfg.warnings  # decision: warn instead of exit
    assert cfg.ctrl_ip and cfg.vtep_ip == "10.0.0.5"
    assert cfg.ovsdb == "unix:/var/run/openvswitch/db.sock" and cfg.ovs_datapath == "system"
    assert cfg.plugin_socket == "/run/docker/plugins/netplugin.sock" and cfg.mtu == 1450


def test_legacy_single_dash_flags():
    cfg = parse(
        ["-cluster-store", "etcd://10.1.1.1:2379", "-plugin-mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge",
         "-vlan-if", "eth2,eth3", "-host-label", "n1", "-vtep-ip", "10.1.1.2", "-ctrl-ip", "10.1.1.3", "-debug"],
        env={},
    )  # fmt: skip
    assert cfg.etcd_endpoints == ["http://10.1.1.1:2379"]
    assert cfg.vlan_uplinks == ["eth2", "eth3"] and cfg.host == "n1"
    assert (cfg.vtep_ip, cfg.ctrl_ip, cfg.log_level) == ("10.1.1.2", "10.1.1.3", "DEBUG")


def test_env_and_aliases():
    env = {
        "CONTIV_NETPLUGIN_ETCD_ENDPOINTS": "http://e1:2379,http://e2:2379",
        "CONTIV_NETPLUGIN_MODE": "docker",
        "CONTIV_NETPLUGIN_NET_MODE": "vlan",
        "CONTIV_NETPLUGIN_FORWARD_MODE": "bridge",
        "CONTIV_NETPLUGIN_VLAN_UPLINKS": "eth9",
        "CONTIV_NETPLUGIN_VTEP_IP": "10.2.2.2",
        "CONTIV_NETPLUGIN_CONTROL_IP": "10.2.2.3",
        "CONTIV_NETPLUGIN_HOST": "hx",
    }
    cfg = parse(["--vlan-uplinks", "eth1", "--ovs-datapath", "netdev", "--mtu", "auto"], env=env)
    assert (
        cfg.store_url == "http://e1:2379,http://e2:2379" and cfg.vlan_uplinks == ["eth1"] and cfg.host == "hx"
    )
    assert cfg.ovs_datapath == "netdev" and cfg.mtu == "auto"


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--netmode", "vlan", "--fwdmode", "bridge"], "mode is not set"),
        (["--mode", "docker", "--fwdmode", "bridge"], "network mode is not set"),
        (["--mode", "docker", "--netmode", "vlan"], "forwarding mode is not set"),
        (["--mode", "bogus", "--netmode", "vlan", "--fwdmode", "bridge"], "unknown netplugin mode"),
        (
            ["--mode", "docker", "--netmode", "vxlan", "--fwdmode", "bridge"],
            "invalid netplugin forwarding mode",
        ),
        (SEED + ["--vtep-ip", "1.2.3"], "invalid vtep-ip"),
        (SEED + ["--ovs-datapath", "dpdk"], "invalid --ovs-datapath"),
        (SEED + ["--ovsdb", "/tmp/x"], "invalid --ovsdb"),
        (SEED + ["--mtu", "20"], "invalid mtu"),
    ],
)
def test_config_errors(argv, msg):
    with pytest.raises(ConfigError, match=msg):
        parse(argv, env={})


def test_exit_code_22_and_message():
    r = subprocess.run(
        [sys.executable, "-m", "contivpy.netplugin", "--mode", "docker"], capture_output=True, text=True
    )
    assert r.returncode == 22
    assert "netplugin network mode is not set" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "contivpy.netplugin", "--bogus"], capture_output=True, text=True
    )
    assert r.returncode == 22 and "Traceback" not in r.stderr


def test_debug_rest_on_loopback_unless_told():
    assert parse(SEED + ["--vtep-ip", "10.0.0.5"], env={}).debug_listen == "127.0.0.1:9090"
    cfg = parse(SEED + ["--vtep-ip", "10.0.0.5", "--debug-listen", "10.0.0.5:9090"], env={})
    assert cfg.debug_listen == "10.0.0.5:9090"
    cfg = parse(SEED + ["--vtep-ip", "10.0.0.5"], env={"CONTIV_NETPLUGIN_DEBUG_LISTEN": ":9090"})
    assert cfg.debug_listen == ":9090"
    for bad in ("9090", "host:", "h:99999", "h:x"):
        with pytest.raises(ConfigError, match="invalid --debug-listen"):
            parse(SEED + ["--vtep-ip", "10.0.0.5", "--debug-listen", bad], env={})


def test_cni_socket_flag_env_and_default():
    base = ["--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge"]
    assert parse(base, env={}).cni_socket == "/run/contiv/contiv-cni.sock"
    assert parse([*base, "--cni-socket", "/tmp/x/cni.sock"], env={}).cni_socket == "/tmp/x/cni.sock"
    assert parse(base, env={"CONTIV_NETPLUGIN_CNI_SOCKET": "/run/y.sock"}).cni_socket == "/run/y.sock"
    with pytest.raises(ConfigError, match="invalid --cni-socket"):
        parse([*base, "--cni-socket", "rel.sock"], env={})


def test_k8s_config_flag():
    base = ["--mode", "kubernetes", "--netmode", "vxlan", "--fwdmode", "routing"]
    assert parse(base, env={}).k8s_config == "/var/contiv/config/contiv.json"
    assert parse([*base, "--k8s-config", "/etc/c.json"], env={}).k8s_config == "/etc/c.json"


def test_log_flags_like_netmaster():
    """--use-json-log/--json-log, --use-syslog/--syslog, --syslog-url, their env, and the log levels
    with netmaster's message (common/logfmt.py)."""
    cfg = parse(SEED, env={})
    assert (cfg.json_log, cfg.syslog, cfg.syslog_url, cfg.log_level) == (
        False,
        False,
        "udp://127.0.0.1:514",
        "INFO",
    )
    cfg = parse(SEED + ["--json-log", "--syslog", "--syslog-url", "tcp://10.0.0.9:601"], env={})
    assert (cfg.json_log, cfg.syslog, cfg.syslog_url) == (True, True, "tcp://10.0.0.9:601")
    cfg = parse(SEED + ["--use-json-log=true", "--use-syslog=false"], env={})
    assert (cfg.json_log, cfg.syslog) == (True, False)
    env = {"CONTIV_NETPLUGIN_USE_JSON_LOG": "true", "CONTIV_NETPLUGIN_USE_SYSLOG": "1",
           "CONTIV_NETPLUGIN_SYSLOG_URL": "udp://10.0.0.8:5514", "CONTIV_NETPLUGIN_LOG_LEVEL": "warning"}  # fmt: skip
    cfg = parse(SEED, env=env)
    assert (cfg.json_log, cfg.syslog, cfg.syslog_url, cfg.log_level) == (
        True,
        True,
        "udp://10.0.0.8:5514",
        "WARN",
    )
    cfg = parse(SEED + ["-json-log", "-syslog", "kernel"], env={})  # 1.1.x spellings
    assert (cfg.json_log, cfg.syslog, cfg.syslog_url) == (True, True, "kernel")
    assert parse(SEED + ["--log-level", "trace"], env={}).log_level == "TRACE"
    with pytest.raises(ConfigError, match='^not a valid logrus Level: "loud"$'):
        parse(SEED + ["--log-level", "loud"], env={})


def test_ovs_ctl_flag_and_default_target(tmp_path):
    from contivpy.netplugin.ovsappctl import resolve_target

    assert parse(SEED + ["--vtep-ip", "10.0.0.5"], env={}).ovs_ctl == ""
    cfg = parse(SEED + ["--vtep-ip", "10.0.0.5", "--ovs-ctl", "/x/ovs-vswitchd.ctl"], env={})
    assert cfg.ovs_ctl == "/x/ovs-vswitchd.ctl"
    assert parse(SEED + ["--vtep-ip", "10.0.0.5"], env={"CONTIV_NETPLUGIN_OVS_CTL": "/y"}).ovs_ctl == "/y"
    # the target: explicit, else next to the OVSDB socket (--unixctl name, then OVS's pid layout)
    db = f"unix:{tmp_path}/db.sock"
    assert resolve_target(db, "/explicit.ctl") == "/explicit.ctl"
    assert resolve_target(db) == "ovs-vswitchd"  # nothing there: ovs-appctl's own default
    assert resolve_target("tcp:127.0.0.1:6640") == "ovs-vswitchd"
    (tmp_path / "ovs-vswitchd.pid").write_text("4242\n")
    (tmp_path / "ovs-vswitchd.4242.ctl").touch()
    assert resolve_target(db) == f"{tmp_path}/ovs-vswitchd.4242.ctl"
    (tmp_path / "ovs-vswitchd.ctl").touch()
    assert resolve_target(db) == f"{tmp_path}/ovs-vswitchd.ctl"
