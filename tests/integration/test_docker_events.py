"""Docker container events (netplugin/docker/events.py) from a real dockerd 20.10, real etcd.

The plugin runs in this process (as in test_docker_plugin_dockerd.py, whose bed it reuses) with a
backend that records what the agent would send to netmaster ``/plugin/updateEndpoint``: Event
``start`` (``record_container``) and Event ``die`` (``container_died``). With a real netmaster:
``test_docker_events_netmaster.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common import metrics
from tests.integration.test_docker_plugin_dockerd import VethBackend, _nets, _plugin_bed, until

pytestmark = [pytest.mark.etcd, pytest.mark.docker, pytest.mark.root]


class EventBackend(VethBackend):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.events: list[tuple] = []
        self.aliases: dict[str, list[str]] = {}

    async def record_container(self, state_id, name, container_id, labels=None, aliases=None):
        await super().record_container(state_id, name, container_id, labels)
        self.events.append(("start", state_id, name, container_id, dict(labels or {})))
        self.aliases[state_id] = list(aliases or [])

    async def container_died(self, state_id, container_id, tenant=""):
        self.events.append(("die", state_id, container_id, tenant))

    async def create_endpoint(self, spec):
        ep = await super().create_endpoint(spec)
        self.events.append(("create", spec.state_id))
        return ep

    async def delete_endpoint(self, spec):
        self.events.append(("delete", spec.state_id))
        await super().delete_endpoint(spec)


@pytest.fixture
async def ebed(etcd_kv, tdk_netns, docker_host_factory, monkeypatch):
    import tests.integration.test_docker_plugin_dockerd as base

    monkeypatch.setattr(base, "VethBackend", EventBackend)
    async with _plugin_bed(etcd_kv, tdk_netns, docker_host_factory) as b:
        dh, plugin, backend, net, grp, kv = b
        assert plugin.events is not None
        await until(lambda: _nets(dh, {net}), what="network")
        await asyncio.wait_for(plugin.events.connected.wait(), 20)
        await asyncio.to_thread(dh.import_busybox)
        yield b


def of(backend, cid, kind=None):
    return [e for e in backend.events if (kind is None or e[0] == kind) and cid in e]


async def test_start_and_die_of_contiv_containers_only(ebed):
    """start -> name, id and labels of the contiv endpoint; stop -> die for that endpoint; a
    container on another network gives nothing."""
    dh, plugin, backend, net, grp, kv = ebed
    cid = await asyncio.to_thread(dh.run, "tdke1", net, "--label", "app=web", "--label", "tier=fe")
    await until(lambda: _async(of(backend, cid, "start")), what="start recorded")
    [(_, sid, name, got_cid, labels)] = of(backend, cid, "start")
    assert sid.startswith(f"{net}.default-") and name == "tdke1" and got_cid == cid
    assert labels == {"app": "web", "tier": "fe"}
    other = await asyncio.to_thread(dh.run, "tdke2", "none")
    await asyncio.to_thread(dh.docker, "stop", "-t", "1", "tdke1", "tdke2")
    await until(lambda: _async(of(backend, cid, "die")), what="die recorded")
    assert of(backend, cid, "die") == [("die", sid, cid, "default")]
    await plugin.events.idle()
    assert of(backend, other) == []
    assert plugin.events.stats["die"] >= 2 and cid not in plugin.events.known
    # the same counts on the agent's /metrics (the registry the debug server exposes)
    text = metrics.exposition()[0].decode()
    assert f'contiv_netplugin_docker_events_total{{kind="die"}} {float(plugin.events.stats["die"])}' in text
    assert (
        f'contiv_netplugin_docker_events_total{{kind="start"}} {float(plugin.events.stats["start"])}' in text
    )
    assert 'contiv_netplugin_docker_event_streams_total{result="opened"} 1.0' in text, text
    assert "contiv_netplugin_docker_events_connected 1.0" in text


async def test_network_connect_records_the_new_endpoint(ebed):
    """``docker network connect`` of a running container: no start event, but Docker's network
    ``connect`` event gets the new contiv endpoint recorded (name, id, labels); die then reports it."""
    dh, plugin, backend, net, grp, kv = ebed
    await asyncio.to_thread(dh.docker, "network", "create", "-d", "bridge", "tdkbr")
    try:
        cid = await asyncio.to_thread(dh.run, "tdke7", "tdkbr", "--label", "app=x")
        await asyncio.sleep(0.5)
        await plugin.events.idle()
        assert of(backend, cid) == [], "a container on a bridge network was recorded"
        await asyncio.to_thread(dh.docker, "network", "connect", net, "tdke7")
        await until(lambda: _async(of(backend, cid, "start")), what="connect recorded")
        [(_, sid, name, _, labels)] = of(backend, cid, "start")
        assert sid.startswith(f"{net}.default-") and name == "tdke7" and labels == {"app": "x"}
        await asyncio.to_thread(dh.docker, "stop", "-t", "1", "tdke7")
        await until(lambda: _async(of(backend, cid, "die")), what="die")
        assert [e[1] for e in of(backend, cid, "die")] == [sid]
    finally:
        await asyncio.to_thread(dh.docker, "rm", "-f", "tdke7", check=False)
        await asyncio.to_thread(dh.docker, "network", "rm", "tdkbr", check=False)


async def test_restart_policy_each_run_started_and_died_on_its_endpoint(ebed):
    """A container restarted by its restart policy: Docker gives each run a new endpoint; every
    run is recorded on its own endpoint at start and reported dead on that endpoint at die (so a
    service drops the provider, then gets the new address)."""
    dh, plugin, backend, net, grp, kv = ebed
    cmd = ("sh", "-c", "sleep 2; exit 3")
    cid = await asyncio.to_thread(
        dh.run, "tdke3", net, "--restart", "on-failure:1", "--label", "app=db", cmd=cmd
    )
    await until(lambda: _async(len(of(backend, cid, "start")) >= 2), timeout=30, what="restarted")
    await until(lambda: _async(len(of(backend, cid, "die")) >= 2), timeout=30, what="died twice")
    runs = [(e[0], e[1]) for e in of(backend, cid)]
    assert [k for k, _ in runs] == ["start", "die", "start", "die"], runs
    (_, s1), (_, d1), (_, s2), (_, d2) = runs
    assert s1 == d1 and s2 == d2 and s1 != s2
    created = [e[1] for e in backend.events if e[0] == "create"]
    assert created == [s1, s2]
    assert all(e[4] == {"app": "db"} for e in of(backend, cid, "start"))


async def test_reconnect_resumes_since_without_loss_or_replay(ebed):
    """The stream dropped: what happens while disconnected arrives after the reconnection through
    ``since`` (counted as events, not only found by the resync), and the last event seen before,
    which Docker sends again (``since`` is inclusive), is not applied twice."""
    dh, plugin, backend, net, grp, kv = ebed
    ev = plugin.events
    c1 = await asyncio.to_thread(dh.run, "tdke4", net)
    await until(lambda: _async(of(backend, c1, "start")), what="c1 start")
    await ev.idle()
    starts, replayed, connects = ev.stats["start"], ev.stats["replayed"], ev.stats["connects"]
    ev.reconnect(pause=3.0)
    await until(lambda: _async(not ev.connected.is_set()), what="disconnected")
    c2 = await asyncio.to_thread(dh.run, "tdke5", net)
    await asyncio.to_thread(dh.docker, "stop", "-t", "1", "tdke4")
    assert not ev.connected.is_set(), "reconnected before the pause"
    await until(lambda: _async(ev.stats["connects"] > connects), what="reconnected")
    await until(lambda: _async(of(backend, c2, "start") and of(backend, c1, "die")), what="caught up")
    await ev.idle()
    assert len(of(backend, c1, "start")) == 1 and len(of(backend, c1, "die")) == 1
    assert len(of(backend, c2, "start")) == 1
    assert ev.stats["replayed"] >= replayed + 1, "the boundary event was not sent again?"
    assert ev.stats["start"] == starts + 1, "c2's start did not come through since="
    assert ev.stats["malformed"] == 0


async def test_dockerd_restart_reconnects_with_backoff(ebed):
    """dockerd stops (its containers die) and comes back: the stream reconnects by itself and a
    container its restart policy brings back is recorded again."""
    dh, plugin, backend, net, grp, kv = ebed
    ev = plugin.events
    cid = await asyncio.to_thread(dh.run, "tdke6", net, "--restart", "always")
    await until(lambda: _async(of(backend, cid, "start")), what="start")
    connects = ev.stats["connects"]
    await asyncio.to_thread(dh.halt)
    try:
        await until(lambda: _async(not ev.connected.is_set()), what="stream closed")
        await asyncio.sleep(1.5)  # a few failed connection attempts
        assert ev.stats["connect_errors"] >= 1
    finally:
        await asyncio.to_thread(dh.start)
    await until(lambda: _async(ev.stats["connects"] > connects), timeout=30, what="reconnected")
    await until(lambda: _async(of(backend, cid, "die")), timeout=30, what="die (event or resync)")
    await until(lambda: _async(len(of(backend, cid, "start")) >= 2), timeout=40, what="started again")
    kinds = [e[0] for e in of(backend, cid)]
    assert kinds[:3] == ["start", "die", "start"], kinds


async def _async(v):
    return v
