"""The inspect ``Oper`` declarations (contivpy/model/oper.py) and what is derived from them: they
cover exactly the registry's types with an Oper, carry the original's JSON names in its struct
order, render with omitempty, refuse undeclared fields, and the OpenAPI document's Oper schemas
are generated from them (contivpy/netmaster/api/openapi.py)."""

from __future__ import annotations

import dataclasses

import pytest

from contivpy.model.objects import SPECS
from contivpy.model.oper import OPER, STRUCTS, EndpointOper, NetworkOper, TenantOper
from contivpy.netmaster import registry as reg
from contivpy.netmaster.api import openapi

# The original's inspect Oper JSON names (docs/rest-api.md "Inspect Oper").
ORIGINAL = {
    "EndpointOper": "key containerID containerName endpointGroupId endpointGroupKey endpointID homingHost "
    "intfName ipAddress labels macAddress network serviceName virtualPort vtepIP",
    "NetworkOper": "allocatedAddressesCount allocatedIPAddresses availableIPAddresses endpoints externalPktTag "
    "networkTag numEndpoints pktTag",
    "EndpointGroupOper": "allocatedIPAddresses availableIPAddresses endpoints externalPktTag groupTag "
    "numEndpoints pktTag",
    "PolicyOper": "endpoints numEndpoints policyViolations",
    "ServiceLBOper": "numProviders providers serviceVip",
    "TenantOper": "endpointGroups endpoints networks policies servicelbs totalAppProfiles totalEPGs "
    "totalEndpoints totalNetprofiles totalNetworks totalPolicies totalServicelbs",
    "GlobalOper": "clusterMode defaultNetwork freeVXLANsStart numNetworks vlansInUse vxlansInUse",
    "BgpOper": "adminStatus neighborStatus numRoutes routes",
    "AciGwOper": "numAppProfiles",
}


def test_declared_for_exactly_the_types_with_oper():
    assert set(OPER) == {t.name for t in reg.TYPES.values() if t.has_oper}
    assert set(OPER) <= set(SPECS)


@pytest.mark.parametrize("cls", STRUCTS, ids=[c.GO for c in STRUCTS])
def test_original_names_in_go_struct_order(cls):
    assert list(cls.NAMES) == ORIGINAL[cls.GO].split()
    rest = [n for n in cls.NAMES if n != "key"]
    assert rest == sorted(rest)  # the generated Go structs: fields sorted by name, key first
    assert "key" not in cls.NAMES[1:]


def test_to_dict_is_omitempty_in_declaration_order_and_nested():
    ep = EndpointOper(endpointID="e1", ipAddress=["10.0.0.1", ""], labels="map[]", containerID="c1")
    assert list(ep.to_dict()) == ["containerID", "endpointID", "ipAddress", "labels"]
    t = TenantOper(totalNetworks=2, networks=[NetworkOper(pktTag=7, endpoints=[ep]), NetworkOper()])
    assert t.to_dict() == {
        "networks": [{"endpoints": [ep.to_dict()], "pktTag": 7}, {}],
        "totalNetworks": 2,
    }
    assert NetworkOper().to_dict() == {} and NetworkOper().empty()
    assert not NetworkOper(numEndpoints=1).empty()


def test_undeclared_field_refused_at_construction():
    with pytest.raises(TypeError):
        NetworkOper(numEndpoint=1)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):  # slots: no attribute outside the declaration
        NetworkOper().extra = 1  # type: ignore[attr-defined]


def test_document_oper_schemas_come_from_the_declarations():
    doc = openapi.build([("GET", "/api/v1/inspect/{plural}/{key}/")], version="t")
    schemas = doc["components"]["schemas"]
    for cls in STRUCTS:
        s = schemas[cls.GO]
        assert list(s["properties"]) == list(cls.NAMES)
        assert s["additionalProperties"] is False and "required" not in s
        for f in dataclasses.fields(cls):
            p = s["properties"][f.name]
            if p.get("type") == "array":
                assert p["minItems"] == 1
            elif p.get("type") == "string":
                assert p["minLength"] == 1
            else:
                assert p == {"type": "integer", "not": {"const": 0}}, (cls.GO, f.name)
    assert schemas["NetworkOper"]["properties"]["endpoints"]["items"] == {
        "$ref": "#/components/schemas/EndpointOper"
    }
    assert schemas["TenantOper"]["properties"]["networks"]["items"] == {
        "$ref": "#/components/schemas/NetworkOper"
    }
    assert schemas["EndpointOper"]["properties"]["ipAddress"] == {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
    }
    for t in reg.TYPES.values():
        inspect = schemas["Inspect" + SPECS[t.name].go]
        if t.has_oper:
            assert inspect["properties"]["Oper"] == {"$ref": f"#/components/schemas/{OPER[t.name].GO}"}
            assert inspect["required"] == ["Config", "Oper"]
        else:
            assert "Oper" not in inspect["properties"]
    ep = doc["paths"]["/api/v1/inspect/endpoints/{key}/"]["get"]["responses"]["200"]
    assert ep["content"]["application/json"]["schema"]["properties"]["Oper"] == {
        "$ref": "#/components/schemas/EndpointOper"
    }
