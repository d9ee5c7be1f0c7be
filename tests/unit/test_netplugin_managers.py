"""netplugin managers on their reconcilers, over the recording FakeDatapath (no root, milliseconds).

Wired as the daemon wires them (network in-use test, dependents). Covers dependency order (endpoints
wait for their network and VTEP; a network goes after its endpoints; a VTEP's endpoints go with it),
one failing key not blocking others nor the delete that clears it, permanent failures, the sync gate.
"""

from __future__ import annotations

import asyncio
import contextlib

from contivpy.common.errors import ConflictError, ValidationError
from contivpy.common.reconcile import Reconciler
from contivpy.model.state import NetworkState, OperEndpoint, ServiceLBState
from contivpy.netplugin.fakedatapath import FakeDatapath
from contivpy.netplugin.managers.endpoint import RemoteEndpointManager
from contivpy.netplugin.managers.network import NetworkManager
from contivpy.netplugin.managers.policy import PolicyManager
from contivpy.netplugin.managers.service import ServiceManager
from contivpy.netplugin.managers.vtep import VtepManager

ME, PEER, PEER2 = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def net(name: str, vlan: int) -> str:
    return NetworkState(
        id=f"{name}.default", tenant="default", pktTagType="vxlan", pktTag=vlan, extPktTag=5000 + vlan,
        subnetIP=f"10.1.{vlan}.0", subnetLen=24, gateway=f"10.1.{vlan}.254",
    ).to_json()  # fmt: skip


def oper(ep_id: str, net_id: str, ip: str, vtep: str = PEER, host: str = "h2") -> str:
    mac = "02:02:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
    return OperEndpoint(
        id=ep_id, netID=net_id, ipAddress=ip, macAddress=mac, homingHost=host, vtepIP=vtep
    ).to_json()


