"""Composition of the Docker side of netplugin: ``DockerPlugin(...).run()``.

The agent (contivpy.netplugin daemon) builds one ``DockerPlugin`` in docker mode and runs it in
its TaskGroup:

    plugin = DockerPlugin(kv, backend, socket_path=cfg.plugin_socket, docker_host=cfg.docker_host)
    tg.create_task(plugin.run())

- serves the NetworkDriver + IpamDriver socket (server.py, handlers.py);
- with a ``docker_host``: keeps the local engine's networks in sync with etcd (sync.py), resolves
  Docker network ids through the engine, and learns container names for DNS (names.py);
- DNS: a resolver socket on 127.0.0.2:53 in every local container's netns (names.py);
- ``run()`` returns only when cancelled; it removes the socket on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contivpy.common.dockerapi import DockerClient
from contivpy.common.kv.base import KVStore

from .backend import EndpointBackend
from .handlers import PluginHandlers
from .names import ContainerDns
from .resolver import NetworkResolver
from .server import DEFAULT_SOCKET, PluginServer
from .sync import DockerNetworkSync

log = logging.getLogger(__name__)


class DockerPlugin:
    def __init__(
        self,
        kv: KVStore,
        backend: EndpointBackend,
        socket_path: str = DEFAULT_SOCKET,
        docker_host: str | None = None,
        sync_networks: bool = True,
        driver_name: str = "netplugin",
        resync: float = 30.0,
        dns: bool = True,
    ) -> None:
        self.kv = kv
        self.engine = DockerClient(docker_host) if docker_host else None
        self.resolver = NetworkResolver(kv, self.engine)
        self.dns = ContainerDns(kv, self.engine) if dns else None
        self.handlers = PluginHandlers(
            kv,
            backend,
            self.resolver,
            on_join=self.dns.on_join if self.dns else None,
            on_delete=self.dns.on_delete if self.dns else None,
        )
        self.server = PluginServer(self.handlers, socket_path)
        self.sync: DockerNetworkSync | None = None
        if self.engine is not None and sync_networks:
            self.sync = DockerNetworkSync(kv, self.engine, self.resolver, driver_name, resync)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await self.server.start()
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as tg:
                if self.sync is not None:
                    tg.create_task(self.sync.run())
                if self.dns is not None:
                    tg.create_task(self.dns.run())
                tg.create_task(asyncio.Event().wait())  # serve until cancelled
        finally:
            with contextlib.suppress(Exception):
                await self.server.stop()
            if self.engine is not None:
                with contextlib.suppress(Exception):
                    await self.engine.close()
