"""Keep this host's Docker engine networks in sync with the contiv networks and groups in etcd.

Why: Docker >= 20.10 has no usable cluster store (``--cluster-store`` is gone in 23), so the
plugin reports scope ``local`` and every host's engine needs its own copy of each contiv network
(netmaster in docker mode creates it only on its own ``--docker-host``). Each netplugin does it
for its host, from the same etcd state every host already watches.

Desired set (the original's naming and options, docs/original.md §5.5):
- every ``/contiv.io/state/nets/<net>.<tenant>`` (except ``nwType`` infra) -> network ``<net>``
  (``<net>/<tenant>`` unless tenant default);
- every ``/contiv.io/state/endpointGroups/<group>:<tenant>`` -> network ``<group>[/<tenant>]``
  with its network's subnet;
- driver and IPAM driver ``netplugin``; IPAM config subnet + gateway; IPAM options ``tenant``,
  ``network`` (+ ``group``); driver options ``tenant``, ``encap``, ``pkt-tag`` (the payload is
  ``common/dockerapi.network_create_body``, shared with netmaster).

Reconcile = list the engine's ``netplugin`` networks, then etcd (in that order: a network listed
before etcd is read was there while etcd said what it says), create the missing ones, delete the
ones contiv no longer has (Docker refuses while containers are attached: retried later), and
recreate one whose subnet/options no longer match (only when it has no containers). It runs on
every etcd change under the two prefixes (list@rev + watch rev+1) and every ``resync`` seconds;
failures (engine down, restarting) are retried with backoff. Idempotent: a 409 "already exists"
from a concurrent creator (netmaster on the same engine) is success, and same-named duplicates
(Docker 20.10 does not lock ``CheckDuplicate``: both creators can win) are reduced to the oldest
(``common/dockerapi.one_network``, the rule netmaster applies too), after each create, once more
2 s later, and on every pass.

Invariant: a network is deleted for having no etcd counterpart only with positive evidence that
the counterpart is gone. A network with no etcd object may be one about to be registered (netmaster
now creates its Docker networks only after the commit, netmaster/dockerrec.py, but another creator
may not), and deleting it would have the next pass recreate it under a new id and leave a recorded
id (``/contiv.io/oper/docknet/...``) stale until netmaster's next sync. Evidence is either
- *confirmed*: this sync saw that very Docker id while etcd had its counterpart (listed as
  matching, or created from etcd by this sync), and now etcd has none; or
- *age*: its ``Created`` is at least ``grace`` seconds (60) before the engine's clock
  (``/info`` ``SystemTime``, so host clock skew does not matter; an unreadable ``Created`` counts
  as old). A younger unconfirmed network is kept and the pass is re-run when its grace ends, so a
  network whose object never appears is still removed.
Confirmations are kept in memory for ids still listed; after a restart only the age rule applies.
A network whose name is wanted but whose subnet/options differ is evidence by itself (etcd says
what that name must be) and is recreated at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime

from contivpy.common.dockerapi import (
    DockerApiError,
    DockerClient,
    network_create_body,
    one_network,
    parse_docker_time,
)
from contivpy.common.errors import ContivError
from contivpy.common.kv.base import KVStore
from contivpy.common.watch import list_and_watch
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState, NetworkState

from .backend import ContivNet
from .resolver import NetworkResolver, net_from_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesiredNet:
    net: ContivNet
    subnet: str
    gateway: str
    encap: str
    pkt_tag: int
    subnet6: str = ""
    gateway6: str = ""

    def spec(self, driver: str) -> dict:
        return network_create_body(
            driver,
            tenant=self.net.tenant,
            network=self.net.network,
            group=self.net.group,
            subnet=self.subnet,
            gateway=self.gateway,
            subnet6=self.subnet6,
            gateway6=self.gateway6,
            encap=self.encap,
            pkt_tag=self.pkt_tag,
        )

    def matches(self, actual: dict) -> bool:
        ipam = actual.get("IPAM") or {}
        if net_from_options(ipam.get("Options") or {}) != self.net:
            return False
        subnets = set()
        for c in ipam.get("Config") or []:
            try:  # netmaster's copy may carry a non-normalised subnet (10.1.1.5/24 is accepted)
                subnets.add(str(ipaddress.ip_network(c.get("Subnet") or "", strict=False)))
            except ValueError:
                continue
        return self.subnet in subnets


def _subnet(ip: str, length: int) -> str:
    try:
        return str(ipaddress.ip_network(f"{ip}/{length}", strict=False)) if ip else ""
    except ValueError:
        return ""


def _desired_from(state: NetworkState) -> DesiredNet | None:
    subnet = _subnet(state.subnetIP, state.subnetLen)
    if not subnet or not state.networkName:
        return None
    encap = state.pktTagType or "vxlan"
    return DesiredNet(
        net=ContivNet(state.tenant or "default", state.networkName),
        subnet=subnet,
        gateway=state.gateway,
        encap=encap,
        pkt_tag=int((state.extPktTag if encap == "vxlan" else state.pktTag) or 0),
        subnet6=_subnet(state.ipv6SubnetIP, state.ipv6SubnetLen),
        gateway6=state.ipv6Gateway,
    )


async def desired_networks(kv: KVStore) -> dict[str, DesiredNet]:
    """Docker network name -> what it must be, from the etcd state."""
    out: dict[str, DesiredNet] = {}
    nets: dict[str, DesiredNet] = {}
    kvs, _ = await kv.get_prefix(keys.NETS)
    for kvp in kvs:
        st = NetworkState.parse(kvp.value)
        d = _desired_from(st) if st is not None else None
        if d is None:
            continue
        nets[d.net.net_id] = d
        if st.nwType != "infra":
            out[d.net.docker_name] = d
    kvs, _ = await kv.get_prefix(keys.EPGS)
    for kvp in kvs:
        g = EndpointGroupState.parse(kvp.value)
        if g is None or not g.groupName:
            continue
        tenant = g.tenantName or "default"
        base = nets.get(keys.network_id(g.networkName, tenant))
        if base is None:
            continue
        c = ContivNet(tenant, base.net.network, g.groupName)
        out[c.docker_name] = DesiredNet(c, base.subnet, base.gateway, base.encap, base.pkt_tag)
    return out


class DockerNetworkSync:
    def __init__(
        self,
        kv: KVStore,
        engine: DockerClient,
        resolver: NetworkResolver | None = None,
        driver: str = "netplugin",
        resync: float = 30.0,
        grace: float = 60.0,
    ) -> None:
        self.kv = kv
        self.engine = engine
        self.resolver = resolver
        self.driver = driver
        self.resync = resync
        self.grace = grace
        self._confirmed: set[str] = set()  # Docker ids seen while etcd had their counterpart
        self._grace_timer: asyncio.TimerHandle | None = None
        self._dirty = asyncio.Event()
        self.synced = asyncio.Event()  # set after each fully successful reconcile
        self.last_error: str = ""

    def kick(self) -> None:
        self._dirty.set()

    def _recheck_soon(self, delay: float = 2.0) -> None:
        """One more pass shortly after a create: a concurrent creator's copy that was not listed
        yet when ours was checked is removed then rather than at the next periodic resync."""
        asyncio.get_running_loop().call_later(delay, self.kick)

    def _recheck_at(self, delay: float) -> None:
        """One pass when the earliest pending grace period ends (one timer, the earliest wins)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0) + 0.5
        t = self._grace_timer
        if t is not None and not t.cancelled() and loop.time() < t.when() <= when:
            return
        if t is not None:
            t.cancel()
        self._grace_timer = loop.call_later(when - loop.time(), self.kick)

    async def _orphan_wait(self, nw: dict, now: list[datetime]) -> float:
        """0 when ``nw`` (not wanted by etcd) may be deleted now, else the seconds of grace left."""
        if nw["Id"] in self._confirmed:
            return 0.0
        created = parse_docker_time(nw.get("Created"))
        if created is None:
            return 0.0
        if not now:  # the engine's clock, read once per pass and only when needed
            now.append(await self.engine.engine_time())
        return max(0.0, self.grace - (now[0] - created).total_seconds())

    async def reconcile_once(self) -> bool:
        """One pass; True when the engine matches etcd or only networks within their grace period
        are left (a pass is scheduled for then)."""
        listed = [n for n in await self.engine.list_networks(self.driver) if n.get("Driver") == self.driver]
        want = await desired_networks(self.kv)  # read after the list: see the module docstring
        have: dict[str, dict] = {}
        for n in listed:
            have.setdefault(n["Name"], n)
        for name in {n["Name"] for n in listed if n is not have[n["Name"]]}:
            kept = await one_network(self.engine, name, self.driver)  # duplicates: keep the oldest
            if kept is None:
                del have[name]
            else:
                have[name] = kept
        self._confirmed &= {n["Id"] for n in have.values()}
        clean = True
        now: list[datetime] = []
        for name, nw in have.items():
            d = want.get(name)
            if d is not None and d.matches(nw):
                self._confirmed.add(nw["Id"])
                if self.resolver is not None:
                    self.resolver.remember(nw["Id"], d.net)
                continue
            if d is None:  # no etcd counterpart: maybe netmaster's, created before its commit
                try:
                    wait = await self._orphan_wait(nw, now)
                except DockerApiError as e:
                    clean = False
                    self.last_error = str(e)
                    continue
                if wait > 0:
                    log.info("docker network %s not in etcd; kept %.0f s more (grace)", name, wait)
                    self._recheck_at(wait)
                    continue
            try:  # not contiv's any more, or stale (another subnet/options): remove
                if await self.engine.delete_network(nw["Id"]):
                    log.info("docker network %s removed", name)
                self._confirmed.discard(nw["Id"])
                if self.resolver is not None:
                    self.resolver.forget(nw["Id"])
            except DockerApiError as e:
                clean = False
                self.last_error = str(e)
                log.info("docker network %s not removed yet: %s", name, e)
        for name, d in want.items():
            if name in have and d.matches(have[name]):
                continue
            try:
                net_id = await self.engine.create_network(d.spec(self.driver))
                log.info("docker network %s created (%s)", name, net_id[:12])
                # a concurrent creator (netmaster on this engine) may have succeeded too
                kept = await one_network(self.engine, name, self.driver)
                net_id = kept["Id"] if kept is not None and kept.get("Driver") == self.driver else ""
                self._recheck_soon()
            except DockerApiError as e:
                if e.status == 409:  # a concurrent creator won; pick it up next pass
                    net_id = ""
                else:
                    clean = False
                    self.last_error = str(e)
                    log.warning("docker network %s not created: %s", name, e)
                    continue
            if net_id:
                self._confirmed.add(net_id)  # made (or found) for an etcd object that exists
                if self.resolver is not None:
                    self.resolver.remember(net_id, d.net)
        return clean

    async def _watch(self, prefix: str) -> None:
        """Any change under ``prefix`` (or a re-list after compaction/outage) triggers a reconcile."""
        async with list_and_watch(self.kv, prefix) as it:
            async for _item in it:
                self.kick()

    async def _loop(self) -> None:
        backoff = 0.5
        while True:
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                async with asyncio.timeout(self.resync):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                ok = await self.reconcile_once()
            except (ContivError, OSError) as e:
                ok = False
                self.last_error = str(e)
                log.warning("docker network sync failed: %s", e)
            if ok:
                backoff = 0.5
                self.last_error = ""
                self.synced.set()
            else:
                self.synced.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self.kick()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(keys.NETS))
            tg.create_task(self._watch(keys.EPGS))
            tg.create_task(self._loop())
