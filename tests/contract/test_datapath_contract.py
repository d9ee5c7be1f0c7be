"""Datapath contract: the same suite against FakeDatapath and the real Datapath (OVSDB + OpenFlow on an
ovsdb-server/ovs-vswitchd started by the fixture in its own network namespace).

It pins what the managers rely on (contivpy/netplugin/dpapi.py): idempotent adds, removes of absent
things are no-ops, VTEP ofports and VXLAN ports, OVS refusing a VXLAN peer that is not an address (a
port is left behind and removable), bad endpoint/rule/network data refused with the same error classes.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest

from contivpy.common.errors import ConflictError, ContivError, ExternalServiceError, ValidationError
from contivpy.netplugin.datapath import CTRL_PORTS, VXLAN_BRIDGE, Datapath, EpSpec, NetSpec
from contivpy.netplugin.dpapi import Datapath as DatapathProtocol
from contivpy.netplugin.fakedatapath import FakeDatapath
from tests.fixtures.ovs import OvsInstance, in_netns_socket

OVS_PREFIX = "tdpc"
NET = NetSpec("cn.default", "default", "vxlan", 11, 5011, "10.120.1.254", 24, "10.120.1.0/24")
NET2 = NetSpec("cn2.default", "default", "vxlan", 12, 5012, "10.120.2.254", 24, "10.120.2.0/24")
PEER = "10.120.9.9"


@contextlib.asynccontextmanager
async def real_datapath():
    import uuid

    from contivpy.netplugin.ofnet_flows import OfnetFlows
    from contivpy.ofnet import OfnetAgent

    ovs = OvsInstance(OVS_PREFIX, netns=f"{OVS_PREFIX}{uuid.uuid4().hex[:8]}")
    dp = None
    try:
        await asyncio.to_thread(ovs.start)
        cfg = SimpleNamespace(
            ovsdb=f"unix:{ovs.dir}/db.sock", ovs_datapath="netdev", vlan_uplinks=[], vxlan_port=4789
        )
        dp = Datapath(cfg)
        for br, port in CTRL_PORTS.items():  # controllers listen inside the OVS namespace
            fp = OfnetFlows(br, cfg)
            fp.agent = OfnetAgent(
                br, fp.kind, arp_mode="proxy", sock=in_netns_socket(ovs.netns, port=port), dns=False
            )
            await fp.start()
            dp.flows[br] = fp
        await dp.start()
        yield dp
    finally:
        if dp is not None:
            await dp.stop()
        await asyncio.to_thread(ovs.stop)


@pytest.fixture(params=["fake", pytest.param("real", marks=[pytest.mark.ovs, pytest.mark.root])])
async def dp(request):
    if request.param == "fake":
        yield FakeDatapath()
        return
    async with real_datapath() as d:
        yield d


def rep(ep_id: str, ip: str, mac: str, net: NetSpec = NET, vtep: str = PEER) -> EpSpec:
    return EpSpec(ep_id, net, ip, mac, 3, vtep_ip=vtep)


async def test_satisfies_the_protocol(dp):
    for name in (n for n in dir(DatapathProtocol) if not n.startswith("_")):
        assert callable(getattr(dp, name, None)), name


async def test_networks_idempotent_and_remove_absent_is_noop(dp):
    await dp.add_network(NET)
    await dp.add_network(NET)
    await dp.remove_network(NET2)  # never added
    await dp.remove_network(NET)
    await dp.remove_network(NET)


async def test_network_bad_data_refused(dp):
    with pytest.raises(ValidationError):
        await dp.add_network(NetSpec("novni.default", "default", "vxlan", 13, 0, "", 24))
    await dp.add_network(NET)
    with pytest.raises(ConflictError):  # the same VNI on another VLAN
        await dp.add_network(NetSpec("dup.default", "default", "vxlan", 14, NET.vni, "", 24))


async def test_vtep_ofport_ports_and_removal(dp):
    ofport = await dp.add_vtep(PEER)
    assert isinstance(ofport, int) and ofport > 0
    assert await dp.add_vtep(PEER) == ofport  # idempotent
    assert "vxif1012099" in await dp.vtep_ports()
    await dp.remove_vtep(PEER)
    await dp.remove_vtep(PEER)  # absent: no-op
    assert "vxif1012099" not in await dp.vtep_ports()
    assert await dp.remove_port(VXLAN_BRIDGE, "vxif1012099") is False


async def test_vtep_that_ovs_refuses_leaves_a_removable_port(dp):
    with pytest.raises(ExternalServiceError):
        await dp.add_vtep("bad-peer")
    assert "vxifbad-peer" in await dp.vtep_ports()
    await dp.remove_vtep("bad-peer")
    assert "vxifbad-peer" not in await dp.vtep_ports()


async def test_remote_endpoints_idempotent_and_validated(dp):
    await dp.add_network(NET)
    await dp.add_vtep(PEER)
    ep = rep("cn.default-r1", "10.120.1.5", "02:02:0a:78:01:05")
    await dp.add_remote_endpoint(ep)
    await dp.add_remote_endpoint(ep)
    await dp.remove_remote_endpoint(ep)
    await dp.remove_remote_endpoint(ep)  # absent: no-op
    with pytest.raises(ValidationError):
        await dp.add_remote_endpoint(rep("cn.default-r2", "10.120.1.6", "not-a-mac"))
    with pytest.raises(ValidationError):
        await dp.add_remote_endpoint(rep("cn.default-r3", "10.120.1.300", "02:02:0a:78:01:07"))


async def test_rules_bad_data_reported_not_raised(dp):
    assert await dp.add_rule({"rule_id": "c1", "priority": 1, "protocol": "tcp", "dst_port": 80}) == ""
    assert await dp.add_rule({"rule_id": "c1", "priority": 1, "protocol": "tcp", "dst_port": 80}) == ""
    err = await dp.add_rule({"rule_id": "c2", "priority": 1, "protocol": "icmp", "dst_port": 80})
    assert err and "port" in err
    await dp.remove_rule("c1")
    await dp.remove_rule("c1")
    await dp.remove_rule("never")


async def test_errors_are_contiv_errors(dp):
    """Datapath failures are ContivError subclasses (the reconciler logs them without a traceback)."""
    for bad in (
        dp.add_vtep("still-bad"),
        dp.add_network(NetSpec("x.default", "default", "vxlan", 15, 0, "", 24)),
    ):
        with pytest.raises(ContivError):
            await bad


async def test_host_port_refuses_a_subnet_that_is_not_a_16(dp):
    """Refused before anything is created (the real one would otherwise touch this netns's iptables)."""
    for bad in ("172.19.0.0/24", "not-a-subnet"):
        with pytest.raises(ValidationError):
            await dp.ensure_host_port(bad)
    assert await dp.vtep_ports() == []
