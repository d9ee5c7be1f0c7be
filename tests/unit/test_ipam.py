"""Pure IPAM math: first fit, gateway/pool reservation, listings, preferred-address fix."""

import pytest

from contivpy.common.errors import ResourceExhaustedError, ValidationError
from contivpy.model.state import EndpointGroupState
from contivpy.netmaster import ipam


def net(subnet="10.1.1.0/24", gateway="", name="test", tenant="default"):
    return ipam.new_network_state(
        network=name, tenant=tenant, nw_type="data", encap="vxlan", subnet=subnet, gateway=gateway
    )


def test_state_fields_like_original():
    st = net("10.103.1.0/24", name="test-net")
    assert st.ipAllocMap == "AAAAAAAAAQAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAACAAAAAAAAAAA=="
    assert (st.id, st.subnetIP, st.subnetLen, st.ipAddrRange, st.networkTag) == (
        "test-net.default",
        "10.103.1.0",
        24,
        "10.103.1.0-10.103.1.255",
        "test-net.default",
    )
    bad = net("10.1.1.5/24", name="badsub3")
    assert (bad.subnetIP, bad.ipAddrRange) == ("10.1.1.0", "10.1.1.5-10.1.1.255")
    assert ipam.list_available(bad) == "10.1.1.1-10.1.1.254"
    gw = net("20.1.1.0/24", "20.1.1.254", name="n2", tenant="t1")
    assert ipam.allocate(gw) == "20.1.1.1"
    assert gw.ipAllocMap == "AAAAAAAAAQAAAAAAAAAAAwAAAAAAAAAAAAAAAAAAAADAAAAAAAAAAA=="
    assert gw.epAddrCount == 1
    assert ipam.list_allocated(gw) == "20.1.1.1, 20.1.1.254"
    assert ipam.list_available(gw) == "20.1.1.2-20.1.1.253"


def test_endpoint_create_delete_allocations():
    """test/integration TestEndpointCreateDelete (docs/original.md §7.2)."""
    st = net()
    assert ipam.list_available(st) == "10.1.1.1-10.1.1.254" and ipam.list_allocated(st) == ""
    assert ipam.allocate(st) == "10.1.1.1"
    assert ipam.list_allocated(st) == "10.1.1.1"
    assert ipam.allocate(st, preferred="10.1.1.5") == "10.1.1.5"
    assert ipam.list_allocated(st) == "10.1.1.1, 10.1.1.5"
    assert ipam.list_available(st) == "10.1.1.2-10.1.1.4, 10.1.1.6-10.1.1.254"
    assert ipam.release(st, None, "10.1.1.5") and ipam.release(st, None, "10.1.1.1")
    assert ipam.list_available(st) == "10.1.1.1-10.1.1.254" and st.epAddrCount == 0
    assert [ipam.allocate(st) for _ in range(10)][-1] == "10.1.1.10"
    assert ipam.list_allocated(st) == "10.1.1.1-10.1.1.10"


def test_preferred_taken_refused_and_reserve_idempotent():
    st = net(gateway="10.1.1.254")
    ipam.allocate(st, preferred="10.1.1.7")
    for ip in ("10.1.1.7", "10.1.1.254", "10.1.1.0", "10.1.1.255"):
        with pytest.raises(ResourceExhaustedError, match=f"ip address {ip} is not available"):
            ipam.allocate(st, preferred=ip)
    with pytest.raises(ValidationError, match="exceeding beyond subnet"):
        ipam.allocate(st, preferred="10.1.2.7")
    ipam.reserve(st, None, "10.1.1.7")
    assert st.epAddrCount == 1
    ipam.reserve(st, None, "10.1.1.8")
    assert st.epAddrCount == 2


def test_reserved_never_released_and_exhaustion():
    st = net("10.1.1.0/30", gateway="10.1.1.2")
    assert ipam.allocate(st) == "10.1.1.1"
    with pytest.raises(ResourceExhaustedError) as ei:
        ipam.allocate(st)
    assert str(ei.value) == "auto allocation failed - address exhaustion in subnet 10.1.1.0/30"
    for ip in ("10.1.1.0", "10.1.1.2", "10.1.1.3"):
        assert not ipam.release(st, None, ip)
    assert ipam.list_allocated(st) == "10.1.1.1-10.1.1.2"


def test_range_subnet():
    st = net("20.1.1.10-20.1.1.12/24")
    assert ipam.list_available(st) == "20.1.1.10-20.1.1.12"
    assert [ipam.allocate(st) for _ in range(3)] == ["20.1.1.10", "20.1.1.11", "20.1.1.12"]
    with pytest.raises(ResourceExhaustedError, match="exhaustion in subnet 20.1.1.0/24"):
        ipam.allocate(st)
    assert ipam.list_allocated(st) == "20.1.1.10-20.1.1.12"
    assert not ipam.release(st, None, "20.1.1.9")


def test_gateway_outside_subnet():
    with pytest.raises(ValidationError) as ei:
        net("10.1.2.0/24", gateway="10.9.9.1")
    assert str(ei.value) == "hostIP 10.9.9.1 is exceeding beyond subnet 10.1.2.0/24, hostID 526081"


def epg(name="g1"):
    return EndpointGroupState(id=f"{name}:default", groupName=name, tenantName="default", networkName="test")


