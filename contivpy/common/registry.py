"""Service registry: ``/contiv.io/service/<name>/<ip>:<port>`` keys on TTL leases (objdb/etcdService.go).

Value (exact field names and order of the original):
``{"ServiceName":"netmaster","Role":"leader","Version":"","TTL":10,"HostAddr":"127.0.0.1","Port":9999,"Hostname":""}``

Design
- ``register(info)`` grants a lease of ``info.ttl`` seconds, writes the key on it, and starts a
  background task that every ttl/3 refreshes the lease and, in the same beat, re-creates the key
  if it is no longer on our lease (lease expired while etcd was away, key deleted by hand):
  ``txn(lease == ours -> nothing, else -> keepalive failed? new lease; put key)``.
- ``update_role(info, role)`` rewrites the value (netmaster: follower -> leader).
- ``deregister(info)`` stops the refresher, deletes the key and revokes the lease.
- ``list(name)`` reads every instance; ``watch(name)`` = list + watch as ``ServiceEvent``s:
  one "add" per instance present at start, then "add"/"delete" as keys appear/vanish (a value
  change of an existing key, e.g. its Role, is reported as "add" with the new info). After a
  re-list the differences are reported the same way.

Invariants
- One registration per key; registering the same key again replaces the info.
- ``close()`` deregisters everything this registry registered; ``close(deregister=False)`` only
  stops refreshing, so the keys live on until their leases expire (netplugin: a restarting agent
  keeps its peers' tunnels).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Literal

from contivpy.common.errors import StoreError, ValidationError
from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.common.pump import PumpedIterator
from contivpy.common.watch import Mirror, list_and_watch
from contivpy.model import keys

log = logging.getLogger(__name__)

DEFAULT_TTL = 10


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    service_name: str
    host_addr: str
    port: int
    role: str = ""
    version: str = ""
    ttl: int = DEFAULT_TTL
    hostname: str = ""

    @property
    def key(self) -> str:
        return keys.service_key(self.service_name, self.host_addr, self.port)

    def to_json(self) -> str:
        return json.dumps(
            {
                "ServiceName": self.service_name,
                "Role": self.role,
                "Version": self.version,
                "TTL": self.ttl,
                "HostAddr": self.host_addr,
                "Port": self.port,
                "Hostname": self.hostname,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ServiceInfo:
        try:
            d = json.loads(text)
            return cls(
                service_name=str(d["ServiceName"]),
                host_addr=str(d["HostAddr"]),
                port=int(d["Port"]),
                role=str(d.get("Role", "")),
                version=str(d.get("Version", "")),
                ttl=int(d.get("TTL", DEFAULT_TTL)),
                hostname=str(d.get("Hostname", "")),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ValidationError(f"invalid service registry value {text!r}: {err}") from err


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    type: Literal["add", "delete"]
    info: ServiceInfo


class _Registration:
    def __init__(self, info: ServiceInfo) -> None:
        self.info = info
        self.lease = 0
        self.task: asyncio.Task[None] | None = None


class ServiceRegistry:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self._regs: dict[str, _Registration] = {}

    # ---- own registrations -------------------------------------------------------------

    async def _write(self, reg: _Registration) -> None:
        """Make sure the key exists on a live lease of ours with the current info."""
        if reg.lease:
            try:
                await self.kv.keepalive(reg.lease)
            except StoreError:
                reg.lease = 0  # expired (or store down: the grant below fails too and we retry)
        if not reg.lease:
            reg.lease = await self.kv.grant_lease(reg.info.ttl)
        ok = await self.kv.txn(
            [
                Compare(reg.info.key, "lease", "==", reg.lease),
                Compare(reg.info.key, "value", "==", reg.info.to_json()),
            ],
            [],
            [Put(reg.info.key, reg.info.to_json(), reg.lease)],
        )
        if not ok.succeeded:
            log.info("service %s (re)written", reg.info.key)

    async def _refresh(self, reg: _Registration) -> None:
        while True:
            await asyncio.sleep(reg.info.ttl / 3)
            try:
                await self._write(reg)
            except StoreError as err:
                log.warning("refreshing service %s failed: %s", reg.info.key, err)

    async def register(self, info: ServiceInfo) -> None:
        """Write the key now (raises StoreError if the store is unreachable) and keep it alive."""
        if not info.service_name or not info.host_addr or not 0 < info.port < 65536 or info.ttl <= 0:
            raise ValidationError(f"invalid service registration {info!r}")
        reg = self._regs.get(info.key)
        if reg is None:
            reg = _Registration(info)
        else:
            reg.info = info
        await self._write(reg)
        self._regs[info.key] = reg
        if reg.task is None or reg.task.done():
            reg.task = asyncio.get_running_loop().create_task(self._refresh(reg), name=f"service {info.key}")

    async def update_role(self, info: ServiceInfo, role: str) -> ServiceInfo:
        """Change the Role of a registered service (e.g. follower -> leader); returns the new info."""
        reg = self._regs.get(info.key)
        if reg is None:
            raise ValidationError(f"service {info.key} is not registered here")
        reg.info = replace(reg.info, role=role)
        await self._write(reg)
        return reg.info

    async def deregister(self, info: ServiceInfo) -> None:
        reg = self._regs.pop(info.key, None)
        if reg is None:
            return
        if reg.task is not None:
            reg.task.cancel()
            with contextlib.suppress(BaseException):
                await reg.task
        if reg.lease:
            await self.kv.txn([Compare(info.key, "lease", "==", reg.lease)], [Delete(info.key)])
            with contextlib.suppress(StoreError):
                await self.kv.revoke_lease(reg.lease)

    def registered(self) -> list[ServiceInfo]:
        return [r.info for r in self._regs.values()]

    async def close(self, deregister: bool = True) -> None:
        for reg in list(self._regs.values()):
            if deregister:
                with contextlib.suppress(StoreError):
                    await self.deregister(reg.info)
                continue
            self._regs.pop(reg.info.key, None)
            if reg.task is not None:
                reg.task.cancel()
                with contextlib.suppress(BaseException):
                    await reg.task

    # ---- everybody's registrations -----------------------------------------------------

    async def list(self, name: str) -> list[ServiceInfo]:
        kvs, _ = await self.kv.get_prefix(keys.service_prefix(name))
        out = []
        for kv in kvs:
            try:
                out.append(ServiceInfo.from_json(kv.value))
            except ValidationError as err:
                log.warning("ignoring %s: %s", kv.key, err)
        return out

    def watch(self, name: str) -> PumpedIterator:
        """Async iterator of ServiceEvent for service ``name`` (current instances first, as adds)."""
        return PumpedIterator(self._watch(name), name=f"service-watch {name}")

    async def _watch(self, name: str) -> AsyncIterator[ServiceEvent]:
        mirror = Mirror()
        known: dict[str, ServiceInfo] = {}
        async with list_and_watch(self.kv, keys.service_prefix(name)) as it:
            async for item in it:
                for ev in mirror.apply(item):
                    if ev.type == "delete":
                        info = known.pop(ev.key, None)
                        if info is not None:
                            yield ServiceEvent("delete", info)
                        continue
                    try:
                        info = ServiceInfo.from_json(ev.value)
                    except ValidationError as err:
                        log.warning("ignoring %s: %s", ev.key, err)
                        continue
                    if known.get(ev.key) != info:
                        known[ev.key] = info
                        yield ServiceEvent("add", info)


__all__ = ["ServiceInfo", "ServiceEvent", "ServiceRegistry", "DEFAULT_TTL"]