class Agent:
    """The managers wired like contivpy.netplugin.daemon.Agent does."""

    def __init__(self) -> None:
        self.dp = FakeDatapath()
        self.nets = NetworkManager(self.dp)
        self.vteps = VtepManager(self.dp, ME, remove_grace=0)
        self.remote = RemoteEndpointManager(self.dp, self.nets, self.vteps, "h1")
        self.policy = PolicyManager(self.dp)
        self.services = ServiceManager(self.dp)
        self.nets.in_use = self.remote.uses

    @property
    def recs(self) -> list[Reconciler]:
        return [self.nets.rec, self.vteps.rec, self.remote.rec, self.policy.rec, self.services.rec]

    async def idle(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not all(r.idle() for r in self.recs):
                for r in self.recs:
                    await r.wait_idle()

    def status(self) -> dict[str, dict]:
        return {r.name: r.status() for r in self.recs}


@contextlib.asynccontextmanager
async def running(a: Agent, synced: bool = True):
    tasks = [asyncio.create_task(r.run()) for r in a.recs]
    if synced:
        for r in a.recs:
            r.mark_synced()
    try:
        yield a
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def until(pred, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.002)


async def test_endpoint_waits_for_network_and_vtep_then_is_programmed():
    a = Agent()
    a.remote.on_update("n1.default-e1", oper("n1.default-e1", "n1.default", "10.1.1.5"))
    async with running(a):
        await a.idle()
        assert a.dp.remote == {}  # neither its network nor its VTEP is there: waits, no error
        assert a.status()["remoteEndpoints"]["n1.default-e1"]["state"] == "ok"
        a.nets.on_update("n1.default", net("n1", 1))
        await a.idle()
        assert a.dp.remote == {}
        a.vteps.on_update(f"{PEER}:4789", "{}")
        a.vteps.on_update(f"{ME}:4789", "{}")  # our own VTEP is ignored
        await a.idle()
    assert set(a.dp.remote) == {"n1.default-e1"}
    c = [m for m, _ in a.dp.calls]
    assert c.index("add_network") < c.index("add_vtep") < c.index("add_remote_endpoint")
    assert a.dp.calls_of("add_vtep") == [PEER]


async def test_failing_endpoint_does_not_block_others_and_its_delete_clears_it():
    a = Agent()
    # a long backoff: the delete below must not wait for it
    a.remote.rec = Reconciler(
        "remoteEndpoints", a.remote.reconcile, base_delay=30, max_delay=30,
        desired=lambda k: k in a.remote.desired or k in a.remote.applied,
    )  # fmt: skip
    a.nets.on_update("n1.default", net("n1", 1))
    a.vteps.on_update(f"{PEER}:4789", "{}")
    a.dp.fail("add_remote_endpoint", "bad")
    a.remote.on_update("bad", oper("bad", "n1.default", "10.1.1.9"))
    async with running(a):
        await until(lambda: a.status()["remoteEndpoints"].get("bad", {}).get("state") == "retrying")
        st = a.status()["remoteEndpoints"]["bad"]
        assert st["attempts"] == 1 and "refused by the switch" in st["lastError"] and st["nextRetryIn"] > 20
        # keys that come after it are programmed at once
        a.remote.on_update("good", oper("good", "n1.default", "10.1.1.10"))
        a.nets.on_update("n2.default", net("n2", 2))
        a.remote.on_update("good2", oper("good2", "n2.default", "10.1.2.10"))
        await until(lambda: set(a.dp.remote) == {"good", "good2"})
        assert "n2.default" in a.dp.networks
        # the delete that clears the bad key is processed now, not after its 30 s backoff
        a.remote.on_update("bad", None)
        await a.idle(timeout=2)
    assert "bad" not in a.status()["remoteEndpoints"]
    assert a.dp.calls_of("add_remote_endpoint").count("bad") == 1


async def test_network_removed_only_after_its_endpoints():
    a = Agent()
    a.nets.on_update("n1.default", net("n1", 1))
    a.vteps.on_update(f"{PEER}:4789", "{}")
    a.remote.on_update("e1", oper("e1", "n1.default", "10.1.1.5"))
    async with running(a):
        await a.idle()
        assert set(a.dp.remote) == {"e1"}
        a.nets.on_update("n1.default", None)  # network deleted while an endpoint still uses it
        await a.idle()
        assert "n1.default" in a.dp.networks and set(a.dp.remote) == {"e1"}
        a.remote.on_update("e1", None)
        await a.idle()
    assert a.dp.networks == {} and a.dp.remote == {}
    c = [m for m, _ in a.dp.calls]
    assert c.index("remove_remote_endpoint") < c.index("remove_network")
    assert a.status()["networks"] == {} and a.status()["remoteEndpoints"] == {}


async def test_vtep_leaving_takes_its_endpoints_and_refused_vtep_is_cleaned():
    a = Agent()
    a.nets.on_update("n1.default", net("n1", 1))
    for ip in (PEER, PEER2):
        a.vteps.on_update(f"{ip}:4789", "{}")
    a.remote.on_update("e1", oper("e1", "n1.default", "10.1.1.5", vtep=PEER))
    a.remote.on_update("e2", oper("e2", "n1.default", "10.1.1.6", vtep=PEER2))
    a.vteps.on_update("bad-peer:4789", "{}")  # OVS refuses it, a port is left
    async with running(a):
        await until(lambda: a.status()["vteps"].get("bad-peer", {}).get("state") == "retrying")
        await until(lambda: set(a.dp.remote) == {"e1", "e2"})
        a.vteps.on_update(f"{PEER}:4789", None)
        await until(lambda: set(a.dp.remote) == {"e2"})
        assert PEER not in a.dp.vteps
        a.vteps.on_update("bad-peer:4789", None)
        await a.idle(timeout=2)
    assert "vxifbad-peer" not in a.dp.ports and "bad-peer" not in a.status()["vteps"]
    await a.vteps.prune_stale()
    assert a.dp.calls_of("remove_port") == []  # nothing stale: the desired peer's port is kept


async def test_departed_peer_keeps_its_tunnel_for_the_grace_period():
    """A peer whose key goes (lease expired while its agent restarts) and comes back within the grace
    keeps its tunnel: no remove/re-add; one that stays away loses it after the grace."""
    a = Agent()
    a.vteps.remove_grace = 0.3
    a.nets.on_update("n1.default", net("n1", 1))
    a.vteps.on_update(f"{PEER}:4789", "{}")
    a.remote.on_update("e1", oper("e1", "n1.default", "10.1.1.5", vtep=PEER))
    async with running(a):
        await until(lambda: set(a.dp.remote) == {"e1"})
        a.vteps.on_update(f"{PEER}:4789", None)
        await asyncio.sleep(0.1)
        assert PEER in a.dp.vteps and a.vteps.grace_left(PEER) > 0
        a.vteps.on_update(f"{PEER}:4789", "{}")  # back within the grace
        await asyncio.sleep(0.4)
        await a.idle()
        assert a.dp.calls_of("remove_vtep") == [] and a.dp.calls_of("add_vtep") == [PEER]
        assert set(a.dp.remote) == {"e1"}
        a.vteps.on_update(f"{PEER}:4789", None)  # gone for good
        await asyncio.sleep(0.1)
        assert PEER in a.dp.vteps
        await until(lambda: PEER not in a.dp.vteps, timeout=2)
        await until(lambda: set(a.dp.remote) == set())
    assert a.dp.calls_of("remove_vtep") == [PEER]


async def test_prune_stale_keeps_desired_and_removes_leftovers():
    a = Agent()
    a.dp.ports |= {"vxif10009", "vxif1000"}  # an earlier run's ports
    a.vteps.on_update("10.0.0.9:4789", "{}")  # desired, not applied yet (e.g. being retried)
    await a.vteps.prune_stale()
    assert a.dp.calls_of("remove_port") == ["vxif1000"] and "vxif10009" in a.dp.ports


async def test_failing_network_retried_while_others_proceed():
    a = Agent()
    a.nets.rec = Reconciler(
        "networks",
        a.nets.reconcile,
        base_delay=0.01,
        max_delay=0.02,
        permanent=(ValidationError, ConflictError),
    )
    a.dp.fail("add_network", "n1.default")
    a.nets.on_update("n1.default", net("n1", 1))
    a.nets.on_update("n2.default", net("n2", 2))
    async with running(a):
        await until(lambda: "n2.default" in a.dp.networks)
        await until(lambda: a.dp.calls_of("add_network").count("n1.default") >= 3)
        assert "n1.default" not in a.dp.networks
        a.dp.heal("add_network", "n1.default")
        await a.idle()
    assert set(a.dp.networks) == {"n1.default", "n2.default"}
    assert a.status()["networks"]["n1.default"] == {
        "state": "ok", "attempts": 0, "lastError": "", "nextRetryIn": None,
    }  # fmt: skip


async def test_bad_data_is_failed_not_retried():
    a = Agent()
    a.nets.on_update("n1.default", net("n1", 1))
    a.vteps.on_update(f"{PEER}:4789", "{}")
    bad = OperEndpoint(
        id="b", netID="n1.default", ipAddress="10.1.1.7", macAddress="zz", homingHost="h2", vtepIP=PEER
    )
    a.remote.on_update("b", bad.to_json())
    a.policy.on_update("r1", '{"RuleId":"r1","Priority":1,"IpProtocol":1,"DstPort":80,"Action":"deny"}')
    a.policy.on_update("r2", '{"RuleId":"r2","Priority":1,"IpProtocol":6,"DstPort":80,"Action":"deny"}')
    async with running(a):
        await a.idle()
        await asyncio.sleep(0.2)  # several base delays: nothing is retried
    st = a.status()
    assert (
        st["remoteEndpoints"]["b"]["state"] == "failed" and "MAC" in st["remoteEndpoints"]["b"]["lastError"]
    )
    assert st["policyRules"]["r1"]["state"] == "failed" and st["policyRules"]["r2"]["state"] == "ok"
    assert a.dp.calls_of("add_remote_endpoint") == ["b"] and a.dp.calls_of("add_rule").count("r1") == 1
    assert set(a.dp.rules) == {"r2"}


async def test_workers_wait_for_the_first_sync():
    a = Agent()
    a.nets.on_update("n1.default", net("n1", 1))
    async with running(a, synced=False):
        await asyncio.sleep(0.05)
        assert a.dp.calls == [] and a.status()["networks"]["n1.default"]["state"] == "pending"
        for r in a.recs:
            r.mark_synced()
        await a.idle()
    assert set(a.dp.networks) == {"n1.default"}


async def test_services_per_key():
    a = Agent()

    def lb(sid: str, vip: str) -> str:
        return ServiceLBState(id=sid, tenantname="default", ipaddress=vip, ports=["80:8080:TCP"]).to_json()

    a.dp.fail("add_service", "10.1.9.1:default")
    a.services.on_lb("s1:default", lb("s1:default", "10.1.9.1"))
    async with running(a):
        await until(lambda: a.status()["services"].get("s1:default", {}).get("state") == "retrying")
        a.services.on_lb("s2:default", lb("s2:default", "10.1.9.2"))
        await until(lambda: "10.1.9.2:default" in a.dp.services)
        a.services.on_lb("s1:default", None)
        await a.idle(timeout=2)
    assert set(a.dp.services) == {"10.1.9.2:default"} and "s1:default" not in a.status()["services"]


def test_listing_keeps_this_hosts_oper_records_for_the_restart_until_taken():
    """The start's listing hands the host's own oper records to the restart (no etcd read per
    local endpoint); deletes seen before the restart drop them; after they are taken, none are kept."""
    a = Agent()
    a.remote.on_update("n1.default-l1", oper("n1.default-l1", "n1.default", "10.1.1.1", ME, host="h1"))
    a.remote.on_update("n1.default-l2", oper("n1.default-l2", "n1.default", "10.1.1.2", ME, host="h1"))
    a.remote.on_update("n1.default-r1", oper("n1.default-r1", "n1.default", "10.1.1.3"))
    a.remote.on_update("n1.default-l2", None)
    listed = a.remote.take_listed_local()
    assert set(listed) == {"n1.default-l1"} and listed["n1.default-l1"].ipAddress == "10.1.1.1"
    assert set(a.remote.desired) == {"n1.default-r1"}  # remote ones as before
    a.remote.on_update("n1.default-l3", oper("n1.default-l3", "n1.default", "10.1.1.4", ME, host="h1"))
    assert a.remote.take_listed_local() == {} and a.remote.listed_local is None
