"""netctl's structs (netctl/models.py) and netmaster's field tables (model/objects.py) describe
the same REST objects twice: netctl keeps its own copy because it must start without importing
the model layer's regexes and validators (its start-up time is a user-visible figure). This test
is what makes them one schema: every type, field, field order, kind, link-set and link agree."""

from __future__ import annotations

import pytest

from contivpy.model.objects import SPECS
from contivpy.netctl import models as netctl_models
from contivpy.netctl.models import STRUCTS

_KIND = {"str": "s", "int": "i", "list": "ls"}
_TYPES = sorted(SPECS)


@pytest.mark.parametrize("obj_type", _TYPES)
def test_netctl_struct_matches_model_spec(obj_type):
    spec = SPECS[obj_type]
    if spec.go in ("Volume", "VolumeProfile"):
        pytest.skip("volumes are refused by netmaster and netctl has no command for them")
    got = STRUCTS[spec.go]
    want = [("key", "s", None)] + [(f.name, _KIND[f.kind], None) for f in spec.fields]
    if spec.link_sets is not None:
        want.append(("link-sets", "S", f"{spec.go}LinkSets"))
    if spec.links is not None:
        want.append(("links", "S", f"{spec.go}Links"))
    assert got == want
    if spec.link_sets is not None:
        assert [n for n, _k, _s in STRUCTS[f"{spec.go}LinkSets"]] == sorted(spec.link_sets)
    if spec.links is not None:
        assert [(n, k, s) for n, k, s in STRUCTS[f"{spec.go}Links"]] == [(n, "S", "Link") for n in spec.links]


def test_every_model_type_is_covered():
    assert {s.go for s in SPECS.values()} - {"Volume", "VolumeProfile"} <= set(netctl_models._SPECS)
