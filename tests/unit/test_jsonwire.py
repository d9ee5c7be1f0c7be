"""common/jsonwire: Go's encoding/json wording for every decode failure, never Python's."""

from __future__ import annotations

import pytest

from contivpy.common import jsonwire
from contivpy.common.errors import ValidationError
from contivpy.common.jsonwire import Struct

REQ = Struct(
    "master.Req",
    {
        "Name": "string",
        "On": "bool",
        "N": "int",
        "Labels": "map[string]string",
        "Sub": Struct("x.Sub", {"A": "string"}),
    },
)


@pytest.mark.parametrize(
    "raw,msg",
    [
        (b"", "unexpected end of JSON input"),
        (b"   ", "unexpected end of JSON input"),
        (b"{bad", "invalid character 'b' looking for beginning of object key string"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
        (b"{} x", "invalid character 'x' after top-level value"),
        (b"nope", "invalid character 'n' looking for beginning of value"),
        (b'{"a": "x', "unexpected end of JSON input"),
        (b"\xff", "invalid UTF-8 in request body"),
        (b"[" * 5000, "exceeded max depth"),
        (b"[" * 101 + b"]" * 101, "exceeded max depth"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, "exceeded max depth"),
    ],
)
def test_loads_errors_in_go_wording(raw, msg):
    with pytest.raises(ValidationError) as e:
        jsonwire.loads(raw)
    assert str(e.value) == msg


def test_loads_accepts_depth_limit_and_empty_as_null():
    assert jsonwire.loads(b"[" * 100 + b"]" * 100) is not None
    assert jsonwire.loads(b"", empty=None) is None
    with pytest.raises(ValidationError, match="^EOF$"):
        jsonwire.loads(b"", empty="EOF")


@pytest.mark.parametrize(
    "value,msg",
    [
        ([1], "json: cannot unmarshal array into Go value of type master.Req"),
        ("s", "json: cannot unmarshal string into Go value of type master.Req"),
        ({"Name": 1}, "json: cannot unmarshal number into Go struct field Req.Name of type string"),
        ({"Name": True}, "json: cannot unmarshal bool into Go struct field Req.Name of type string"),
        ({"On": "yes"}, "json: cannot unmarshal string into Go struct field Req.On of type bool"),
        ({"N": 1.5}, "json: cannot unmarshal number into Go struct field Req.N of type int"),
        ({"N": False}, "json: cannot unmarshal bool into Go struct field Req.N of type int"),
        (
            {"Labels": []},
            "json: cannot unmarshal array into Go struct field Req.Labels of type map[string]string",
        ),
        (
            {"Labels": {"a": 1}},
            "json: cannot unmarshal number into Go struct field Req.Labels of type string",
        ),
        ({"Sub": "x"}, "json: cannot unmarshal string into Go struct field Req.Sub of type x.Sub"),
        ({"Sub": {"A": {}}}, "json: cannot unmarshal object into Go struct field Req.Sub.A of type string"),
    ],
)
def test_struct_type_errors(value, msg):
    with pytest.raises(ValidationError) as e:
        REQ.check(value)
    assert str(e.value) == msg


def test_struct_like_go():
    # case-insensitive names (the exact one wins), unknown fields ignored, null = unset
    out = REQ.check({"name": "a", "Name": "b", "n": 2.0, "x": [1], "On": None, "Labels": {"k": None}})
    assert out == {"Name": "b", "N": 2, "Labels": {"k": ""}}
    assert REQ.check(None) == {}


def test_lone_surrogates_refused_pairs_kept():
    assert jsonwire.loads(b'{"a": ["\\ud83d\\ude00"]}') == {"a": ["\U0001f600"]}
    for raw in (b'{"a\\ud800": 1}', b'["x\\udfffy"]', b'"\\uDBFF"'):
        with pytest.raises(ValidationError) as e:
            jsonwire.loads(raw)
        assert str(e.value) == jsonwire.SURROGATE_ERROR
