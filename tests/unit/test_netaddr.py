"""Subnet / range / tag-range math (docs/original.md §4.2, §7.1 valid and invalid cases)."""

import pytest

from contivpy.common import netaddr
from contivpy.common.errors import ValidationError


@pytest.mark.parametrize(
    "text,subnet,length,rng",
    [
        ("10.1.1.0/24", "10.1.1.0", 24, "10.1.1.0-10.1.1.255"),
        ("10.1.1.1/24", "10.1.1.0", 24, "10.1.1.1-10.1.1.255"),
        ("10.1.1.5/24", "10.1.1.0", 24, "10.1.1.5-10.1.1.255"),
        ("20.1.1.10-20.1.1.45/24", "20.1.1.0", 24, "20.1.1.10-20.1.1.45"),
        ("10.1.1.10-10.1.5.254/16", "10.1.0.0", 16, "10.1.1.10-10.1.5.254"),
        ("10.0.0.0/8", "10.0.0.0", 8, "10.0.0.0-10.255.255.255"),
        ("10.1.1.7/32", "10.1.1.7", 32, "10.1.1.7-10.1.1.7"),
    ],
)
def test_valid_subnets(text, subnet, length, rng):
    sn = netaddr.parse_subnet(text)
    assert (sn.subnet_str, sn.length, sn.ip_addr_range) == (subnet, length, rng)


@pytest.mark.parametrize(
    "text,msg",
    [
        ("10.1.1.10-20/24", "subnet string invalid format"),
        ("10.1.1.10-10.1.20/24", "subnet string invalid format"),
        ("10.1.1/24", "subnet string invalid format"),
        ("10.1.1.256/24", "subnet string invalid format"),
        ("10.1.1.1-70/26", "subnet string invalid format"),
        ("10.1.1.0/33", "subnet string invalid format"),
        ("foo", "subnet string invalid format"),
        ("300.1.1.0/24", "subnet string invalid format"),
        ("", "subnet string invalid format"),
        ("10.1.1.20-10.1.1.10/24", "Network subnet format not valid"),
        ("10.1.1.10-10.1.2.10/24", "Network subnet format not valid"),
        ("10.1.1.0/7", "subnet length 7 not supported"),
    ],
)
def test_invalid_subnets(text, msg):
    with pytest.raises(ValidationError) as ei:
        netaddr.parse_subnet(text)
    assert str(ei.value) == msg


@pytest.mark.parametrize(
    "a,b,overlap",
    [
        ("10.1.1.0/24", "10.1.1.0/24", True),
        ("10.1.1.0/16", "10.1.2.0/24", True),
        ("10.1.2.0/24", "10.1.1.0/16", True),
        ("10.1.1.0/24", "10.1.2.0/24", False),
        ("20.1.1.10-20.1.1.45/24", "20.1.1.46-20.1.1.100/24", False),
        ("20.1.1.10-20.1.1.45/24", "20.1.1.45-20.1.1.100/24", True),
        ("20.1.1.10-20.1.1.45/24", "20.1.1.0/24", True),
    ],
)
def test_overlap(a, b, overlap):
    assert netaddr.subnets_overlap(a, b) is overlap


def test_overlap_v6():
    assert netaddr.subnets_overlap_v6("2001:2000::/32", "2001:2000:1234:4422::/64")
    assert not netaddr.subnets_overlap_v6("2001:2000::/32", "2001:2001::/32")


def test_host_id_and_gateway_outside():
    assert netaddr.host_id(netaddr.ip_to_int("10.1.1.0"), 24, "10.1.1.254") == 254
    with pytest.raises(ValidationError) as ei:
        netaddr.host_id(netaddr.ip_to_int("10.1.2.0"), 24, "10.9.9.1")
    assert str(ei.value) == "hostIP 10.9.9.1 is exceeding beyond subnet 10.1.2.0/24, hostID 526081"


def test_ip_pool():
    sn = netaddr.parse_subnet("10.3.1.0/24")
    assert netaddr.parse_ip_pool("10.3.1.10-10.3.1.20", sn) == (10, 20)
    with pytest.raises(ValidationError, match="invalid ip-pool 10.3.1.0/24"):
        netaddr.parse_ip_pool("10.3.1.0/24", sn)
    with pytest.raises(ValidationError, match="must be a subset of network 10.3.1.0/24"):
        netaddr.parse_ip_pool("10.3.2.1-10.3.2.5", sn)
    with pytest.raises(ValidationError, match="invalid ip-pool"):
        netaddr.parse_ip_pool("10.3.1.20-10.3.1.10", sn)


def test_mac_and_rendering():
    assert netaddr.mac_from_ip("10.1.1.2") == "02:02:0a:01:01:02"
    assert netaddr.mac_from_ip("20.1.1.1") == "02:02:14:01:01:01"
    base = netaddr.ip_to_int("10.1.1.0")
    pairs = netaddr.runs([2, 3, 4, 6, 7, 254])
    assert netaddr.render_ip_runs(base, pairs) == "10.1.1.2-10.1.1.4, 10.1.1.6-10.1.1.7, 10.1.1.254"
    assert netaddr.render_runs(netaddr.runs([1, 2])) == "1-2"
    assert netaddr.render_runs(netaddr.runs([100])) == "100"


@pytest.mark.parametrize(
    "text,kind,expected",
    [
        ("1-4094", "vlan", [(1, 4094)]),
        ("1-10,20-30", "vlan", [(1, 10), (20, 30)]),
        ("1-10000", "vxlan", [(1, 10000)]),
    ],
)
def test_tag_ranges_valid(text, kind, expected):
    assert netaddr.parse_tag_ranges(text, kind) == expected


@pytest.mark.parametrize(
    "text,kind,msg",
    [
        ("1-10,20-30", "vxlan", "do not support more than 2 vxlan tag ranges"),
        ("1-5000", "vlan", "invalid range 1-5000, vlan values exceed 4095 max allowed"),
        ("1-70000", "vxlan", "invalid range 1-70000, vlan values exceed 65535 max allowed"),
        ("1-20000", "vxlan", "does not allow vxlan range to exceed 16000 range 1-20000"),
        ("10-5", "vlan", "invalid range 10-5, min is greater than max"),
        ("0-5", "vlan", "invalid range 0-5, values less than 1"),
        ("1-2-3", "vlan", "invalid tags 1-2-3, correct '10-50,70-100'"),
    ],
)
def test_tag_ranges_invalid(text, kind, msg):
    with pytest.raises(ValidationError) as ei:
        netaddr.parse_tag_ranges(text, kind)
    assert str(ei.value) == msg