def test_epg_pools():
    """TestEndpointGroupIPPoolCreateDelete-style expectations (§7.2)."""
    st = net("10.3.1.0/24", gateway="10.3.1.254")
    g1, g2 = epg("g1"), epg("g2")
    ipam.attach_pool(st, g1, "10.3.1.10-10.3.1.20")
    assert ipam.list_allocated(st) == "10.3.1.10-10.3.1.20, 10.3.1.254"
    assert ipam.epg_list_available(st, g1) == "10.3.1.10-10.3.1.20"
    assert ipam.allocate(st, g1) == "10.3.1.10"
    assert ipam.allocate(st) == "10.3.1.1"  # plain endpoint of the network: outside the pool
    assert ipam.epg_list_allocated(st, g1) == "10.3.1.10"
    assert ipam.epg_list_available(st, g1) == "10.3.1.11-10.3.1.20"
    for bad, msg in [
        ("10.3.1.15-10.3.1.30", "ip address 10.3.1.15 is not available"),
        ("10.3.1.0-10.3.1.5", "ip address 10.3.1.0 is not available"),
        ("10.3.1.250-10.3.1.255", "ip address 10.3.1.254 is not available"),
        ("10.3.2.1-10.3.2.5", "EPG ip-pool must be a subset of network 10.3.1.0/24"),
        ("10.3.1.0/24", "invalid ip-pool 10.3.1.0/24"),
    ]:
        with pytest.raises(ValidationError, match=msg):
            ipam.attach_pool(st, epg("bad"), bad)
    ipam.attach_pool(st, g2, "10.3.1.30-10.3.1.30")
    assert ipam.allocate(st, g2) == "10.3.1.30"
    with pytest.raises(ResourceExhaustedError) as ei:
        ipam.allocate(st, g2)
    assert str(ei.value) == "auto allocation failed - address exhaustion in pool 10.3.1.30-10.3.1.30"
    assert ipam.owner_of(st, [g1, g2], "10.3.1.30") is g2
    assert ipam.release(st, g2, "10.3.1.30")
    assert not ipam.release(st, g1, "10.3.1.25")  # outside g1's pool: reserved
    ipam.detach_pool(st, g2)
    ipam.release(st, g1, "10.3.1.10")
    ipam.detach_pool(st, g1)
    assert ipam.list_allocated(st) == "10.3.1.1, 10.3.1.254"


def test_epg_without_pool_lists_nothing():
    st = net()
    g = epg()
    assert ipam.epg_list_available(st, g) == "" and ipam.epg_list_allocated(st, g) == ""


def test_ipv6():
    st = ipam.new_network_state(
        network="v6",
        tenant="default",
        nw_type="data",
        encap="vxlan",
        subnet="10.1.1.0/24",
        ipv6_subnet="2001::/100",
        ipv6_gateway="2001::1",
    )
    assert st.ipv6AllocMap == {"::1": True}
    assert ipam.allocate_v6(st) == "2001::2"
    assert ipam.allocate_v6(st) == "2001::3"
    with pytest.raises(ResourceExhaustedError):
        ipam.allocate_v6(st, preferred="2001::3")
    ipam.release_v6(st, "2001::2")
    assert "::2" not in st.ipv6AllocMap


def test_check_endpoint_address_says_why_an_address_is_never_an_endpoints():
    st = net("10.5.1.0/24", "10.5.1.254", name="tiun")
    assert ipam.check_endpoint_address(st, None, "10.5.1.7") == 7
    for ip, why in [
        ("10.5.1.0", "network address"),
        ("10.5.1.255", "broadcast address"),
        ("10.5.1.254", "gateway of network tiun"),
        ("10.5.2.1", "exceeding beyond subnet"),
        ("10.5.1.256", "invalid ip address"),
        ("", "invalid ip address"),
    ]:
        with pytest.raises(ValidationError, match=why):
            ipam.check_endpoint_address(st, None, ip)
    rng = net("10.5.2.10-10.5.2.20/24", name="tiur")
    with pytest.raises(ValidationError, match="outside the address range 10.5.2.10-10.5.2.20"):
        ipam.check_endpoint_address(rng, None, "10.5.2.9")
    epg = EndpointGroupState(groupName="tiug")
    ipam.attach_pool(st, epg, "10.5.1.100-10.5.1.110")
    assert ipam.check_endpoint_address(st, epg, "10.5.1.100") == 100
    with pytest.raises(ValidationError, match="outside the ip pool 10.5.1.100-10.5.1.110 of group tiug"):
        ipam.check_endpoint_address(st, epg, "10.5.1.99")
    assert ipam.is_used(st, None, "10.5.1.100") and not ipam.is_used(st, epg, "10.5.1.100")


def test_check_endpoint_address_v6():
    st = ipam.new_network_state(
        network="tiu6", tenant="default", nw_type="data", encap="vxlan", subnet="10.6.1.0/24",
        ipv6_subnet="2001:db8:6::/120", ipv6_gateway="2001:db8:6::1",
    )  # fmt: skip
    assert ipam.check_endpoint_address_v6(st, "2001:db8:6::5") == "::5"
    for ip, why in [
        ("2001:db8:6::", "reserved"),
        ("2001:db8:6::ff", "reserved"),
        ("2001:db8:6::1", "gateway"),
        ("2001:db8:7::1", "exceeding beyond subnet"),
        ("zz::1", "invalid ipv6 address"),
    ]:
        with pytest.raises(ValidationError, match=why):
            ipam.check_endpoint_address_v6(st, ip)
    assert ipam.is_used_v6(st, "2001:db8:6::1") and not ipam.is_used_v6(st, "2001:db8:6::5")
    with pytest.raises(ValidationError, match="no IPv6 subnet"):
        ipam.check_endpoint_address_v6(net(name="tiu4"), "2001:db8:6::5")
