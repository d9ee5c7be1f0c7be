"""Which networks' endpoints an agent receives, and one list+watch stream per such network.

Why (docs/benchmarks.md "Endpoints: every agent receives and programs every endpoint"): watching the
whole ``/contiv.io/oper/eps/`` prefix makes every endpoint created anywhere reach, and become flows
on, every host. The oper key starts with the network id (``/contiv.io/oper/eps/<net>.<tenant>-<ep>``),
so an agent watches one prefix per network it *serves* instead.

The served set (``served_networks``, pure; docs/architecture.md "Served networks"):
- every network with a local endpoint on this host: containers, CNI pods, creates in flight and the
  host's infra ports (every host has one on every infra network);
- every network of a tenant that has a local endpoint, when that tenant's traffic crosses networks
  on this host: routing mode (vrouter / vlrouter route between a tenant's networks), a ``contivh1``
  network in the tenant (its host routes reach every data network of the tenant), or a local
  endpoint on a vlan network in bridge mode (an external router crosses networks, and the sending
  host's ``dst_group`` flows give the destination's group to the policy table).
Nothing else can reach a remote endpoint of an unserved network from this host: in vxlan bridge
mode a packet never leaves its network's VLAN without ``contivh1``, so its policy (``dst_group``)
and service-LB (provider MAC) lookups only concern served networks.

``NetworkWatches`` keeps one ``common.watch.list_and_watch`` stream + ``Mirror`` per served network,
prefix ``/contiv.io/oper/eps/<net id>-``:
- ``converge(target)`` (one at a time, under a lock) opens the missing streams and closes the others;
  ``open`` consumes the stream's first Snapshot (its own listing) and hands every key to the handler
  before it returns, so the caller can wait for those endpoints' flows; a later re-list
  (compaction, store failure) reaches the handler as a diff, as for every other watch;
- the streams' consumer tasks run in the TaskGroup of ``run()`` (streams opened before ``run``
  starts, at start-up, are started by it); ``close`` cancels the stream's task, waits for it,
  closes the iterator (which stops its pump task) and hands a delete of every key it had to the
  handler: nothing is left behind;
- bounded: each etcd watch is a connection of its own on the JSON gateway, so above ``limit``
  (``MAX_STREAMS``) served networks one stream of the whole prefix replaces the per-network ones; it
  is filtered here by each record's ``netID`` (a record of a served network is a put, one that
  leaves the served set a delete), and a change of the served set replays its ``Mirror`` (no etcd
  read). Switching either way hands the handler only the difference, so no flow churns;
- the handler gets ``(net_id, endpoint id, value | None)`` (the key after ``/contiv.io/oper/eps/``;
  ``net_id`` None from the whole-prefix stream, already filtered).
  A prefix ``a.b-`` also matches keys of the network ``a.b-c`` (names may contain ``-``): the
  handler must ignore records whose ``netID`` is not ``net_id`` (RemoteEndpointManager does).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping

from contivpy.common import metrics
from contivpy.common.kv.base import Event, KVStore
from contivpy.common.pump import PumpedIterator
from contivpy.common.watch import Mirror, list_and_watch
from contivpy.model import keys
from contivpy.ofnet.infraroute import INFRA_ROUTER_NET

log = logging.getLogger(__name__)

Handler = Callable[[str | None, str, str | None], None]
ALL = "*"  # the stream of the whole prefix
_CUT = len(keys.OPER_EPS)
#: Above this many served networks, one stream of the whole prefix (filtered by the agent) replaces
#: the per-network ones: each etcd watch is a connection of its own on the JSON gateway.
MAX_STREAMS = 16


def _tenant(net_id: str, spec: object) -> str:
    return (getattr(spec, "tenant", "") or "default") if spec is not None else net_id.rpartition(".")[2]


def served_networks(local: Iterable[str], nets: Mapping[str, object], routing: bool) -> set[str]:
    """The networks whose remote endpoints this host needs (see the module docstring).

    ``local``: net ids with a local endpoint (or a create in flight, or an infra port);
    ``nets``: every known network, net id -> spec with ``tenant``, ``encap``, ``name``;
    ``routing``: the forwarding mode is routing."""
    served = {n for n in local if n}
    wide: set[str] = set()
    for nid in served:
        spec = nets.get(nid)
        if routing or getattr(spec, "encap", "") == "vlan":
            wide.add(_tenant(nid, spec))
    for nid, spec in nets.items():
        if getattr(spec, "name", "") == INFRA_ROUTER_NET and getattr(spec, "nw_type", "") == "infra":
            wide.add(_tenant(nid, spec))
    local_tenants = {_tenant(n, nets.get(n)) for n in served}
    wide &= local_tenants
    if wide:
        served |= {nid for nid, spec in nets.items() if _tenant(nid, spec) in wide}
    return served


def net_prefix(net_id: str) -> str:
    return f"{keys.OPER_EPS}{net_id}-"


class NetworkWatches:
    """One list+watch stream per served network, or one of the whole prefix above ``limit`` served
    networks (see the module docstring)."""

    def __init__(
        self, kv: KVStore, handler: Handler, label: str = keys.OPER_EPS, limit: int = MAX_STREAMS
    ) -> None:
        self.kv, self.handler, self.label, self.limit = kv, handler, label, limit
        self._streams: dict[str, tuple[PumpedIterator, Mirror]] = {}  # net id, or ALL
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._generation: dict[str, int] = {}  # served net id -> when it became served (an ``opened`` count)
        self._lock = asyncio.Lock()
        self._tg: asyncio.TaskGroup | None = None
        self.opened = 0  # streams opened / closed since start (for tests and /inspect)
        self.closed = 0

    def networks(self) -> set[str]:
        """The networks served now (their endpoints reach the handler)."""
        return set(self._generation)

    def streams(self) -> int:
        """Watch streams open (one etcd watch each)."""
        return len(self._streams)

    def whole(self) -> bool:
        """One stream of the whole prefix, filtered here (more than ``limit`` networks served)."""
        return ALL in self._streams

    def generation(self, nid: str) -> int:
        """Which serving of ``nid`` is the current one (0: not served); a new one each time it
        starts being served or its stream is re-opened."""
        return self._generation.get(nid, 0)

    async def converge(self, target: Callable[[], set[str]]) -> set[str]:
        """Serve exactly ``target()`` (re-evaluated under the lock, so a caller that changed the
        inputs before calling sees its change). Returns the networks whose serving (re)started."""
        async with self._lock:
            want = target()
            before = dict(self._generation)
            if len(want) > self.limit:
                await self._to_whole(want)
            else:
                await self._to_networks(want)
            return {n for n, g in self._generation.items() if before.get(n) != g}

    # -- one stream per network --------------------------------------------------------------
    async def _to_networks(self, want: set[str]) -> None:
        for nid in sorted(want - set(self._streams)):
            await self._open(nid)
        if ALL in self._streams:  # back from the whole prefix: forget what no network stream has
            it, mirror = self._streams.pop(ALL)
            task = self._tasks.pop(ALL, None)
            if task is not None:
                task.cancel()
            kept = set().union(*(m.items for n, (_, m) in self._streams.items()))
            for key in sorted(mirror.items.keys() - kept):
                self.handler(None, key[_CUT:], None)
            await self._stop(it, task)
        for nid in sorted(set(self._streams) - want):
            await self._close(nid)
        for nid in set(self._generation) - want:
            del self._generation[nid]

    def _deliver(self, nid: str, evs: list[Event]) -> None:
        metrics.WATCH_EVENTS.inc(self.label, amount=len(evs))
        if nid == ALL:
            self._deliver_filtered(evs)
            return
        for ev in evs:
            self.handler(nid, ev.key[_CUT:], ev.value if ev.type == "put" else None)

    async def _open(self, nid: str) -> None:
        prefix = keys.OPER_EPS if nid == ALL else net_prefix(nid)
        it = list_and_watch(self.kv, prefix)
        mirror = Mirror()
        try:
            first = await anext(it)
        except BaseException:
            await it.aclose()
            raise
        self._streams[nid] = (it, mirror)
        self.opened += 1
        if nid != ALL:
            self._generation[nid] = self.opened
        self._deliver(nid, mirror.apply(first))
        what = "every network" if nid == ALL else f"network {nid}"
        log.info("watching the endpoints of %s (%d listed)", what, len(mirror.items))
        if self._tg is not None:
            self._start(nid)

    def _start(self, nid: str) -> None:
        assert self._tg is not None
        self._tasks[nid] = self._tg.create_task(self._consume(nid), name=f"eps-watch {nid}")

    async def _consume(self, nid: str) -> None:
        it, mirror = self._streams[nid]
        async for item in it:
            self._deliver(nid, mirror.apply(item))

    async def _close(self, nid: str) -> None:
        """Forget the stream's keys before the first await (a cancelled caller cannot leave them
        behind: the consumer, cancelled first, delivers nothing more), then stop its tasks."""
        it, mirror = self._streams.pop(nid)
        self._generation.pop(nid, None)
        task = self._tasks.pop(nid, None)
        if task is not None:
            task.cancel()
        for key in sorted(mirror.items):
            self.handler(nid, key[_CUT:], None)
        log.info("stopped watching the endpoints of network %s (%d forgotten)", nid, len(mirror.items))
        await self._stop(it, task)

    async def _stop(self, it: PumpedIterator, task: asyncio.Task[None] | None) -> None:
        self.closed += 1
        try:
            if task is not None:
                await asyncio.wait([task])  # (its cancellation is not ours: a caller's still propagates)
        finally:
            await it.aclose()

    # -- one stream of the whole prefix, above ``limit`` networks ----------------------------
    def _served_value(self, value: str | None) -> bool:
        if not value:
            return False
        try:
            rec = json.loads(value)
        except ValueError:
            return False
        return isinstance(rec, dict) and rec.get("netID") in self._generation

    def _deliver_filtered(self, evs: list[Event]) -> None:
        """Whole-prefix events, as if from the served networks' streams: a record of a served
        network is a put; one that stops being (deleted, or moved out of the served set) a delete."""
        for ev in evs:
            now = ev.type == "put" and self._served_value(ev.value)
            if now:
                self.handler(None, ev.key[_CUT:], ev.value)
            elif self._served_value(ev.prev_value):
                self.handler(None, ev.key[_CUT:], None)

    async def _to_whole(self, want: set[str]) -> None:
        prev = set(self._generation)
        gone, new = prev - want, want - prev
        old = {n: m for n, (_, m) in self._streams.items() if n != ALL}
        for nid in sorted(new):
            self.opened += 1
            self._generation[nid] = self.opened
        for nid in gone:
            del self._generation[nid]
        if ALL not in self._streams:
            await self._open(ALL)  # its listing reaches the handler for the served networks
            whole = self._streams[ALL][1].items
            for nid, mirror in old.items():  # the network streams go without a trace
                it, _ = self._streams.pop(nid)
                task = self._tasks.pop(nid, None)
                if task is not None:
                    task.cancel()
                for key in sorted(mirror.items):
                    if nid in gone or key not in whole:
                        self.handler(nid, key[_CUT:], None)
                await self._stop(it, task)
            return
        if not (new or gone):
            return
        # the served set changed: replay the mirror (no etcd read) for the networks that came or went
        for key, value in sorted(self._streams[ALL][1].items.items()):
            try:
                net = json.loads(value).get("netID")
            except (ValueError, AttributeError):
                continue
            if net in gone:
                self.handler(None, key[_CUT:], None)
            elif net in new:
                self.handler(None, key[_CUT:], value)

    async def run(self) -> None:
        """Run the streams' consumers (those opened so far and later ones) until cancelled; on the
        way out every stream is closed."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for nid in self._streams:
                    if nid not in self._tasks:
                        self._start(nid)
                await asyncio.Event().wait()
        finally:
            self._tg = None
            await self.aclose()

    async def aclose(self) -> None:
        for nid in list(self._streams):
            it, _ = self._streams.pop(nid)
            task = self._tasks.pop(nid, None)
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait([task])
            await it.aclose()
        self._generation.clear()


__all__ = ["ALL", "MAX_STREAMS", "NetworkWatches", "served_networks", "net_prefix"]
