"""VLAN / VXLAN tag resources, including the range-change scenarios of docs/original.md §7.1."""

import pytest

from contivpy.common.errors import ConflictError, ResourceExhaustedError
from contivpy.netmaster.tags import VlanResource, VxlanResource


def test_vlan_allocation_and_errors():
    r = VlanResource.new("100-200")
    with pytest.raises(ResourceExhaustedError) as ei:
        r.allocate(50)
    assert str(ei.value) == "requested vlan not available - vlan:50"
    assert r.allocate(0) == 100
    with pytest.raises(ResourceExhaustedError, match="requested vlan not available - vlan:100"):
        r.allocate(100)
    assert r.allocate(150) == 150
    assert r.in_use_str() == (2, "100, 150")
    r.release(100)
    assert r.allocate(0) == 100
    small = VlanResource.new("5-5")
    small.allocate()
    with pytest.raises(ResourceExhaustedError, match="^no vlans available$"):
        small.allocate()


def test_vlan_range_change_scenario():
    r = VlanResource.new("1-4094")
    for v in (10, 11, 300):
        r.allocate(v)
    r.redefine("9-301")
    with pytest.raises(ResourceExhaustedError):
        r.allocate(10)
    with pytest.raises(ResourceExhaustedError):
        r.allocate(302)
    assert r.allocate(299) == 299
    for bad in ("50-301", "1-200"):
        with pytest.raises(ConflictError) as ei:
            r.redefine(bad)
        assert str(ei.value) == "cannot update the vlan range due to existing vlans 10-11, 299-300"
    r.redefine("1-800")
    assert r.in_use_str() == (4, "10-11, 299-300")
    assert r.allocate(0) == 1


def test_vxlan_first_network_and_json():
    r = VxlanResource.new("1-10000")
    assert r.allocate() == (1, 1)
    assert r.allocate() == (2, 2)
    assert r.oper_json().startswith('{"id":"global","freeVXLANs":"AAAAAAAAQAD_________-P')
    assert '"FreeVXLANsStart":0' in r.state_json()
    assert r.in_use_str() == (2, "1-2")
    again = VxlanResource.load(r.state_json(), r.oper_json())
    assert again.allocate() == (3, 3)


def test_vxlan_range_change_scenario():
    r = VxlanResource.new("1-10000")
    assert r.allocate(1000) == (1000, 1)
    assert r.allocate(1001) == (1001, 2)
    assert r.allocate(2000) == (2000, 3)
    r.redefine("1000-2500")
    assert r.start == 999
    with pytest.raises(ResourceExhaustedError, match="^requested vxlan not available$"):
        r.allocate(1000)
    with pytest.raises(ResourceExhaustedError, match="^requested vxlan not available$"):
        r.allocate(2501)
    with pytest.raises(ResourceExhaustedError, match="requested vxlan is out of range"):
        r.allocate(999)
    assert r.allocate(2200) == (2200, 4)
    for bad in ("2000-10000", "1000-2000"):
        with pytest.raises(ConflictError) as ei:
            r.redefine(bad)
        assert str(ei.value) == "cannot update the vxlan range due to existing vxlans 1000-1001, 2000, 2200"
    r.redefine("1000-9000")
    assert r.allocate() == (1002, 5)
    r.release(1002, 5)
    assert r.allocate() == (1002, 5)
