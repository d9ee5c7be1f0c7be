"""The OpenAPI document netmaster generates (contivpy/netmaster/api/openapi.py), without a server:
it covers every route of the real application, its patterns accept exactly what the model's
regexes accept, and nothing is built before the first request."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contivpy.model.objects import SPECS
from contivpy.netmaster.api import openapi
from contivpy.netmaster.api.app import make_app
from contivpy.netmaster.api.keys import LeaderState

FIELDS = [(s.name, f) for s in SPECS.values() for f in s.fields if f.pattern is not None]


def _app():
    config = SimpleNamespace(auth=False, cluster_mode="docker", control_url="", control_ip="127.0.0.1")
    app = make_app(SimpleNamespace(extras={}), config, None, LeaderState())
    return app


def test_every_route_of_the_app_is_described_and_nothing_built_at_start():
    app = _app()
    assert app[openapi.DOC] == {}  # built by the first GET, not by make_app
    doc = openapi.build(openapi.routes_of(app), version="t")
    json.dumps(doc)
    ops = [(p, m, op) for p, v in doc["paths"].items() for m, op in v.items()]
    assert not [(p, m) for p, m, op in ops if op.get("x-undocumented")]
    assert len(ops) > 90
    assert "/api/v1/openapi.json" in doc["paths"]
    for spec in SPECS.values():
        assert doc["components"]["schemas"][spec.go + "Request"]["required"] == spec.required
        assert doc["components"]["schemas"][spec.go]["required"][0] == "key"


def test_required_fields_follow_the_rules():
    assert SPECS["network"].required == ["tenantName", "networkName", "encap", "subnet"]
    assert SPECS["rule"].required == ["tenantName", "policyName", "ruleId", "action", "direction"]
    assert "nwType" not in SPECS["network"].required  # has a default


@pytest.mark.parametrize(("obj", "f"), FIELDS, ids=[f"{o}.{f.name}" for o, f in FIELDS])
def test_document_pattern_accepts_what_the_model_accepts(obj, f):
    pattern = openapi.ecma(f.pattern)
    assert pattern.startswith("^(?:") and pattern.endswith(")$")

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern, fullmatch=True))
    def same(value):
        assert f.regex.fullmatch(value), (obj, f.name, value)

    same()
    for probe in ("", "a", "a:b", "1.2.3.4", "10.0.0.0/8", "-a", "yes", "vlan", "global"):
        assert bool(re.search(pattern, probe)) == bool(f.regex.fullmatch(probe)), (obj, f.name, probe)
