"""netmaster composition root: store, RPC server, REST listener(s), leadership, registry.

Start-up order (contiv-reference §1.3, made fast: first API answer in well under 400 ms):
1. open the KV store (``http(s)://`` -> EtcdKV, ``memory://`` -> in-process MemoryKV for demos);
2. start the ofnet master JSON-RPC server on <control-ip>:<rpc-port> (9001);
3. listen on the external address and, if different, the control address (both serve the same
   app; while follower every request is proxied to the leader);
4. register services ``netmaster`` and ``netmaster.rpc`` (Role follower), then run the election.
On becoming leader: create tenant ``default`` and the global object (``Crud.ensure_defaults``),
then flip to leader (API served locally) and re-register with Role leader. On losing the lock:
back to follower. SIGTERM/SIGINT: revoke leases (lock and services vanish at once), close.

Everything runs in one ``asyncio.TaskGroup``; no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from urllib.parse import urlparse

from aiohttp import web

from contivpy.netmaster.api.app import make_app
from contivpy.netmaster.api.keys import LeaderState
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.leader import Leadership, ServiceRegistration
from contivpy.netmaster.objcache import ObjCache
from contivpy.netmaster.rpc import OfnetMaster

log = logging.getLogger("netmaster")


async def open_store(url: str):
    u = urlparse(url)
    if u.scheme == "memory":
        from contivpy.common.kv.memory import MemoryKV

        return MemoryKV()
    from contivpy.common.kv.etcd import EtcdKV

    return EtcdKV(u.hostname or "127.0.0.1", u.port or 2379, tls=u.scheme == "https")


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = LeaderState(local_ip=cfg.control_ip)
        self.kv = None
        self.crud: Crud | None = None
        self.leadership: Leadership | None = None
        self.services: ServiceRegistration | None = None
        self.runners: list[web.AppRunner] = []
        self.rpc = OfnetMaster(cfg.control_ip, cfg.rpc_port)
        self._stop = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._bg: list[asyncio.Task] = []

    async def _on_change(self, leader: bool, holder: str) -> None:
        assert self.crud is not None and self.services is not None
        if leader:
            self.state.leader_url = holder
            await self.crud.ensure_defaults(self.cfg.fwd_mode)
            self.state.is_leader = True
            log.info("became leader (%s)", holder)
            await self.services.set_role("leader")
            if self.cfg.cluster_mode == "docker" and self._tg is not None:
                self._bg.append(self._tg.create_task(self._reconcile_docker()))
        else:
            was = self.state.is_leader
            self.state.is_leader = False
            self.state.leader_url = holder
            if was:
                log.warning("lost leadership; new leader %r", holder)
                await self.services.set_role("follower")
            else:
                log.info("following leader %r", holder)

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
        self.kv = await open_store(cfg.etcd_url)
        ttl = int(os.environ.get("CONTIV_NETMASTER_LEADER_TTL", "30"))
        self.leadership = Leadership(self.kv, cfg.control_url, self._on_change, ttl=ttl)
        self.crud = Crud(self.kv, cfg, fence=lambda: self.leadership.fence if self.leadership else None)
        self.crud.extras["rpc"] = self.rpc
        self.crud.cache = ObjCache(self.kv)
        await self.rpc.start()
        app = make_app(self.crud, cfg, self.kv, self.state, self.rpc)
        await self._listen(app)
        self.services = ServiceRegistration(
            self.kv,
            [
                ("netmaster", cfg.control_ip, cfg.control_port),
                ("netmaster.rpc", cfg.control_ip, self.rpc.port),
            ],
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tasks = [
                    tg.create_task(self.leadership.run()),
                    tg.create_task(self._services_loop()),
                    tg.create_task(self.crud.cache.run()),
                ]
                await self._stop.wait()
                self._tg = None
                for t in tasks + self._bg:
                    t.cancel()
        finally:
            await self.close()

    async def _services_loop(self) -> None:
        assert self.services is not None
        while True:
            try:
                await self.services.publish()
                break
            except Exception as exc:  # store not reachable yet: keep serving, retry
                log.warning("service registration failed: %s", exc)
                await asyncio.sleep(1)
        await self.services.run()

    async def close(self) -> None:
        for closer in (self.leadership, self.services):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closer.close(), 3)
        for runner in self.runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        await self.rpc.close()
        if self.kv is not None:
            with contextlib.suppress(Exception):
                await self.kv.close()


__all__ = ["Daemon", "open_store"]
