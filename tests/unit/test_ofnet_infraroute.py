"""contivh1 routed flows (ofnet/infraroute.py) built by the agent from its state, without a switch.

Checks: the owner follows endpoint changes of the VRF (local, remote, other tenants excluded), the flows
match a VLAN where they rewrite it (OpenFlow 1.3 consistency, which the switch enforces), removal clears
them, and a port that is not a local endpoint is refused with state untouched.
"""

from __future__ import annotations

import pytest

from contivpy.common.errors import NotFoundError, ValidationError
from contivpy.ofnet.agent import OfnetAgent
from contivpy.ofnet.infraroute import ARP_PRIO, ROUTE_PRIO
from contivpy.ofnet.types import LocalEndpoint, RemoteEndpoint


def owner(ag: OfnetAgent) -> list:
    return ag.cache.desired_flows("iroute:7")


async def test_routes_follow_the_vrf_endpoints():
    ag = OfnetAgent("br", "vxlan")
    await ag.add_network(1, 5001, "10.1.1.254", "default", "10.1.1.0/24", vrf_id=1)  # data
    await ag.add_network(2, 5002, "", "default", "10.100.0.0/24", vrf_id=1)  # contivh1
    await ag.add_network(3, 5003, "10.1.1.254", "other", "10.1.1.0/24", vrf_id=2)  # overlapping tenant
    await ag.add_vtep(9, "192.168.1.2")
    await ag.add_local_endpoint(LocalEndpoint(7, "02:02:0a:64:00:01", "10.100.0.1", 2, vrf="default"))
    await ag.add_local_endpoint(LocalEndpoint(5, "02:02:0a:01:01:01", "10.1.1.1", 1, vrf="default"))
    await ag.add_local_endpoint(LocalEndpoint(6, "02:02:0a:01:01:02", "10.1.1.2", 3, vrf="other"))
    with pytest.raises(NotFoundError):
        await ag.set_infra_router(8)
    assert ag._iroute is None
    await ag.set_infra_router(7)
    flows = owner(ag)
    routes = [f for f in flows if f.priority == ROUTE_PRIO]
    arps = [f for f in flows if f.priority == ARP_PRIO]
    assert len(routes) == 2 and len(arps) == 2  # to 10.1.1.1 and back to 10.100.0.1; ARP self + ep
    assert all("vlan_vid" in str(f.match) for f in flows)
    assert not any("10.1.1.2" in str(f.match) for f in flows), "other tenant not routed"
    await ag.add_remote_endpoint(
        RemoteEndpoint("02:02:0a:01:01:03", "10.1.1.3", "192.168.1.2", 5001, vrf="default")
    )
    await ag.add_remote_endpoint(
        RemoteEndpoint("02:02:0a:64:00:02", "10.100.0.2", "192.168.1.2", 5002, vrf="default")
    )
    assert len([f for f in owner(ag) if f.priority == ROUTE_PRIO]) == 4
    await ag.remove_local_endpoint(5)
    assert len([f for f in owner(ag) if f.priority == ROUTE_PRIO]) == 3
    await ag.set_infra_router(None)
    assert owner(ag) == []


async def test_only_vxlan():
    ag = OfnetAgent("br", "vlan")
    with pytest.raises(ValidationError):
        await ag.set_infra_router(1)
