"""Container start/die from the local engine's event stream -> netmaster ``/plugin/updateEndpoint``.

As the original netplugin did in docker mode (docs/docker.md, "Container events"), the agent
follows its own dockerd's events (``GET /events``, type ``container``, actions ``start`` and
``die``) and, for every container with an endpoint on a contiv network:

- ``start``: the container's name, id, labels and, per endpoint, its ``--network-alias`` names
  (Docker's ``Aliases`` of that network) are recorded for each of its contiv endpoints
  (``record(state_id, name, id, labels[, aliases=])``, netmaster Event ``start``): DNS by name
  and alias on every host, and service-LB provider matching;
- ``die``: ``died(state_id, id, tenant)`` (netmaster Event ``die``): the endpoint stops being a
  provider at once (Docker emits ``die`` before it calls DeleteEndpoint);
- network ``connect`` of a running container (``docker network connect``): its new contiv
  endpoints are recorded as at ``start``.

Containers on other networks cost one inspect (their networks are remembered as foreign).

Invariants
- **No event missed, none replayed twice.** Each (re)connection asks for events ``since`` the
  newest event time seen (nanoseconds). Docker's ``since`` is inclusive, so the events already
  seen at exactly that nanosecond are remembered and dropped when sent again. Docker keeps its
  recent events in memory only, so after every (re)connection a *resync* compares the running
  containers with the ones this agent recorded: a running one not recorded gets its ``start``, a
  recorded one no longer running gets its ``die`` (a dockerd restart loses its buffer; an agent
  start has none). Both are idempotent in netmaster.
- **Never blocks, never dies.** The reader only parses and queues; one worker applies events in
  order (a container's ``die`` never overtakes its ``start``). A malformed event (not JSON, not an
  object, no container id, a field of the wrong type) is counted and skipped; an error while
  applying one is logged and the worker goes on (a netmaster call is tried ``attempts`` times
  with backoff first). Engine down or restarting: reconnect with backoff 0.5 s doubling to
  ``max_backoff``; ``connected`` is set while a stream is open.
- Which containers were recorded is memory only; after an agent restart the first resync rebuilds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from contivpy.common import metrics
from contivpy.common.dockerapi import DockerApiError, DockerClient, since_param
from contivpy.common.errors import ContivError
from contivpy.model import keys

from .resolver import NetworkResolver

log = logging.getLogger(__name__)

#: container start/die, and network connect (a running container joined another network)
FILTERS = {"type": ["container", "network"], "event": ["start", "die", "connect"]}

#: ``record(state_id, name, container_id, labels[, aliases=[...]])``: Event start (the backend's
#: ``record_container``; ``aliases`` only when the endpoint has ``--network-alias`` names)
Recorder = Callable[..., Awaitable[None]]
#: ``died(state_id, container_id, tenant)``: Event die (the backend's ``container_died``)
Died = Callable[[str, str, str], Awaitable[None]]
#: ``exists(state_id)``: the endpoint is plugged (the backend's ``get_endpoint`` is not None)
Exists = Callable[[str], Awaitable[bool]]


def event_fields(ev: Any) -> tuple[int, str, str] | None:
    """A container start/die or network connect event -> (time in ns, container id, action);
    None when malformed."""
    if not isinstance(ev, dict):
        return None
    kind = ev.get("Type", "container")
    action = ev.get("Action", ev.get("status"))
    actor = ev.get("Actor")
    if kind == "container" and action in ("start", "die"):
        cid = actor.get("ID") if isinstance(actor, dict) else ev.get("id")
    elif kind == "network" and action == "connect" and isinstance(actor, dict):
        attrs = actor.get("Attributes")
        cid = attrs.get("container") if isinstance(attrs, dict) else None
    else:
        return None
    if not isinstance(cid, str) or not cid:
        return None
    ns = ev.get("timeNano")
    if not isinstance(ns, int) or isinstance(ns, bool):
        t = ev.get("time")
        if not isinstance(t, int) or isinstance(t, bool):
            return None
        ns = t * 1_000_000_000
    if ns < 0:
        return None
    return ns, cid, action


def _str_map(v: Any) -> dict[str, str]:
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}


class ContainerEvents:
    def __init__(
        self,
        engine: DockerClient,
        resolver: NetworkResolver,
        exists: Exists,
        record: Recorder,
        died: Died | None = None,
        driver: str = "netplugin",
        max_backoff: float = 10.0,
        attempts: int = 4,
    ) -> None:
        self.engine = engine
        self.resolver = resolver
        self.exists = exists
        self.record = record
        self.died = died
        self.driver = driver
        self.max_backoff = max_backoff
        self.attempts = attempts
        self.since_ns: int | None = None  # newest event time seen
        self._at_since: set[tuple[int, str, str]] = set()  # events seen at exactly since_ns
        self._known: dict[str, tuple[tuple[str, str], ...]] = {}  # container -> ((state id, tenant), ...)
        self._foreign: set[str] = set()  # Docker network ids that are not ours
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._malformed = [0]  # lines the engine client could not parse + events of a bad shape
        self.stats: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._stream: asyncio.Task | None = None
        self._pause = 0.0

    @property
    def malformed(self) -> int:
        return self._malformed[0]

    @property
    def known(self) -> dict[str, tuple[str, ...]]:
        """Container id -> the endpoint state ids recorded for it (a copy)."""
        return {c: tuple(s for s, _ in v) for c, v in self._known.items()}

    async def run(self) -> None:
        unregister = metrics.register(self.metric_families)  # scraped on the agent's /metrics
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._worker())
                tg.create_task(self._reader())
        finally:
            unregister()

    def metric_families(self) -> list[metrics.Family]:
        """``contiv_netplugin_docker_events_total{kind}``: events taken from the stream (``start``,
        ``die``, ``connect``; ``replayed``: sent again after a reconnection and dropped;
        ``malformed``: skipped); ``contiv_netplugin_docker_event_streams_total{result}``: streams
        ``opened`` and connection attempts ``failed``; ``contiv_netplugin_docker_events_connected``."""
        ev = metrics.Family(
            "counter", "contiv_netplugin_docker_events", "Docker engine events, by kind", ("kind",)
        )
        for kind in ("start", "die", "connect", "replayed"):
            ev.add(self.stats[kind], kind)
        ev.add(self.malformed, "malformed")
        streams = metrics.Family(
            "counter", "contiv_netplugin_docker_event_streams", "Docker event streams, by result", ("result",)
        )
        streams.add(self.stats["connects"], "opened").add(
            self.stats["connect_errors"] + self.stats["errors"], "failed"
        )
        conn = metrics.Family(
            "gauge", "contiv_netplugin_docker_events_connected", "1 while the engine's event stream is open"
        ).add(1 if self.connected.is_set() else 0)
        return [ev, streams, conn]

    async def idle(self) -> None:
        """Wait until every queued event has been applied (tests)."""
        await self._queue.join()

    def reconnect(self, pause: float = 0.0) -> None:
        """Drop the current stream; the reader reconnects with ``since`` after ``pause`` seconds
        (tests: what happens meanwhile must arrive after the reconnection)."""
        self._pause = pause
        if self._stream is not None:
            self._stream.cancel()

    # ---- reading ----------------------------------------------------------------------------

    async def _reader(self) -> None:
        backoff = 0.5
        while True:
            task: asyncio.Task | None = None
            try:
                if self.since_ns is None:  # first connection: from the engine's now on
                    now = await self.engine.engine_time()
                    self.since_ns = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000
                task = self._stream = asyncio.create_task(self._follow())
                await asyncio.wait({task})
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            except DockerApiError as e:
                self.stats["connect_errors"] += 1
                log.info("docker events: %s; retrying in %.1f s", e, backoff)
            except Exception:  # a bug: never let it stop the agent
                self.stats["errors"] += 1
                log.exception("docker events: stream failed; retrying in %.1f s", backoff)
            finally:
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                if self.connected.is_set():
                    backoff = 0.5  # a working stream ended (engine stopped, reconnect()): retry soon
                self.connected.clear()
                self._stream = None
            await asyncio.sleep(max(backoff, self._pause))
            self._pause = 0.0
            backoff = min(backoff * 2, self.max_backoff)

    async def _follow(self) -> None:
        stream = self.engine.events(
            since_param(self.since_ns or 0), FILTERS, self._malformed, on_open=self._opened
        )
        async with contextlib.aclosing(stream) as it:
            async for ev in it:
                self._accept(ev)

    def _opened(self) -> None:
        """The engine accepted the stream: queue a resync behind nothing that came before it."""
        self.connected.set()
        self.stats["connects"] += 1
        self._queue.put_nowait(("resync", ""))

    def _accept(self, ev: Any) -> None:
        f = event_fields(ev)
        if f is None:
            self._malformed[0] += 1
            return
        ns, cid, action = f
        since = self.since_ns or 0
        if ns == since and f in self._at_since:
            self.stats["replayed"] += 1  # since= is inclusive: seen before the reconnection
            return
        if ns > since:
            self.since_ns, self._at_since = ns, {f}
        elif ns == since:
            self._at_since.add(f)
        self.stats[action] += 1
        self._queue.put_nowait((action, cid))

    # ---- applying ---------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            action, cid = await self._queue.get()
            try:
                if action == "resync":
                    await self._resync()
                elif action == "start":
                    await self._start(cid)
                elif action == "connect":
                    await self._connect(cid)
                else:
                    await self._die(cid)
            except asyncio.CancelledError:
                raise
            except ContivError as e:
                self.stats["errors"] += 1
                log.warning("docker event %s %s not applied: %s", action, cid[:12], e)
            except Exception:  # a bug or an event of unexpected shape: log it, keep going
                self.stats["errors"] += 1
                log.exception("docker event %s %s not applied", action, cid[:12])
            finally:
                self._queue.task_done()

    async def _retry(self, fn: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        for attempt in range(self.attempts):
            try:
                await fn()
                return
            except ContivError:
                if attempt == self.attempts - 1:
                    raise
            await asyncio.sleep(delay)
            delay *= 2

    async def _resync(self) -> None:
        running = await self.engine.list_containers()
        running = running if isinstance(running, list) else []
        ids = {c.get("Id") for c in running if isinstance(c, dict)}
        for cid in [c for c in self._known if c not in ids]:
            self.stats["resync_die"] += 1
            await self._die(cid)
        for c in running:
            if isinstance(c, dict) and isinstance(c.get("Id"), str) and c["Id"] not in self._known:
                if await self._contiv_endpoints(c):  # the list form: then inspect (aliases)
                    await self._start(c["Id"])
                    self.stats["resync_start"] += int(c["Id"] in self._known)

    async def _start(self, cid: str) -> None:
        if cid in self._known:  # recorded by the resync of this connection
            return
        try:
            c = await self.engine.inspect_container(cid)
        except DockerApiError as e:
            if e.status == 404:
                return  # removed meanwhile (its die follows or came)
            raise
        state = c.get("State") if isinstance(c, dict) else None
        if not isinstance(state, dict) or state.get("Running") is not True:
            return  # died meanwhile: its die is queued
        await self._record(c, cid)

    async def _connect(self, cid: str) -> None:
        """A network connect: a running container gets its new contiv endpoints recorded. Docker
        also sends connects while it starts a container (not running yet: its start follows)."""
        try:
            c = await self.engine.inspect_container(cid)
        except DockerApiError as e:
            if e.status == 404:
                return
            raise
        state = c.get("State") if isinstance(c, dict) else None
        if isinstance(state, dict) and state.get("Running") is True:
            await self._record(c, cid, skip={sid for sid, _ in self._known.get(cid, ())})

    async def _record(self, c: dict, cid: str, skip: set[str] | None = None) -> bool:
        found = await self._contiv_endpoints(c)
        eps = [e for e in found if not skip or e[0] not in skip]
        if not eps:
            return False
        names = c.get("Names")
        name = c.get("Name")
        if not isinstance(name, str):
            name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else ""
        config = c.get("Config")
        labels = _str_map(config.get("Labels") if isinstance(config, dict) else c.get("Labels"))
        for sid, _tenant, aliases in eps:
            extra = {"aliases": list(aliases)} if aliases else {}
            await self._retry(
                lambda sid=sid, extra=extra: self.record(sid, str(name).lstrip("/"), cid, labels, **extra)
            )
        self._known[cid] = tuple((sid, tenant) for sid, tenant, _ in found)
        return True

    async def _die(self, cid: str) -> None:
        eps = self._known.pop(cid, None)
        if eps is None:  # not recorded by this agent (or before its restart): look it up
            try:
                found = await self._contiv_endpoints(await self.engine.inspect_container(cid))
            except DockerApiError as e:
                if e.status != 404:
                    raise
                return
            eps = tuple((sid, tenant) for sid, tenant, _ in found)
        if self.died is None:
            return
        for sid, tenant in eps:
            await self._retry(lambda sid=sid, tenant=tenant: self.died(sid, cid, tenant))

    async def _contiv_endpoints(self, c: Any) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """(state id, tenant, aliases) of each plugged contiv endpoint of container ``c`` (inspect
        or list form; the list form carries no aliases)."""
        settings_ = c.get("NetworkSettings") if isinstance(c, dict) else None
        nets = settings_.get("Networks") if isinstance(settings_, dict) else None
        out = []
        for settings in nets.values() if isinstance(nets, dict) else ():
            if not isinstance(settings, dict):
                continue
            nid, epid = settings.get("NetworkID"), settings.get("EndpointID")
            if not (isinstance(nid, str) and nid and isinstance(epid, str) and epid):
                continue
            if nid in self._foreign:
                continue
            if nid not in self.resolver.cached():
                info = await self.engine.find_network(nid)
                if info is None or info.get("Driver") != self.driver:
                    self._foreign.add(nid)
                    continue
            try:
                net = await self.resolver.resolve(nid)
            except ContivError:
                continue
            sid = keys.endpoint_state_id(net.network, net.tenant, epid)
            if await self.exists(sid):
                raw = settings.get("Aliases")
                aliases = [a for a in raw if isinstance(a, str) and a] if isinstance(raw, list) else []
                out.append((sid, net.tenant, tuple(dict.fromkeys(aliases))))
        return tuple(out)


__all__ = ["FILTERS", "ContainerEvents", "event_fields"]
