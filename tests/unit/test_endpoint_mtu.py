"""Container MTU per bridge (``EndpointService.mtu``): ``--mtu N`` everywhere; ``--mtu auto`` follows
the original's HEAD: the lowest host link MTU on vlan-bridge ports, 50 less (VXLAN's overhead) on
vxlan-bridge ports."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from contivpy.netplugin import links
from contivpy.netplugin.datapath import VLAN_BRIDGE, VXLAN_BRIDGE
from contivpy.netplugin.managers.endpoint import EndpointService


def _service(mtu):
    return EndpointService(
        SimpleNamespace(mtu=mtu, ovs_datapath="netdev"), None, None, None, None, qos=object()
    )


async def test_auto_gives_the_vlan_bridge_the_host_mtu_and_vxlan_50_less(monkeypatch):
    reads = []

    async def host_mtu():
        reads.append(1)
        return 9000

    monkeypatch.setattr(links, "host_mtu", host_mtu)
    svc = _service("auto")
    assert await svc.mtu(VLAN_BRIDGE) == 9000
    assert await svc.mtu(VXLAN_BRIDGE) == 8950
    assert await svc.mtu() == 8950  # the host port and anything without a bridge: the vxlan rule
    assert len(reads) == 1  # the host's links are read once


@pytest.mark.parametrize("bridge", [VLAN_BRIDGE, VXLAN_BRIDGE])
async def test_a_number_applies_to_every_bridge(monkeypatch, bridge):
    async def host_mtu():
        raise AssertionError("not read with an explicit --mtu")

    monkeypatch.setattr(links, "host_mtu", host_mtu)
    assert await _service(1450).mtu(bridge) == 1450
