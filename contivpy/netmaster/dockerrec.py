"""Leader-only reconciler of netmaster's Docker networks (docker cluster mode).

Desired state is etcd, written by the hooks in the request's txn (they never call Docker, so a
hook re-run has no side effect and a commit is never undone by a Docker failure):
every ``/contiv.io/state/nets/<net>.<tenant>`` (``nwType`` not infra) and every
``/contiv.io/state/endpointGroups/<group>:<tenant>`` wants a Docker network on netmaster's
``--docker-host`` named ``docker_net_name(tenant, net-or-group)`` (``dockernet``).

Key: the Docker network name. ``reconcile(name)`` reads the current etcd records of that name
(network state ``<base>.<tenant>``, else group state ``<base>:<tenant>`` and its network's state):
- wanted: ``dockernet.ensure_network`` (adopt, create, or replace one that no longer matches), then
  write ``/contiv.io/oper/docknet/<tenant>.<net>.<group>`` with the Docker id, in a txn guarded by
  the state record still being the one read (``create_revision``) and by the leader fence. So the
  record is written only after Docker succeeded and never for an object deleted meanwhile.
- not wanted: ``dockernet.remove_network`` (ours only: our driver and contiv IPAM options), then
  delete the docknet records of that name, guarded by the state records still being absent.
- ACI mode (global ``networkInfraType`` aci): nothing (the original made no Docker networks there).
Every failure (Docker down, Docker refusing a delete while containers are attached, a lost compare)
raises: the key alone is retried with exponential backoff (``common/reconcile.Reconciler``, capped
at ``MAX_DELAY``) while the other keys go on; a new event for the key retries it at once. A key
that finds Docker unreachable wakes the sync loop, which then lists Docker every ``DOCKER_RETRY``
s and, at the first success, re-queues every key (so Docker's return is seen within ~2 s without
short per-key backoffs and their log lines).

Producers: a list+watch of ``state/nets/`` and ``state/endpointGroups/`` (a put enqueues the
record's name, a delete the previous record's name, via ``Mirror``) and a full sync: every etcd
name, every docknet record and every Docker network of our driver with contiv options (so a
network whose object went away while no leader ran is removed, and one removed behind our back is
recreated). The workers start (``mark_synced``) once both prefixes are listed and the first Docker
listing was tried. The full sync repeats every ``resync`` seconds; while Docker cannot be listed it
enqueues nothing and is tried every ``DOCKER_RETRY`` s.

Leadership: the daemon runs ``run()`` only while it is leader and cancels it the moment
leadership is lost; the next leader's full sync converges whatever was in flight. Docker calls
cannot be fenced; a deposed leader's last Docker call is at worst undone by the new leader's sync.

``status()`` (served at ``GET /debug/docknets``) shows per name ``ok`` / ``pending`` /
``retrying`` with the last error: a network created while Docker is down shows ``retrying``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from contivpy.common.dockerapi import DockerApiError, DockerClient, docker_net_name
from contivpy.common.errors import ConflictError, StoreError
from contivpy.common.kv.base import Compare, Delete, KeyValue, KVStore, Put
from contivpy.common.reconcile import Reconciler
from contivpy.common.watch import Mirror, Snapshot, list_and_watch
from contivpy.model import keys
from contivpy.model.state import DocknetState, EndpointGroupState, NetworkState
from contivpy.netmaster import dockernet

log = logging.getLogger("netmaster.dockerrec")

#: per-key retry backoff cap (s)
MAX_DELAY = 30.0
#: full sync period (s), and the Docker polling period while Docker is unreachable: the first
#: successful listing re-queues every key, so a network made while Docker was down appears about
#: DOCKER_RETRY s after Docker answers again, whatever the keys' backoff
RESYNC = 30.0
DOCKER_RETRY = 2.0
_SKIP = object()


def split_name(name: str) -> tuple[str, str]:
    """Docker network name -> (network or group name, tenant)."""
    base, sep, tenant = name.partition("/")
    return (base, tenant) if sep else (base, "default")


def _name_of(prefix: str, value: str | None) -> str | None:
    if not value:
        return None
    if prefix == keys.NETS:
        net = NetworkState.parse(value)
        return docker_net_name(net.tenant, net.networkName) if net and net.networkName else None
    epg = EndpointGroupState.parse(value)
    if epg is None or not epg.groupName:
        return None
    return docker_net_name(epg.tenantName or "default", epg.networkName, epg.groupName)


def _infra_type(value: str) -> str:
    try:
        obj = json.loads(value)
    except ValueError:
        return ""
    return str(obj.get("networkInfraType", "")) if isinstance(obj, dict) else ""


class _Reads:
    """Point reads of one reconcile pass; their compares guard its txn (absent = version 0)."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self.seen: dict[str, KeyValue | None] = {}

    async def get(self, key: str) -> KeyValue | None:
        if key not in self.seen:
            self.seen[key] = await self.kv.get(key)
        return self.seen[key]

    def compares(self) -> list[Compare]:
        return [
            Compare(k, "version", "==", 0) if v is None else Compare(k, "create", "==", v.create_revision)
            for k, v in self.seen.items()
        ]


