"""netplugin composition root: wires config, etcd, OVS, managers, registration and the servers.

Start-up (docs/original.md §5.2, with etcd watches instead of the ofnet RPC relay):
  1. open the store; wait (1 s retries, logged) until etcd answers and ``/contiv.io/master/config/global``
     has a ``fwd-mode``; exit if it differs from ``--fwdmode`` (the original's rule);
  2. create/fix the bridges and uplinks over OVSDB and start the flow programmers; an unreachable OVSDB
     is logged clearly and retried every second;
  2b. host access (reconciler key ``hostAccess`` of the global reconciler, retried on failure): the host
     port ``contivh0``, IPv4 forwarding, the tagged iptables nat rules and the host access flows for the
     global ``pvtSubnet`` (default 172.19.0.0/16); a later ``pvt-subnet`` change re-applies them live;
  2c. forwarding mode (reconciler key ``fwdMode``): ``--fwdmode`` must equal the global ``fwd-mode`` at
     start; a later change of the global one (netmaster allows it only while no network exists) is
     applied live: the vxlan bridge's pipeline is rebuilt in the new mode (bridge <-> routing), the
     agent keeps running and reports the new mode (debug ``FwdMode``);
  3. list every watched prefix and enqueue the keys, start the reconcilers' workers and wait until each
     listed key has been tried once (graceful restart: nothing is programmed from a partial view), re-bind
     local endpoints, prune stale ports and flows; the restore steps that read etcd retry on a store
     error every second (``retry_store``) instead of stopping the agent;
  4. in the same TaskGroup: the watches (from the listed revision + 1), the service
     registration (``contivpy.common.registry``, 10 s leases, retried every second until etcd answers),
     the Docker plugin (when present) and the CNI server (``--cni-socket``, every mode; attachments
     interrupted by a restart are rolled back first).
The cyclic GC, paused by ``__main__`` (common/startup.py), resumes ``STARTUP_GC_DELAY`` seconds after
the agent is ready (step 4), or at once if it stops before.
The debug REST server (:9090) is bound before step 1: ``/healthz``, ``/readyz`` and ``/metrics``
answer from then on (netplugin/observe.py), its other routes answer 503 until step 4.

Watches use ``contivpy.common.watch.list_and_watch`` + ``Mirror``: step 3 consumes the first Snapshot of
each prefix, the watch tasks the rest; a re-list (compaction, store failure) is turned into the diff.
Remote endpoints are watched per served network (netplugin/served.py, ``NetworkWatches``): step 3
reads this host's endpoints (port record + their oper records) and lists the networks they serve;
later, a create opens its network's watch before it returns (``_serve``) and reconciler key
``servedNetworks`` of the global reconciler converges the watches after a delete, a network change or
a fwd-mode switch.
On shutdown the service keys are *not* deleted (``close(deregister=False)``): a restarting agent keeps
its peers' tunnels until the 10 s leases expire.

Reconcilers (``contivpy.common.reconcile``, one per manager, docs/architecture.md): a watch event only
updates its manager's desired state and enqueues that object's key; each manager's ``reconcile(key)``
converges that one key. A key that keeps failing (a flow the switch rejects, an OVSDB error) is retried
with its own backoff and never blocks another key, nor the delete that would clear it. The workers start
after the initial list (step 3 waits until every listed key has been tried once, then re-binds local
endpoints and prunes). Per-key status: ``GET /inspect/reconcile`` on the debug REST server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from contivpy.common import metrics, startup
from contivpy.common.errors import ExternalServiceError, StoreError, ValidationError
from contivpy.common.httpserve import GuardedRunner, serve_tcp, split_hostport
from contivpy.common.kv import open_store
from contivpy.common.kv.base import KVStore
from contivpy.common.pump import PumpedIterator
from contivpy.common.reconcile import Reconciler
from contivpy.common.registry import ServiceInfo, ServiceRegistry
from contivpy.common.watch import Mirror, list_and_watch
from contivpy.model import keys
from contivpy.model.state import GlobalConfig, OperEndpoint, OvsDriverOper
from contivpy.netplugin.cni.pods import PodService
from contivpy.netplugin.cni.server import CniServer
from contivpy.netplugin.config import Config
from contivpy.netplugin.datapath import HOST_PORT, RPC_PORTS, VLAN_BRIDGE, VXLAN_BRIDGE, Datapath
from contivpy.netplugin.debug_api import make_app
from contivpy.netplugin.docker_backend import AgentBackend
from contivpy.netplugin.managers.bgp import BgpManager
from contivpy.netplugin.managers.endpoint import EndpointService, RemoteEndpointManager
from contivpy.netplugin.managers.infra import InfraManager
from contivpy.netplugin.managers.network import NetworkManager
from contivpy.netplugin.managers.policy import PolicyManager
from contivpy.netplugin.managers.qos import QosManager
from contivpy.netplugin.managers.service import ServiceManager
from contivpy.netplugin.managers.vtep import VtepManager
from contivpy.netplugin.nameserver import NameServer
from contivpy.netplugin.netmaster_client import NetmasterClient
from contivpy.netplugin.served import NetworkWatches, served_networks
from contivpy.netplugin.vrf import VrfAllocator

log = logging.getLogger("netplugin")
T = TypeVar("T")
DEFAULT_PVT_SUBNET = "172.19.0.0/16"
SERVED = "servedNetworks"  # global reconciler key: converge the endpoint watches to ``served()``
STARTUP_GC_DELAY = 1.0  # seconds after the agent is ready: the cyclic GC is on again (common/startup.py)


class FatalConfigError(Exception):
    pass


async def retry_store(what: str, step: Callable[[], Awaitable[T]], interval: float = 1.0) -> T:
    """Run the start-up ``step`` until it gets past etcd: a StoreError (etcd unreachable, or too
    busy to answer in time, as when a hundred agents start at once) is logged and retried every
    ``interval`` seconds instead of stopping the agent. The step must be re-runnable (the restore
    steps are: every action in them is idempotent). Other errors propagate."""
    n = 0
    while True:
        try:
            return await step()
        except StoreError as e:
            if n % 5 == 0:
                log.warning("%s: %s; retrying every %g s", what, e, interval)
            n += 1
            await asyncio.sleep(interval)


class Agent:
    def __init__(self, cfg: Config, kv: KVStore | None = None) -> None:
        self.cfg = cfg
        self.kv = kv or open_store(cfg.store_url, **cfg.store_tls)
        self.dp = Datapath(cfg)
        self.nets = NetworkManager(self.dp, VrfAllocator(self.kv, cfg.host))
        self.vteps = VtepManager(self.dp, cfg.vtep_ip)
        self.remote = RemoteEndpointManager(self.dp, self.nets, self.vteps, cfg.host)
        self.policy = PolicyManager(self.dp)
        self.netmaster = NetmasterClient(self.kv)
        self.registry = ServiceRegistry(self.kv)
        self.qos = QosManager(self.dp)
        self.services = ServiceManager(self.dp)  # service LB (vxlan bridge)
        self.endpoints = EndpointService(cfg, self.kv, self.dp, self.nets, self.netmaster, self.qos)
        self.infra = InfraManager(cfg, self.kv, self.dp, self.nets, self.netmaster, self.endpoints.mtu)
        self.pods = PodService(  # CNI attachments
            self.kv, cfg.host, AgentBackend(self.endpoints), namespace_groups=cfg.mode == "kubernetes"
        )
        self.bgp = BgpManager(cfg, self.dp)  # vlan routing mode: gobgpd + learned routes (managers/bgp.py)
        # DNS for containers, via the OpenFlow punt (nameserver.py); it watches the endpoints
        # itself, the group and service-LB changes reach it from this agent's watches below
        self.names = NameServer(self.kv, watched=(keys.EPS,))
        self.arp_mode = "proxy"
        self.pvt_subnet = DEFAULT_PVT_SUBNET
        self._pvt_applied = ""
        self.fwd_mode = cfg.fwdmode  # desired (global) forwarding mode; cfg.fwdmode = the applied one
        self.ready = asyncio.Event()
        self.nets.in_use = self._net_in_use
        self.services.tenant_ready = self.nets.has_tenant
        self.nets.dependents.append(lambda nid: self.services.wake_tenant(self.nets.tenant_of_applied(nid)))
        self.endpoints.released = self._released
        self.endpoints.serve = self._serve
        # remote endpoints: one list+watch per served network (served.py), not the whole prefix
        self.ep_watches = NetworkWatches(self.kv, lambda nid, ep_id, v: self.remote.on_update(ep_id, v, nid))
        self._local_opers: dict[str, OperEndpoint] = {}  # this host's endpoints as read at start-up
        self._installed: dict[str, int] = {}  # net id -> stream generation whose listing is programmed
        self.global_rec: Reconciler[str] = Reconciler("global", self._reconcile_global)
        self.reconcilers: list[Reconciler] = [
            self.nets.rec,
            self.vteps.rec,
            self.remote.rec,
            self.policy.rec,
            self.qos.rec,
            self.services.rec,
            self.infra.rec,
            self.bgp.rec,
            self.global_rec,
        ]
        self._watches = [
            (keys.NETS, self._on_network),
            (keys.service_prefix(keys.SVC_NETPLUGIN_VTEP), self.vteps.on_update),
            (keys.POLICY_RULE, self.policy.on_update),
            (keys.EPGS, self._on_group),
            (keys.SERVICE_LB, self._on_service_lb),
            (keys.PROVIDER, self.services.on_provider),
            (keys.MASTER_CONFIG_GLOBAL, self._on_global),
            (keys.BGP, self.bgp.on_update),
        ]
        self._arp_applied = ""
        self._streams: dict[str, tuple[PumpedIterator, Mirror]] = {}

    def _on_global(self, _tail: str, value: str | None) -> None:
        """Global config changes: ``arp-mode`` toggles ARP proxy/flood; ``pvt-subnet`` re-addresses
        contivh0 and rewrites the nat rules and host access flows live; ``fwd-mode`` rebuilds the vxlan
        bridge's pipeline in the new mode (the original re-initialised its driver)."""
        if not value:
            return
        try:
            g = GlobalConfig.from_json(value)
        except ValueError:
            return
        self.arp_mode = g.arpMode or self.arp_mode
        self.global_rec.enqueue("arpMode")
        if g.pvtSubnet and g.pvtSubnet != self.pvt_subnet:
            self.pvt_subnet = g.pvtSubnet
            self.global_rec.enqueue("hostAccess")
        if g.fwdMode in ("bridge", "routing") and g.fwdMode != self.fwd_mode:
            self.fwd_mode = g.fwdMode
            self.global_rec.enqueue("fwdMode")
            self.global_rec.enqueue(SERVED)  # routing serves whole tenants

    # -- start-up steps ----------------------------------------------------------------------
    async def _wait_global(self) -> None:
        n = 0
        while True:
            try:
                kv = await self.kv.get(keys.MASTER_CONFIG_GLOBAL)
                g = GlobalConfig.from_json(kv.value) if kv is not None else GlobalConfig()
                if g.fwdMode:
                    if g.fwdMode != self.cfg.fwdmode:
                        raise FatalConfigError(
                            f"netplugin's local forward mode [{self.cfg.fwdmode}] doesn't match "
                            f"global settings [{g.fwdMode}]"
                        )
                    self.arp_mode = g.arpMode or "proxy"
                    self.pvt_subnet = g.pvtSubnet or DEFAULT_PVT_SUBNET
                    return
                msg = "waiting for the global configuration from netmaster (/contiv.io/master/config/global)"
            except StoreError as e:
                msg = f"cannot reach the state store at {self.cfg.store_url}: {e}; retrying"
            except ValueError:
                msg = "malformed global configuration; waiting"
            if n % 5 == 0:
                log.warning(msg)
            n += 1
            await asyncio.sleep(1)

    async def _start_datapath(self) -> None:
        n = 0
        while True:
            try:
                await self.dp.start()
                return
            except ExternalServiceError as e:
                if n % 5 == 0:
                    log.error("OVS not usable (%s) at %s; retrying every second", e, self.cfg.ovsdb)
                n += 1
                await self.dp.ovs.close()
                await asyncio.sleep(1)

    async def _list(self) -> None:
        """Open a list+watch stream per prefix and apply its first Snapshot (the initial state)."""
        for prefix, handler in self._watches:
            it = list_and_watch(self.kv, prefix)
            mirror = Mirror()
            self._streams[prefix] = (it, mirror)
            evs = mirror.apply(await anext(it))
            metrics.WATCH_EVENTS.inc(prefix, amount=len(evs))
            for ev in evs:
                handler(ev.key[len(prefix) :], ev.value if ev.type == "put" else None)
        # then the endpoints of the served networks, each from its own listing
        await retry_store("reading this host's endpoints", self._read_local_opers)
        await self.ep_watches.converge(self.served)

    def _on_group(self, epg_key: str, value: str | None) -> None:
        self.qos.on_update(epg_key, value)
        self.names.table.mark_stale()

    def _on_service_lb(self, svc: str, value: str | None) -> None:
        self.services.on_lb(svc, value)
        self.names.table.mark_stale()

    def _on_network(self, net_id: str, value: str | None) -> None:
        known = net_id in self.nets.desired
        self.nets.on_update(net_id, value)
        self.infra.on_update(net_id, value)
        if known != (net_id in self.nets.desired):  # (not on each address allocation's update)
            self.global_rec.enqueue(SERVED)  # routing mode, contivh1: a tenant's networks are served

    # -- served networks (served.py, docs/architecture.md "Served networks") ---------------------
    def served(self) -> set[str]:
        """The networks whose endpoints this agent watches now."""
        local = self.endpoints.local_networks() | set(self.infra.desired) | set(self.infra.applied)
        local |= {ep.netID for ep in self._local_opers.values()}  # (start-up, until re-bound)
        return served_networks(local, self.nets.desired, self.fwd_mode == "routing")

    async def _serve(self, net_id: str) -> None:
        """A local create on ``net_id`` (counted in ``endpoints.creating``): make sure the network is
        watched and its remote endpoints are programmed before the create goes on."""
        w = self.ep_watches
        if self._installed.get(net_id, -1) == w.generation(net_id):
            return  # (the stream's listing was programmed for an earlier create: nothing to wait for)
        opened = {net_id}
        if net_id not in w.networks():
            opened |= await w.converge(self.served)
        gens = {n: w.generation(n) for n in opened}
        if await self.remote.wait_installed(opened):
            self._installed.update(gens)
        else:
            log.warning("endpoint create on %s: remote endpoints still being programmed", net_id)

    def _released(self, net_id: str) -> None:
        """A local endpoint left ``net_id`` (or its create failed)."""
        self.nets.rec.enqueue(net_id)
        self.global_rec.enqueue(SERVED)

    async def _read_local_opers(self) -> None:
        """This host's endpoints (port record, then their oper records in one read): at start-up they
        decide the served networks before any stream is listed, so a restart converges to the
        same remote endpoints, and ``endpoints.restore`` re-binds from them."""
        kv = await self.kv.get(keys.ovs_driver_oper(self.cfg.host))
        rec = OvsDriverOper.from_json(kv.value) if kv else OvsDriverOper()
        ids = sorted(rec.LocalEpInfo)
        opers: dict[str, OperEndpoint] = {}
        for i in range(0, len(ids), 100):  # (get_many: at most 100 keys per request)
            batch = ids[i : i + 100]
            got_all = await self.kv.get_many([keys.ep_oper(e) for e in batch])
            for ep_id, got in zip(batch, got_all, strict=True):
                if got is not None:
                    try:
                        opers[ep_id] = OperEndpoint.from_json(got.value)
                    except (ValueError, TypeError):
                        log.warning("ignoring malformed oper record of local endpoint %s", ep_id)
        self._local_opers = opers

    def _net_in_use(self, net_id: str) -> bool:
        """A network stays programmed while a remote or local endpoint (or its infra port) uses it."""
        return (
            self.remote.uses(net_id)
            or self.infra.busy(net_id)
            or any(f"{e.network}.{e.tenant}" == net_id for e in self.endpoints.local.values())
        )

    async def _reconcile_global(self, key: str) -> None:
        if key == "hostAccess":
            await self._reconcile_host_access()
            return
        if key == "fwdMode":
            await self._reconcile_fwd_mode()
            self.global_rec.enqueue(SERVED)
            return
        if key == SERVED:
            await self.ep_watches.converge(self.served)
            open_now = self.ep_watches.networks()
            self._installed = {n: g for n, g in self._installed.items() if n in open_now}
            return
        if self.arp_mode != self._arp_applied:
            await self.dp.set_arp_mode(self.arp_mode)
            self._arp_applied = self.arp_mode

    async def _reconcile_host_access(self) -> None:
        """contivh0 + nat rules + host access flows for the current pvtSubnet (applied live on change)."""
        pvt = self.pvt_subnet
        if pvt == self._pvt_applied:
            return
        try:
            ofport = await self.dp.ensure_host_port(pvt, await self.endpoints.mtu())
        except ValidationError as e:  # a bad pvtSubnet in the store: keep what is applied
            log.error("host access not changed: %s", e)
            return
        self._pvt_applied = pvt
        log.info("host port %s ready: ofport %d, private subnet %s", HOST_PORT, ofport, pvt)

    async def _reconcile_fwd_mode(self) -> None:
        """Rebuild the vxlan bridge's pipeline in the global forwarding mode (live switch)."""
        mode = self.fwd_mode
        if mode == self.cfg.fwdmode:
            return
        log.info(
            "global forwarding mode changed from %s to %s: rebuilding the pipeline", self.cfg.fwdmode, mode
        )
        await self.dp.set_fwd_mode(mode)
        self.cfg.fwdmode = mode
        self.bgp.set_fwd_mode(mode)
        log.info("forwarding mode %s applied", mode)

    def reconcile_status(self) -> dict[str, dict[str, dict]]:
        return {r.name: r.status() for r in self.reconcilers}

    async def _settle(self) -> None:
        """Until every reconciler has tried every queued key (a key of one may enqueue keys of another)."""
        while not all(r.settled() for r in self.reconcilers):
            for r in self.reconcilers:
                await r.wait_settled()

    # -- loops ---------------------------------------------------------------------------------
    async def _watch(self, prefix: str, handler: Callable) -> None:
        """Feed the managers with the changes after the initial Snapshot (re-lists as diffs); each
        handler records the desired state and enqueues the key in its manager's reconciler."""
        it, mirror = self._streams[prefix]
        async for item in it:
            evs = mirror.apply(item)
            metrics.WATCH_EVENTS.inc(prefix, amount=len(evs))
            for ev in evs:
                handler(ev.key[len(prefix) :], ev.value if ev.type == "put" else None)

    async def _register(self) -> None:
        """Register ``netplugin`` (:9002, :9003) and ``netplugin.vtep``; retry every second while etcd is
        away. Afterwards the registry refreshes the leases and re-registers by itself after a lost lease."""
        cfg = self.cfg
        services = [
            ServiceInfo(keys.SVC_NETPLUGIN, cfg.ctrl_ip, RPC_PORTS[VXLAN_BRIDGE], hostname=cfg.host),
            ServiceInfo(keys.SVC_NETPLUGIN, cfg.ctrl_ip, RPC_PORTS[VLAN_BRIDGE], hostname=cfg.host),
            ServiceInfo(keys.SVC_NETPLUGIN_VTEP, cfg.vtep_ip, cfg.vxlan_port, hostname=cfg.host),
        ]
        n = 0
        for info in services:
            while True:
                try:
                    await self.registry.register(info)
                    break
                except StoreError as e:
                    if n % 5 == 0:
                        log.warning("service registration of %s failed: %s; retrying", info.key, e)
                    n += 1
                    await asyncio.sleep(1)
        log.info("registered services %s", [i.key for i in services])

    async def _start_debug(self) -> GuardedRunner:
        """Bind the debug REST server before anything else, so that /healthz and /readyz answer
        during start-up (the other routes answer 503 until the first sync is done). 127.0.0.1:9090
        unless --debug-listen says otherwise (":PORT" = every interface, as in Go)."""
        host, port = split_hostport(self.cfg.debug_listen, default_host="0.0.0.0")
        try:
            runner = await serve_tcp(make_app(self), [(host, port)])
        except OSError as e:
            raise FatalConfigError(f"cannot listen on --debug-listen {self.cfg.debug_listen}: {e}") from e
        log.info("debug REST server listening on %s", self.cfg.debug_listen)
        return runner

    async def _serve_docker(self) -> None:
        """Docker libnetwork remote driver + IPAM on ``--plugin-socket`` (docker and swarm-mode)."""
        if self.cfg.mode not in ("docker", "swarm-mode"):
            return
        from contivpy.netplugin.docker.plugin import DockerPlugin

        host = self.cfg.docker_host if self.cfg.docker_host not in ("", "none") else None
        plugin = DockerPlugin(
            self.kv, AgentBackend(self.endpoints), socket_path=self.cfg.plugin_socket, docker_host=host
        )
        log.info("Docker plugin listening on %s", self.cfg.plugin_socket)
        await plugin.run()

    def _load_k8s(self) -> None:
        """The Kubernetes API for pod labels: ``--k8s-config`` if that file exists (any mode), else
        the service account in kubernetes mode; a bad file stops the agent like a bad flag. Its
        ``SVC_SUBNET`` is the cluster-IP range routed through contivh1 (managers/infra.py)."""
        from contivpy.common.errors import ValidationError
        from contivpy.netplugin.cni import k8sapi as cni_k8s
        from contivpy.netplugin.managers.infra import svc_subnet_of

        try:
            self.infra.svc_subnet = svc_subnet_of(self.cfg.k8s_config, self.cfg.mode == "kubernetes")
            k8s = cni_k8s.load(self.cfg.k8s_config, None if self.cfg.mode == "kubernetes" else {})
            if k8s is not None:
                self.pods.k8s = cni_k8s.K8sApi(k8s)
                log.info("pod labels from the Kubernetes API at %s", k8s.server)
        except (ValidationError, OSError, ValueError) as e:
            raise FatalConfigError(str(e)) from None

    async def _serve_cni(self) -> None:
        """The CNI plugin's server on ``--cni-socket``, in every mode (docs/cni.md)."""
        server = CniServer(self.pods, self.cfg.cni_socket)
        try:
            await server.start()
        except OSError as e:  # the agent keeps serving Docker and the data plane
            log.error("CNI server not started on %s: %s", self.cfg.cni_socket, e)
            return
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    async def run(self) -> None:
        for w in self.cfg.warnings:
            log.warning(w)
        debug = await self._start_debug()
        self._load_k8s()
        gc_timer: asyncio.TimerHandle | None = None
        try:
            await self._wait_global()
            await self._start_datapath()
            for fp in self.dp.flows.values():
                self.names.attach(fp.agent)
            await self._list()
            async with asyncio.TaskGroup() as tg:
                self.global_rec.enqueue("arpMode")
                self.global_rec.enqueue("hostAccess")
                for r in self.reconcilers:
                    tg.create_task(r.run())
                    r.mark_synced()
                await self._settle()
                listed = {**self._local_opers, **self.remote.take_listed_local()}
                await retry_store("re-binding local endpoints", lambda: self.endpoints.restore(listed))
                self._local_opers = {}  # the re-bound ones are local endpoints now
                await retry_store("restoring CNI attachments", self.pods.restore)
                await self.vteps.prune_stale()
                await self.infra.prune()
                await self.dp.sync_complete()
                try:  # VRF ids of tenants whose networks went while the agent was down
                    await self.nets.vrfs.prune(self.nets.tenants())
                except StoreError as e:
                    log.warning("stale VRF ids not pruned: %s", e)
                for prefix, handler in self._watches:
                    tg.create_task(self._watch(prefix, handler))
                tg.create_task(self.ep_watches.run())
                self.global_rec.enqueue(SERVED)  # (a restored endpoint that could not be re-bound)
                tg.create_task(self._register())
                tg.create_task(self._serve_docker())
                tg.create_task(self._serve_cni())
                tg.create_task(self.names.run())
                tg.create_task(self.bgp.run())
                self.ready.set()
                gc_timer = asyncio.get_running_loop().call_later(STARTUP_GC_DELAY, startup.resume)
                log.info("netplugin started on host %s (vtep %s)", self.cfg.host, self.cfg.vtep_ip)
        finally:
            if gc_timer is not None:
                gc_timer.cancel()
            startup.resume()
            for it, _ in self._streams.values():
                await it.aclose()
            await self.ep_watches.aclose()
            # Not deregistered on shutdown: a restarting agent keeps its peers' tunnels (lease TTL 10 s).
            await self.registry.close(deregister=False)
            await self.netmaster.close()
            await self.bgp.close()
            if self.pods.k8s is not None:
                await self.pods.k8s.close()
            await self.dp.stop()
            await self.kv.close()
            await debug.cleanup()
