"""contivk8s, the CNI plugin, without a netplugin: input validation, error format, VERSION, result
shapes per spec version, prevResult merging, label merging, log file, and the code for an unreachable
netplugin socket (a real unix socket path that nobody serves). The ADD/DEL/CHECK paths against a real
netplugin are in tests/integration/test_cni.py.
"""

from __future__ import annotations

import io
import json
import socket

import pytest

from contivpy.contivk8s import plugin

BASE_ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}


def run(env: dict, conf, tmp_path) -> tuple[int, dict | None]:
    out = io.StringIO()
    stdin = io.StringIO(conf if isinstance(conf, str) else json.dumps(conf))
    rc = plugin.main(env={"CONTIV_CNI_LOG": str(tmp_path / "k8s.log"), **env}, stdin=stdin, stdout=out)
    text = out.getvalue()
    assert text.count("\n") <= 1, text  # one JSON document at most
    return rc, (json.loads(text) if text.strip() else None)


def conf(version="1.0.0", **kw):
    return {"cniVersion": version, "name": "contiv", "type": "contivk8s", **kw}


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_version_command(tmp_path, version):
    rc, out = run({"CNI_COMMAND": "VERSION"}, {"cniVersion": version}, tmp_path)
    assert rc == 0
    assert out == {"cniVersion": version, "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]}


def test_version_without_config(tmp_path):
    rc, out = run({"CNI_COMMAND": "VERSION"}, "", tmp_path)
    assert rc == 0 and out["supportedVersions"] == ["0.3.1", "0.4.0", "1.0.0"]


@pytest.mark.parametrize(
    "env,config,code,msg",
    [
        ({}, conf(), 4, "CNI_COMMAND is not set"),
        ({"CNI_COMMAND": "FROB"}, conf(), 4, "unknown CNI_COMMAND 'FROB'"),
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": ""}, conf(), 4, "CNI_CONTAINERID is not set"),
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "../x"}, conf(), 4, "invalid CNI_CONTAINERID"),
        ({"CNI_COMMAND": "ADD", "CNI_IFNAME": ""}, conf(), 4, "CNI_IFNAME is not set"),
        ({"CNI_COMMAND": "ADD", "CNI_IFNAME": "a" * 16}, conf(), 4, "not a valid interface name"),
        ({"CNI_COMMAND": "ADD", "CNI_IFNAME": "et h0"}, conf(), 4, "not a valid interface name"),
        ({"CNI_COMMAND": "ADD", "CNI_NETNS": ""}, conf(), 4, "CNI_NETNS is not set"),
        ({"CNI_COMMAND": "ADD", "CNI_NETNS": "ns1"}, conf(), 4, "an absolute path is required"),
        ({"CNI_COMMAND": "ADD", "CNI_NETNS": "/nonexistent/ns"}, conf(), 4, "no such file"),
        ({"CNI_COMMAND": "ADD", "CNI_ARGS": "a=1;oops"}, conf(), 4, "invalid CNI_ARGS item"),
        ({"CNI_COMMAND": "ADD"}, conf("0.2.0"), 1, "incompatible CNI version 0.2.0"),
        ({"CNI_COMMAND": "ADD"}, {"name": "x", "type": "contivk8s"}, 7, "cniVersion is missing"),
        ({"CNI_COMMAND": "ADD"}, "{not json", 6, "cannot decode the network configuration"),
        ({"CNI_COMMAND": "ADD"}, "[1]", 6, "must be a JSON object"),
        ({"CNI_COMMAND": "ADD"}, conf(cniSocket="rel.sock"), 7, "invalid cniSocket"),
        ({"CNI_COMMAND": "ADD"}, conf(timeout=-1), 7, "invalid timeout"),
        ({"CNI_COMMAND": "CHECK"}, conf("0.3.1"), 1, "does not support the CHECK command"),
    ],
)
def test_bad_input_gives_spec_error(tmp_path, env, config, code, msg):
    rc, out = run({**BASE_ENV, **env}, config, tmp_path)
    assert rc == 1
    assert out["code"] == code, out
    assert out["msg"].startswith("Contiv: ") and msg in out["msg"], out
    assert set(out) == {"cniVersion", "code", "msg", "details"}
    assert "Traceback" not in json.dumps(out)
    assert msg in (tmp_path / "k8s.log").read_text()  # the log file has it, stdout only the JSON


