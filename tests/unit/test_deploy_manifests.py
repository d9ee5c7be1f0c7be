"""deploy/: the Kubernetes manifests pass a schema validator (kubernetes-validate, strict), and the
commands in them are accepted by the daemons' own flag parsers; the CNI network configurations are
accepted by the plugin's configuration checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _docs() -> list[dict]:
    yaml = pytest.importorskip("yaml")
    return [d for d in yaml.safe_load_all((DEPLOY / "contiv.yaml").read_text()) if d]


def test_manifests_are_valid_kubernetes_objects():
    kv = pytest.importorskip("kubernetes_validate")
    docs = _docs()
    assert {d["kind"] for d in docs} >= {"DaemonSet", "Deployment", "ConfigMap", "ServiceAccount"}
    for d in docs:
        kv.validate(d, kv.latest_version(), strict=True)  # raises on any schema violation


def test_daemon_commands_parse():
    from contivpy.netmaster.config import parse_args
    from contivpy.netplugin.config import parse

    docs = {d["kind"]: d for d in _docs()}
    np = docs["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    cfg = parse(np["args"], env={"CONTIV_NETPLUGIN_ETCD_ENDPOINTS": "http://127.0.0.1:2379"})
    assert cfg.mode == "kubernetes" and cfg.cni_socket == "/run/contiv/contiv-cni.sock"
    nm = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert parse_args(nm["args"]).mode == "kubernetes"


def test_cni_network_configs_are_accepted():
    from contivpy.contivk8s import plugin

    cm = {d["kind"]: d for d in _docs()}["ConfigMap"]["data"]
    for text in ((DEPLOY / "10-contiv.conflist").read_text(), cm["10-contiv.conflist"]):
        conflist = json.loads(text)
        assert conflist["name"] == "contiv"
        (conf,) = conflist["plugins"]
        conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **conf}
        assert conf["type"] == "contivk8s"
        assert plugin.check_version(conf) == "1.0.0"
        assert conf["cniSocket"] == "/run/contiv/contiv-cni.sock"
    labels = plugin.config_labels(json.loads((DEPLOY / "10-contiv.conflist").read_text())["plugins"][0])
    assert labels == {"io.contiv.tenant": "default", "io.contiv.network": "default-net"}
    assert json.loads(cm["contiv.json"]) == {}
