"""Container names for DNS: after Join, the owning host tells netmaster which container holds the
endpoint, under which name and with which labels (docs/original.md §2.4 ``/plugin/updateEndpoint``
with ``EndpointID``, ``ContainerID``, ``EPCommonName``, ``Labels``, ``Event: start``); netmaster
writes them into ``/contiv.io/state/eps/<id>`` (CAS), every agent's name server
(``netplugin/nameserver.py``) answers from there, and the labels make the container a provider of
the service LBs whose selectors they carry.

Docker's Join carries no container id or name: the container is found through the local engine as
the one whose network settings hold the joined endpoint id (polled until it runs, <= 60 s). After
an agent restart nothing needs redoing: the names are already in etcd.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from contivpy.common.dockerapi import DockerClient
from contivpy.common.errors import ContivError

log = logging.getLogger(__name__)

#: ``record(state_id, name, container_id, labels)``: store the container of an endpoint (netmaster's route)
Recorder = Callable[[str, str, str, dict[str, str]], Awaitable[None]]


class ContainerNames:
    """Join hook: learn the container of a joined endpoint and have its name recorded."""

    def __init__(self, engine: DockerClient, record: Recorder, timeout: float = 60.0) -> None:
        self.engine = engine
        self.record = record
        self.timeout = timeout
        self._tasks: set[asyncio.Task] = set()

    async def on_join(self, state_id: str, docker_ep_id: str, sandbox_key: str = "") -> None:
        t = asyncio.create_task(self._learn(state_id, docker_ep_id))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def find_container(self, docker_ep_id: str) -> dict | None:
        for c in await self.engine.list_containers():
            for nw in ((c.get("NetworkSettings") or {}).get("Networks") or {}).values():
                if nw.get("EndpointID") == docker_ep_id:
                    return c
        return None

    async def _learn(self, state_id: str, docker_ep_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while loop.time() < deadline:
            try:
                c = await self.find_container(docker_ep_id)
                if c is not None:
                    name = ((c.get("Names") or [""])[0]).lstrip("/")
                    labels = {str(k): str(v) for k, v in (c.get("Labels") or {}).items()}
                    await self.record(state_id, name, c.get("Id", ""), labels)
                    return
            except ContivError as e:
                log.info("container name of %s not recorded yet: %s", state_id, e)
            await asyncio.sleep(0.2)
        log.warning("container of endpoint %s not named within %ss: no DNS name", state_id, self.timeout)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
