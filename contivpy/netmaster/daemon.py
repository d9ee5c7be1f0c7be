"""netmaster composition root: store, RPC server, REST listener(s), leadership, registry.

Start-up order (contiv-reference §1.3, made fast: first API answer in well under 400 ms):
1. open the KV store (``contivpy.common.kv.open_store``: ``http(s)://``/``etcd://`` -> EtcdKV,
   ``memory://`` -> in-process MemoryKV for demos);
2. start the ofnet master JSON-RPC server on <control-ip>:<rpc-port> (9001);
3. listen on the external address and, if different, the control address (both serve the same
   app; while follower every request is proxied to the leader);
4. register services ``netmaster`` and ``netmaster.rpc`` (Role follower) with
   ``contivpy.common.registry.ServiceRegistry`` (retried until the store answers), and run the
   election (``contivpy.common.election.LeaderElection`` on the leader lock, holder id = control
   URL, TTL ``CONTIV_NETMASTER_LEADER_TTL`` or 30 s; a restarted netmaster retakes its own lock).
On becoming leader: create tenant ``default`` and the global object (``Crud.ensure_defaults``,
retried while still leader), then flip to leader (API served locally) and switch both services
to Role leader. On losing the lock: back to follower at once (synchronous callback: no request is
served or fenced as leader afterwards), then Role follower. Transitions are handled in order by
one task reading ``election.changes()``. The lock holder (``/info`` leader-ip, proxy target) is
read from the election's watch. Every CRUD txn carries ``election.fence()``. SIGTERM/SIGINT:
delete the lock and service keys and revoke their leases (a follower takes over at once), close.

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

from contivpy.common.election import LeaderElection
from contivpy.common.errors import StoreError
from contivpy.common.kv import open_store
from contivpy.common.registry import ServiceInfo, ServiceRegistry
from contivpy.model import keys
from contivpy.netmaster.api.app import make_app
from contivpy.netmaster.api.keys import LeaderState
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.objcache import ObjCache
from contivpy.netmaster.rpc import OfnetMaster

log = logging.getLogger("netmaster")


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = LeaderState(local_ip=cfg.control_ip)
        self.kv = None
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

    # ---- leadership ----------------------------------------------------------------------

    def _fence(self):
        election = self.election
        return election.fence() if election is not None and election.is_leader else None

    def _on_transition(self, leader: bool) -> None:
        """Synchronous part of a transition: stop serving as leader the moment the lock is lost."""
        if not leader:
            self.state.is_leader = False

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
        allocator = self.crud.extras.get("allocator")
        if allocator is not None:
            try:
                await allocator.providers.prune()
            except Exception as exc:  # best effort; the next leader start retries
                log.warning("service provider prune failed: %s", exc)
        await self._set_role("leader")
        if self.cfg.cluster_mode == "docker" and self._tg is not None:
            self._bg.append(self._tg.create_task(self._reconcile_docker()))
        if allocator is not None and self._tg is not None:  # leaked allocAddress results (reclaim.py)
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
        """Recreate Docker networks missing after a crash between commit and Docker call."""
        try:
            from contivpy.netmaster import dockernet
            from contivpy.netmaster.crud import TxnContext
            from contivpy.netmaster.hooks.network import docker_client

            assert self.crud is not None
            n = await dockernet.reconcile_docker_networks(
                self.kv, docker_client(TxnContext(self.crud)), self.cfg
            )
            if n:
                log.info("recreated %d missing docker networks", n)
        except Exception as exc:  # Docker down: the next leader start retries
            log.warning("docker network reconcile failed: %s", exc)

    async def _listen(self, app: web.Application) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self.runners.append(runner)
        addrs = [self.cfg.listen_url]
        ext_host, ext_port = self.cfg.listen_url.rsplit(":", 1)
        ctl_host, ctl_port = self.cfg.control_url.rsplit(":", 1)
        if (ctl_host, ctl_port) != (ext_host, ext_port) and not (
            ext_host == "0.0.0.0" and ctl_port == ext_port
        ):
            addrs.append(self.cfg.control_url)
        for addr in addrs:
            host, port = addr.rsplit(":", 1)
            await web.TCPSite(runner, host or "0.0.0.0", int(port), reuse_address=True).start()
            log.info("netmaster listening on %s", addr)

    async def run(self) -> None:
        cfg = self.cfg
        self.kv = open_store(cfg.etcd_url)
        ttl = int(os.environ.get("CONTIV_NETMASTER_LEADER_TTL", "30"))
        self.election = LeaderElection(self.kv, keys.LEADER_LOCK, holder_id=cfg.control_url, ttl=ttl)
        self.election.add_callback(self._on_transition)
        self.state.election = self.election
        self.crud = Crud(self.kv, cfg, fence=self._fence)
        self.crud.extras["rpc"] = self.rpc
        self.crud.cache = ObjCache(self.kv)
        await self.rpc.start()
        app = make_app(self.crud, cfg, self.kv, self.state, self.rpc)
        allocator = self.crud.extras.get("allocator")
        if allocator is not None:  # /plugin/updateEndpoint start/die -> service providers
            allocator.provider_update = allocator.providers.update
        await self._listen(app)
        self.registry = ServiceRegistry(self.kv)
        self.services = [
            ServiceInfo(keys.SVC_NETMASTER, cfg.control_ip, cfg.control_port, role="follower"),
            ServiceInfo(keys.SVC_NETMASTER_RPC, cfg.control_ip, self.rpc.port, role="follower"),
        ]
        loop = asyncio.get_running_loop()
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
                ]
                await self._stop.wait()
                self._tg = None
                for t in tasks + self._bg:
                    t.cancel()
        finally:
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
