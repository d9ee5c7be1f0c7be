"""netmaster composition root: store, RPC server, REST listener(s), leadership, registry.

Start-up order (docs/original.md §1.3, made fast: first API answer in well under 400 ms):
1. open the KV store (``contivpy.common.kv.open_store``: ``http(s)://``/``etcd://`` -> EtcdKV,
   ``memory://`` -> in-process MemoryKV for demos);
2. start the ofnet master JSON-RPC server on <control-ip>:<rpc-port> (9001);
3. listen on the external address and, if different, the control address (both serve the same
   app; while follower every request is proxied to the leader);
4. register services ``netmaster`` and ``netmaster.rpc`` (Role follower) with
   ``contivpy.common.registry.ServiceRegistry`` (retried until the store answers), and run the
   election (``contivpy.common.election.LeaderElection`` on the leader lock, holder id = control
   URL, TTL ``CONTIV_NETMASTER_LEADER_TTL`` or ``DEFAULT_LEADER_TTL`` = 6 s; a restarted netmaster
   retakes its own lock). With 6 s, a kill -9'd leader's lock expires 4-6 s after its last refresh
   and the followers, watching the key, campaign the moment it is deleted (decisions.md).
On becoming leader: create tenant ``default`` and the global object (``Crud.ensure_defaults``,
retried while still leader; it also indexes state stored before the subnet and address indexes), then flip to leader (API served locally) and switch both services
to Role leader. On losing the lock: back to follower at once (synchronous callback: no request is
served or fenced as leader afterwards), then Role follower. Transitions are handled in order by
one task reading ``election.changes()``. The lock holder (``/info`` leader-ip, proxy target) is
read from the election's watch. Leader-only writers (CRUD, follow-up jobs, the /plugin/*
Allocator and its providers, docker reconcile, epcleanup) get ``FencedStore(kv, election.fence)``:
every write they send carries the current term's lock compare or is refused (NotLeaderError);
election, service registry and the object cache use the raw store. With ``--tls-*`` every
listener serves https and the certificate's fingerprint is published for the follower proxy and
netplugin (netmaster/tls.py); ``--auth`` is the middleware of netmaster/auth.py (users and tokens:
auth_store.py). SIGTERM/SIGINT:
delete the lock and service keys and revoke their leases (a follower takes over at once), close.
Start-up cost (time to the first answer, docs/benchmarks.md): modules a default start does not use
load on first use (auth, TLS, OpenAPI, Docker and Kubernetes watchers, most CRUD hooks); the
cyclic GC, paused by ``__main__`` (common/startup.py), resumes ``STARTUP_GC_DELAY`` seconds after
the listeners are open.

Everything runs in one ``asyncio.TaskGroup``; no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import replace

from aiohttp import web

from contivpy.common import startup
from contivpy.common.election import LeaderElection
from contivpy.common.errors import StoreError
from contivpy.common.httpserve import serve_tcp, split_hostport
from contivpy.common.kv import open_store
from contivpy.common.kv.fenced import FencedStore
from contivpy.common.registry import ServiceInfo, ServiceRegistry
from contivpy.model import keys
from contivpy.netmaster.api.app import make_app
from contivpy.netmaster.api.keys import LeaderState
from contivpy.netmaster.api.plugin_routes import allocator_of
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.objcache import ObjCache
from contivpy.netmaster.rpc import OfnetMaster

log = logging.getLogger("netmaster")

DEFAULT_LEADER_TTL = 6  # seconds; the original used 30 (decisions.md: leader lease TTL)
STARTUP_GC_DELAY = 1.0  # seconds after the listeners are open: the cyclic GC is on again (startup.py)


def leader_ttl(env) -> int:
    """The leader lock's lease TTL: ``CONTIV_NETMASTER_LEADER_TTL`` (seconds, >= 2) or the default."""
    raw = env.get("CONTIV_NETMASTER_LEADER_TTL", "")
    if not raw:
        return DEFAULT_LEADER_TTL
    try:
        ttl = int(raw)
    except ValueError:
        ttl = 0
    if ttl < 2:
        log.warning(
            "ignoring CONTIV_NETMASTER_LEADER_TTL=%r (an integer >= 2); using %ds", raw, DEFAULT_LEADER_TTL
        )
        return DEFAULT_LEADER_TTL
    return ttl


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = LeaderState(local_ip=cfg.control_ip)
        self.kv = None
        self.fenced: FencedStore | None = None  # the view every leader-only writer gets
        self.crud: Crud | None = None
        self.election: LeaderElection | None = None
        self.registry: ServiceRegistry | None = None
        self.services: list[ServiceInfo] = []
        self._role = "follower"
        self._svc_lock = asyncio.Lock()
        self.runners: list[web.AppRunner] = []
        self.rpc = OfnetMaster(cfg.control_ip, cfg.rpc_port)
        self._stop = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._bg: list[asyncio.Task] = []
        self._docker_task: asyncio.Task | None = None
        self._k8s_task: asyncio.Task | None = None

    # ---- leadership ----------------------------------------------------------------------

    def _on_transition(self, leader: bool) -> None:
        """Synchronous part of a transition: stop serving as leader the moment the lock is lost."""
        if not leader:
            self.state.is_leader = False
            if self._docker_task is not None:  # the Docker network reconciler is leader-only
                self._docker_task.cancel()
                self._docker_task = None
            if self._k8s_task is not None:  # so is the Kubernetes watcher (netmaster/k8snet)
                self._k8s_task.cancel()
                self._k8s_task = None

    async def _transitions(self, changes) -> None:
        async for change in changes:
            try:
                if change == "leader":
                    await self._become_leader()
                else:
                    log.warning("lost leadership; new leader %r", self.state.leader_url)
                    await self._set_role("follower")
            except Exception as exc:  # a failed transition never ends the daemon
                log.warning("leadership transition (%s) failed: %s", change, exc, exc_info=True)

    async def _become_leader(self) -> None:
        assert self.crud is not None and self.election is not None
        while self.election.is_leader:
            try:
                await self.crud.ensure_defaults(self.cfg.fwd_mode)
                break
            except Exception as exc:  # store trouble: retry while we still hold the lock
                log.warning("leader start failed (retrying): %s", exc)
                await asyncio.sleep(1)
        if not self.election.is_leader:
            return
        self.state.is_leader = True
        log.info("became leader (%s)", self.cfg.control_url)
        await self._set_role("leader")
        # the Allocator (endpoints.py, IPAM, state records) is made here, after the first answers
        allocator = allocator_of(self.crud)
        try:
            await allocator.providers.prune()
        except Exception as exc:  # best effort; the next leader start retries
            log.warning("service provider prune failed: %s", exc)
        if self.cfg.cluster_mode == "docker" and self._tg is not None and self._docker_task is None:
            self._docker_task = self._tg.create_task(self._reconcile_docker())
        if self.cfg.cluster_mode == "kubernetes" and self._tg is not None and self._k8s_task is None:
            self._k8s_task = self._tg.create_task(self._watch_kubernetes())
        if self._tg is not None:  # leaked allocAddress results (reclaim.py)
            from contivpy.netmaster import reclaim

            self._bg.append(self._tg.create_task(reclaim.run(allocator, lambda: self.state.is_leader)))

    async def _run_election(self) -> None:
        """``election.run()``, restarted should it ever fail (store errors are handled inside)."""
        assert self.election is not None
        while True:
            try:
                await self.election.run()
                return
            except Exception as exc:
                log.warning("leader election failed, restarting: %s", exc, exc_info=True)
                self.state.is_leader = False
                await asyncio.sleep(1)

    # ---- service registry ----------------------------------------------------------------

    async def _set_role(self, role: str) -> None:
        """Record the Role and rewrite the registered services (the refresher retries failures)."""
        assert self.registry is not None
        async with self._svc_lock:
            self._role = role
            registered = {info.key for info in self.registry.registered()}
            for info in self.services:
                if info.key in registered:
                    try:
                        await self.registry.update_role(info, role)
                    except StoreError as exc:
                        log.warning("service registration update failed: %s", exc)

    async def _register_services(self) -> None:
        assert self.registry is not None
        pending = list(self.services)
        while pending:
            async with self._svc_lock:
                try:
                    await self.registry.register(replace(pending[0], role=self._role))
                    pending.pop(0)
                    continue
                except StoreError as exc:  # store not reachable yet: keep serving, retry
                    log.warning("service registration failed: %s", exc)
            await asyncio.sleep(1)

    # ---- docker / listeners --------------------------------------------------------------

    async def _reconcile_docker(self) -> None:
        """Leader only (cancelled when leadership is lost): keep --docker-host's Docker networks
        in line with etcd (``netmaster/dockerrec.py``)."""
        from contivpy.netmaster.dockerrec import DocknetReconciler

        assert self.crud is not None
        while True:
            rec = None
            try:
                rec = DocknetReconciler(self.fenced, self.cfg)  # FencedStore: every write carries the fence
                self.crud.extras["docknet"] = rec
                await rec.run()
            except Exception as exc:  # never ends the daemon: start over with a full sync
                log.warning("docker network reconciler failed, restarting: %s", exc, exc_info=True)
                await asyncio.sleep(1)
            finally:
                if rec is not None and self.crud.extras.get("docknet") is rec:
                    del self.crud.extras["docknet"]

    async def _watch_kubernetes(self) -> None:
        """Leader only (cancelled when leadership is lost): translate the Kubernetes API's
        namespaces and NetworkPolicies into contiv objects (``netmaster/k8snet``)."""
        from contivpy.netmaster.k8snet.watcher import run_leader  # kubernetes mode only

        while True:
            try:
                await run_leader(self.crud, self.cfg.k8s_config)
            except Exception as exc:  # never ends the daemon: start over with full lists
                log.warning("kubernetes watcher failed, restarting: %s", exc, exc_info=True)
                await asyncio.sleep(1)

    async def _listen(self, app: web.Application) -> None:
        """Serve ``app`` on the listen URL and, when it is another socket, the control URL, through
        the guarded server (common/httpserve.py: header/body/idle timeouts, plain 400s)."""
        addrs = [self.cfg.listen_url]
        ext_host, ext_port = self.cfg.listen_url.rsplit(":", 1)
        ctl_host, ctl_port = self.cfg.control_url.rsplit(":", 1)
        if (ctl_host, ctl_port) != (ext_host, ext_port) and not (
            ext_host == "0.0.0.0" and ctl_port == ext_port
        ):
            addrs.append(self.cfg.control_url)
        ssl_ctx = None
        if self.cfg.tls_cert_file:
            from contivpy.netmaster.tls import server_context

            ssl_ctx = server_context(self.cfg.tls_cert_file, self.cfg.tls_key_file)
        pairs = [split_hostport(a, default_host="0.0.0.0") for a in addrs]
        self.runners.append(await serve_tcp(app, pairs, ssl_context=ssl_ctx))
        for addr in addrs:
            log.info("netmaster listening on %s%s", addr, " (https)" if ssl_ctx else "")

    async def _publish_tls_pin(self) -> None:
        """Publish our certificate's fingerprint (the follower proxy and netplugin pin it and then use
        https), or remove a stale one when we serve plain http; retried until the store answers."""
        fp = ""
        if self.cfg.tls_cert_file:
            from contivpy.netmaster.tls import fingerprint

            fp = fingerprint(self.cfg.tls_cert_file)
        key = keys.AUTH_TLS_PIN + self.cfg.control_url
        while True:
            try:
                await (self.kv.put(key, fp) if fp else self.kv.delete(key))
                return
            except StoreError as exc:
                log.warning("publishing the TLS certificate fingerprint failed (retrying): %s", exc)
                await asyncio.sleep(1)

    async def run(self) -> None:
        cfg = self.cfg
        self.kv = open_store(cfg.etcd_url, cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file)
        ttl = leader_ttl(os.environ)
        self.election = LeaderElection(self.kv, keys.LEADER_LOCK, holder_id=cfg.control_url, ttl=ttl)
        self.election.add_callback(self._on_transition)
        self.state.election = self.election
        # Every leader-only writer gets the fenced view: each write carries the compare on this
        # term's lock revision (or is refused before it is sent when we are not the leader).
        self.fenced = FencedStore(self.kv, self.election.fence)
        self.crud = Crud(self.fenced, cfg)
        self.crud.extras["rpc"] = self.rpc
        self.crud.cache = ObjCache(self.kv)
        await self.rpc.start()
        app = make_app(self.crud, cfg, self.fenced, self.state, self.rpc, auth_kv=self.kv)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        gc_timer = loop.call_later(STARTUP_GC_DELAY, startup.resume)  # after the first answers
        self.registry = ServiceRegistry(self.kv)
        self.services = [
            ServiceInfo(keys.SVC_NETMASTER, cfg.control_ip, cfg.control_port, role="follower"),
            ServiceInfo(keys.SVC_NETMASTER_RPC, cfg.control_ip, self.rpc.port, role="follower"),
        ]
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tasks = [
                    tg.create_task(self._transitions(self.election.changes())),
                    tg.create_task(self._run_election()),
                    tg.create_task(self._register_services()),
                    tg.create_task(self.crud.cache.run()),
                    tg.create_task(self._publish_tls_pin()),
                ]
                await self._stop.wait()
                self._tg = None
                for t in tasks + self._bg + [self._docker_task, self._k8s_task]:
                    if t is not None:
                        t.cancel()
        finally:
            gc_timer.cancel()
            startup.resume()
            await self.close()

    async def close(self) -> None:
        if self.election is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.election.stop(), 3)
        if self.registry is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.registry.close(), 3)
        for runner in self.runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        await self.rpc.close()
        if self.kv is not None:
            with contextlib.suppress(Exception):
                await self.kv.close()


__all__ = ["Daemon"]