def test_del_needs_no_netns(tmp_path):
    """DEL without CNI_NETNS (the namespace may be gone) gets past validation: to the socket."""
    env = {**BASE_ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}
    rc, out = run(env, conf(cniSocket=str(tmp_path / "none.sock")), tmp_path)
    assert rc == 1 and out["code"] == 11


@pytest.mark.parametrize("how", ["missing", "not-listening"])
def test_unreachable_socket_is_try_again_later(tmp_path, how):
    path = tmp_path / "cni.sock"
    if how == "not-listening":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))  # bound, never listening: connection refused
    rc, out = run({**BASE_ENV, "CNI_COMMAND": "ADD"}, conf(cniSocket=str(path)), tmp_path)
    assert rc == 1 and out["code"] == 11, out
    assert out["msg"].startswith(f"Contiv: cannot reach netplugin on {path}")
    assert out["cniVersion"] == "1.0.0"


def test_error_carries_the_config_version(tmp_path):
    rc, out = run({**BASE_ENV, "CNI_COMMAND": "ADD"}, conf("0.4.0", cniSocket="/nonexistent.sock"), tmp_path)
    assert rc == 1 and out["cniVersion"] == "0.4.0"


def test_log_file_from_config(tmp_path):
    logf = tmp_path / "sub" / "plugin.log"
    run({**BASE_ENV, "CNI_COMMAND": "ADD"}, conf(cniSocket="/nonexistent.sock", logFile=str(logf)), tmp_path)
    assert "cannot reach netplugin" in logf.read_text()


def test_cni_args_and_config_labels():
    assert plugin.parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=p;io.contiv.network=n1;") == {
        "IgnoreUnknown": "1",
        "K8S_POD_NAME": "p",
        "io.contiv.network": "n1",
    }
    c = {
        "args": {
            "io.contiv.tenant": "t1",
            "cni": {"io.contiv.network": "n2", "labels": [{"key": "io.contiv.net-group", "value": "g"}]},
        }
    }
    assert plugin.config_labels(c) == {
        "io.contiv.tenant": "t1",
        "io.contiv.network": "n2",
        "io.contiv.net-group": "g",
    }
    assert plugin.config_labels({"args": "junk"}) == {}


REPLY = {
    "result": 0,
    "ipaddress": "10.1.1.3/24",
    "gateway": "10.1.1.254",
    "ipv6address": "",
    "macaddress": "02:02:0a:01:01:03",
    "ifname": "eth0",
    "hostifname": "vvport7",
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.1.254"}],
}


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_result_shape_per_version(version):
    res = plugin.build_result(REPLY, version, "/run/netns/p", None)
    ip = res["ips"][0]
    assert res["cniVersion"] == version
    assert res["interfaces"] == [
        {"name": "vvport7"},
        {"name": "eth0", "sandbox": "/run/netns/p", "mac": "02:02:0a:01:01:03"},
    ]
    assert ip["address"] == "10.1.1.3/24" and ip["gateway"] == "10.1.1.254" and ip["interface"] == 1
    assert ("version" in ip) == (version != "1.0.0")
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.254"}]


def test_prev_result_is_kept_and_converted():
    prev = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "lo", "sandbox": "/run/netns/p"}],
        "ips": [{"version": "4", "address": "127.0.0.1/8", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]},
    }
    res = plugin.build_result(REPLY, "1.0.0", "/run/netns/p", prev)
    assert [i["name"] for i in res["interfaces"]] == ["lo", "vvport7", "eth0"]
    assert res["ips"][0] == {"address": "127.0.0.1/8", "interface": 0}  # 1.0.0: no "version"
    assert res["ips"][1]["interface"] == 2
    assert res["routes"][0] == {"dst": "192.0.2.0/24"} and res["dns"] == prev["dns"]


def test_prev_addresses_only_of_our_interface():
    prev = {
        "interfaces": [{"name": "lo", "sandbox": "/ns"}, {"name": "eth0", "sandbox": "/ns"}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}, {"address": "10.1.1.3/24", "interface": 1}],
    }
    assert plugin.prev_addresses(prev, "eth0", "/ns") == ["10.1.1.3/24"]
    assert plugin.prev_addresses(None, "eth0", "/ns") == []
