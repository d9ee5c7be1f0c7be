"""The Docker plugin's request structs (netplugin/docker/wire.py): parsed like Go's encoding/json
into libnetwork's structs: nulls keep zero values, unknown fields ignored, names case-insensitive,
wrong types refused in Go's wording, never a Python message."""

from __future__ import annotations

import pytest

from contivpy.common.errors import ValidationError
from contivpy.netplugin.docker import wire


def test_what_docker_sends_parses_with_nulls_and_extras():
    r = wire.parse(
        wire.CreateEndpointRequest,
        {"NetworkID": "n1", "EndpointID": "e1", "Interface": {"Address": "10.1.1.2/24", "MacAddress": None},
         "Options": None, "Unknown": [1, 2]},
    )  # fmt: skip
    assert (r.NetworkID, r.EndpointID, r.Interface.Address, r.Interface.MacAddress, r.Options) == (
        "n1", "e1", "10.1.1.2/24", "", {},
    )  # fmt: skip
    n = wire.parse(
        wire.CreateNetworkRequest, {"networkid": "x", "IPv4Data": [{"Pool": "10.1.1.0/24"}], "IPv6Data": None}
    )
    assert n.NetworkID == "x" and n.IPv4Data[0].Pool == "10.1.1.0/24" and n.IPv6Data == []
    assert wire.parse(wire.RequestPoolRequest, {}).V6 is False


@pytest.mark.parametrize(
    "model,body,msg",
    [
        (wire.CreateEndpointRequest, {"EndpointID": 5},
         "json: cannot unmarshal number into Go struct field CreateEndpointRequest.EndpointID of type string"),
        (wire.CreateEndpointRequest, {"Interface": "x"},
         "json: cannot unmarshal string into Go struct field CreateEndpointRequest.Interface of type api.EndpointInterface"),
        (wire.CreateNetworkRequest, {"IPv4Data": {}},
         "json: cannot unmarshal object into Go struct field CreateNetworkRequest.IPv4Data of type []api.IPAMData"),
        (wire.RequestPoolRequest, {"V6": "yes"},
         "json: cannot unmarshal string into Go struct field RequestPoolRequest.V6 of type bool"),
        (wire.JoinRequest, {"Options": []},
         "json: cannot unmarshal array into Go struct field JoinRequest.Options of type map[string]interface {}"),
    ],
)  # fmt: skip
def test_wrong_types_are_refused_in_go_wording(model, body, msg):
    with pytest.raises(ValidationError) as e:
        wire.parse(model, body)
    assert str(e.value) == msg
