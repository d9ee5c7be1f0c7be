"""Service registration of the agent in ``/contiv.io/service/<name>/<ip>:<port>`` with 10 s leases.

netplugin registers ``netplugin`` at ctrl-ip:9002 and ctrl-ip:9003 and ``netplugin.vtep`` at
vtep-ip:<vxlan-port> (contiv-reference §5.2 step 6). The value is the original's service-info JSON.
All keys share one lease refreshed every ttl/3; if the lease is lost (etcd down longer than the TTL) a
new one is granted and the keys are written again, so peers see the host come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from contivpy.common.errors import StoreError
from contivpy.common.kv.base import KVStore
from contivpy.model import keys

log = logging.getLogger(__name__)
TTL = 10


def service_value(name: str, ip: str, port: int, hostname: str) -> str:
    return json.dumps(
        {
            "ServiceName": name,
            "Role": "",
            "Version": "",
            "TTL": TTL,
            "HostAddr": ip,
            "Port": port,
            "Hostname": hostname,
        },
        separators=(",", ":"),
    )


class Registration:
    def __init__(
        self, kv: KVStore, services: list[tuple[str, str, int]], hostname: str, ttl: int = TTL
    ) -> None:
        self.kv = kv
        self.services = services
        self.hostname = hostname
        self.ttl = ttl
        self.lease = 0

    async def _register(self) -> None:
        self.lease = await self.kv.grant_lease(self.ttl)
        for name, ip, port in self.services:
            await self.kv.put(
                keys.service_key(name, ip, port),
                service_value(name, ip, port, self.hostname),
                lease=self.lease,
            )
        log.info("registered services %s", [f"{n}/{i}:{p}" for n, i, p in self.services])

    async def run(self) -> None:
        """Register, then keep the lease alive forever (re-registering after a loss)."""
        while True:
            try:
                if not self.lease:
                    await self._register()
                await asyncio.sleep(self.ttl / 3)
                await self.kv.keepalive(self.lease)
            except StoreError as e:
                log.warning("service registration: %s; re-registering", e)
                self.lease = 0
                await asyncio.sleep(1)

    async def unregister(self) -> None:
        if self.lease:
            with contextlib.suppress(StoreError):
                await self.kv.revoke_lease(self.lease)
            self.lease = 0