class DocknetReconciler:
    def __init__(
        self,
        kv: KVStore,
        config: Any,
        *,
        docker: DockerClient | None = None,
        fence: Callable[[], Compare | None] | None = None,
        resync: float = RESYNC,
    ) -> None:
        self.kv = kv
        self.plugin = dockernet.plugin_name(config)
        self._own_client = docker is None
        self.docker = docker if docker is not None else dockernet.client_from_config(config)
        self.fence = fence or (lambda: None)
        self.resync = resync
        self.rec: Reconciler[str] = Reconciler(
            "docknet", self.reconcile, workers=2, max_delay=MAX_DELAY, desired=self._known
        )
        self._listed = {keys.NETS: asyncio.Event(), keys.EPGS: asyncio.Event()}
        self._names: dict[str, str] = {}  # etcd state key -> its Docker network name (watched)
        self._count: Counter[str] = Counter()  # Docker network name -> etcd records naming it
        self._unreachable = asyncio.Event()  # set by a key that could not reach Docker
        self._docker_down = False  # the last Docker listing failed

    # ---- running ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Watch etcd, sync, and converge until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.rec.run())
                for prefix in self._listed:
                    tg.create_task(self._watch(prefix))
                tg.create_task(self._sync_loop())
        finally:
            if self._own_client:
                with contextlib.suppress(Exception):
                    await self.docker.close()

    async def _watch(self, prefix: str) -> None:
        mirror = Mirror()
        async with list_and_watch(self.kv, prefix) as items:
            async for item in items:
                for ev in mirror.apply(item):
                    name = _name_of(prefix, ev.value if ev.type == "put" else ev.prev_value)
                    self._track(ev.key, name if ev.type == "put" else None)
                    if name:
                        self.rec.enqueue(name)
                if isinstance(item, Snapshot):
                    self._listed[prefix].set()

    async def _sync_loop(self) -> None:
        for ev in self._listed.values():
            await ev.wait()  # the first listings enqueued every etcd name
        while True:
            try:
                docker_ok = await self.full_sync()
            except StoreError as e:  # etcd unreachable: the watches re-list; sync again soon
                log.warning("docker network full sync failed: %s", e)
                docker_ok = False
            self.rec.mark_synced()
            if docker_ok:
                self._unreachable.clear()
                with contextlib.suppress(TimeoutError):  # a key found Docker unreachable: poll it
                    await asyncio.wait_for(self._unreachable.wait(), self.resync)
            await asyncio.sleep(min(self.resync, DOCKER_RETRY))

    async def full_sync(self) -> bool:
        """Enqueue every name etcd, a docknet record or Docker knows; when Docker cannot be listed,
        enqueue nothing (every key would only fail again) and return False."""
        try:
            listed = await self.docker.list_networks(driver=self.plugin)
        except DockerApiError as e:
            if not self._docker_down:  # once per outage: it is polled every DOCKER_RETRY s
                log.warning("docker networks not listed (%s); polling every %.0fs", e, DOCKER_RETRY)
            self._docker_down = True
            return False
        if self._docker_down:
            log.info("docker answers again: reconciling every network")
        self._docker_down = False
        names = {n["Name"] for n in listed if dockernet.is_contiv(n, self.plugin) and n.get("Name")}
        for prefix in (keys.NETS, keys.EPGS):
            kvs, _ = await self.kv.get_prefix(prefix)
            names.update(n for n in (_name_of(prefix, i.value) for i in kvs) if n)
        kvs, _ = await self.kv.get_prefix(keys.OPER_DOCKNET)
        for i in kvs:
            rec = DocknetState.parse(i.value)
            if rec is not None and rec.networkName:
                names.add(docker_net_name(rec.tenantName or "default", rec.networkName, rec.serviceName))
        for name in sorted(names):
            self.rec.enqueue(name)
        return True

    def _track(self, key: str, name: str | None) -> None:
        old = self._names.pop(key, None)
        if old is not None:
            self._count[old] -= 1
            if self._count[old] <= 0:
                del self._count[old]
        if name:
            self._names[key] = name
            self._count[name] += 1

    def _known(self, name: str) -> bool:
        """Still named by an etcd record (else an ``ok`` key leaves the status table)."""
        return name in self._count

    def status(self) -> dict:
        return {"synced": self.rec.synced, "networks": self.rec.status()}

    # ---- one key ----------------------------------------------------------------------------
    async def _wanted(self, reads: _Reads, name: str) -> Any:
        """(network state, group, anchor record) wanted for ``name``; None if none; _SKIP in ACI."""
        glob = await self.kv.get(keys.obj_key("global", "global"))
        if glob is not None and _infra_type(glob.value) == "aci":
            return _SKIP
        base, tenant = split_name(name)
        nkv = await reads.get(keys.net_state(keys.network_id(base, tenant)))
        net = NetworkState.parse(nkv.value) if nkv is not None else None
        if net is not None and net.nwType != "infra":
            return net, "", nkv
        ekv = await reads.get(keys.epg_state(keys.epg_id(base, tenant)))
        epg = EndpointGroupState.parse(ekv.value) if ekv is not None else None
        if epg is None:
            return None
        pkv = await self.kv.get(keys.net_state(keys.network_id(epg.networkName, tenant)))
        parent = NetworkState.parse(pkv.value) if pkv is not None else None
        return (parent, base, ekv) if parent is not None else None

    async def reconcile(self, name: str) -> None:
        try:
            await self._reconcile(name)
        except DockerApiError as e:
            if e.status == 0:  # unreachable: the sync loop polls Docker and retries all on its return
                self._unreachable.set()
            raise

    async def _reconcile(self, name: str) -> None:
        reads = _Reads(self.kv)
        want = await self._wanted(reads, name)
        if want is _SKIP:
            return
        if want is None:
            if await dockernet.remove_network(self.docker, self.plugin, name):
                log.info("docker network %s removed", name)
            await self._drop_records(name, reads)
            return
        net, group, anchor = want
        uuid = await dockernet.ensure_network(self.docker, self.plugin, net, group)
        await self._record(net, group, uuid, anchor)

    async def _txn(self, compares: list[Compare], ops: list[Put | Delete], what: str) -> None:
        fence = self.fence()
        res = await self.kv.txn(compares + ([fence] if fence is not None else []), ops)
        if not res.succeeded:
            raise ConflictError(f"{what}: etcd changed meanwhile (or leadership lost); retrying")

    async def _record(self, net: NetworkState, group: str, uuid: str, anchor: KeyValue) -> None:
        did = keys.docknet_id(net.tenant, net.networkName, group)
        rec = DocknetState(
            id=did, tenantName=net.tenant, networkName=net.networkName, serviceName=group, docknetUUID=uuid
        )
        cur = await self.kv.get(keys.docknet_oper(did))
        if cur is not None and DocknetState.parse(cur.value) == rec:
            return
        guard = Compare(anchor.key, "create", "==", anchor.create_revision)
        await self._txn([guard], [Put(keys.docknet_oper(did), rec.to_json())], f"docknet record {did}")
        log.info("docker network %s is %s", docker_net_name(net.tenant, net.networkName, group), uuid[:12])

    async def _drop_records(self, name: str, reads: _Reads) -> None:
        kvs, _ = await self.kv.get_prefix(keys.OPER_DOCKNET)
        stale = []
        for i in kvs:
            rec = DocknetState.parse(i.value)
            if rec is None or not rec.networkName:
                continue
            if docker_net_name(rec.tenantName or "default", rec.networkName, rec.serviceName) == name:
                stale.append(Delete(i.key))
        if stale:
            await self._txn(reads.compares(), stale, f"docknet records of {name}")


__all__ = ["DocknetReconciler", "split_name", "MAX_DELAY", "RESYNC"]
