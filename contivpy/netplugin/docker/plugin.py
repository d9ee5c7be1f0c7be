"""Composition of the Docker side of netplugin: ``DockerPlugin(...).run()``.

The agent (contivpy.netplugin daemon) builds one ``DockerPlugin`` in docker mode and runs it in
its TaskGroup:

    plugin = DockerPlugin(kv, backend, socket_path=cfg.plugin_socket, docker_host=cfg.docker_host)
    tg.create_task(plugin.run())

- serves the NetworkDriver + IpamDriver socket (server.py, handlers.py);
- with a ``docker_host``: keeps the local engine's networks in sync with etcd (sync.py), resolves
  Docker network ids through the engine, and follows the engine's container ``start``/``die``
  events (events.py): a started container's name, id and labels are recorded in its endpoint
  state, a dead one stops being a service provider (the backend's optional ``record_container``
  and ``container_died``, which the agent sends to netmaster ``/plugin/updateEndpoint``). With
  ``events=False`` the Join hook of names.py records names instead (polling the engine after
  each Join). DNS itself is answered by the agent's name server (``netplugin/nameserver.py``)
  from OpenFlow packet-ins, in any mode;
- ``run()`` returns only when cancelled; it removes the socket on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contivpy.common.dockerapi import DockerClient
from contivpy.common.kv.base import KVStore

from .backend import EndpointBackend
from .events import ContainerEvents
from .handlers import PluginHandlers
from .names import ContainerNames
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
        events: bool = True,
        events_max_backoff: float = 10.0,
    ) -> None:
        self.kv = kv
        self.engine = DockerClient(docker_host) if docker_host else None
        self.resolver = NetworkResolver(kv, self.engine)
        record = getattr(backend, "record_container", None) if dns else None
        self.events: ContainerEvents | None = None
        if self.engine is not None and record is not None and events:

            async def exists(state_id: str) -> bool:
                return await backend.get_endpoint(state_id) is not None

            self.events = ContainerEvents(
                self.engine,
                self.resolver,
                exists,
                record,
                getattr(backend, "container_died", None),
                driver=driver_name,
                max_backoff=events_max_backoff,
            )
        self.names = (
            ContainerNames(self.engine, record) if self.engine and record and self.events is None else None
        )
        self.handlers = PluginHandlers(
            kv, backend, self.resolver, on_join=self.names.on_join if self.names else None
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
                if self.events is not None:
                    tg.create_task(self.events.run())
                tg.create_task(asyncio.Event().wait())  # serve until cancelled
        finally:
            with contextlib.suppress(Exception):
                await self.server.stop()
            if self.names is not None:
                await self.names.close()
            if self.engine is not None:
                with contextlib.suppress(Exception):
                    await self.engine.close()
