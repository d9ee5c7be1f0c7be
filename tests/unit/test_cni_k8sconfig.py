"""contiv.json for the CNI server's pod-label lookups (netplugin/cni/k8sapi.py): the original's keys,
a token given as a file, clear errors for a bad file, nothing configured without file or cluster."""

from __future__ import annotations

import json
import re

import pytest

from contivpy.common.errors import ValidationError
from contivpy.netplugin.cni.k8sapi import load


def test_contiv_json_keys(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("abc\n")
    f = tmp_path / "contiv.json"
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    f.write_text(
        json.dumps({"K8S_API_SERVER": "https://10.0.0.1:6443/", "K8S_CA": str(ca), "K8S_TOKEN": str(tok)})
    )
    c = load(str(f), env={})
    assert (c.server, c.ca_file, c.token) == ("https://10.0.0.1:6443", str(ca), "abc")


@pytest.mark.parametrize(
    "text,msg",
    [
        ("{", "cannot use the Kubernetes config"),
        ("[]", "a JSON object"),
        ('{"K8S_API_SERVER": "x"}', "http(s)://"),
    ],
)
def test_bad_contiv_json(tmp_path, text, msg):
    f = tmp_path / "contiv.json"
    f.write_text(text)
    with pytest.raises(ValidationError, match=re.escape(msg)):
        load(str(f), env={})


def test_nothing_configured(tmp_path):
    assert load(str(tmp_path / "absent.json"), env={}) is None
    empty = tmp_path / "contiv.json"
    empty.write_text("{}")  # no K8S_API_SERVER: the in-cluster service account, if any
    assert load(str(empty), env={}) is None
    # service-account env without its token file: not in a cluster
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    import os

    if not os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        assert load(str(tmp_path / "absent.json"), env=env) is None
