"""netmaster leadership and service registration on etcd leases.

Leader lock (contiv-reference §1.3, original: etcd v2 TTL-30 key):
- key ``/contiv.io/lock/netmaster/leader``, value = control URL ``<ip>:<port>``, attached to a
  lease of ``ttl`` seconds (30) kept alive every ttl/3.
- acquire = txn(version == 0 -> put with our lease). As in the original, a restarted netmaster
  whose control URL equals the current value takes the lock over at once (txn on mod revision).
- fence = ``Compare(lock, "lease", "==", our lease)``: every CRUD txn carries it, so a deposed
  leader can never commit.
- followers poll the key every ``poll`` seconds (also the failover delay after a lock vanishes);
  leadership is lost when a keepalive fails or the key no longer carries our lease.
- on shutdown the lease is revoked: the lock disappears at once and a follower takes over.

Services (objdb/etcdService.go): ``/contiv.io/service/<name>/<ip>:<port>`` = JSON
{ServiceName, Role, Version, TTL, HostAddr, Port, Hostname} on one 10 s lease, refreshed every
~3 s and rewritten with the new Role (follower -> leader) on every transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from contivpy.common.errors import ContivError, StoreError
from contivpy.common.kv.base import Compare, KVStore, Put
from contivpy.model import keys

log = logging.getLogger("netmaster.leader")


class ServiceRegistration:
    def __init__(self, kv: KVStore, services: list[tuple[str, str, int]], ttl: int = 10) -> None:
        self.kv = kv
        self.services = services  # (name, host, port)
        self.ttl = ttl
        self.role = "follower"
        self.lease = 0

    def _value(self, name: str, host: str, port: int) -> str:
        return json.dumps(
            {
                "ServiceName": name,
                "Role": self.role,
                "Version": "",
                "TTL": self.ttl,
                "HostAddr": host,
                "Port": port,
                "Hostname": "",
            },
            separators=(",", ":"),
        )

    async def publish(self) -> None:
        if not self.lease:
            self.lease = await self.kv.grant_lease(self.ttl)
        ops = [Put(keys.service_key(n, h, p), self._value(n, h, p), self.lease) for n, h, p in self.services]
        await self.kv.txn([], ops)

    async def set_role(self, role: str) -> None:
        """Record the role and republish; a store failure is retried by ``run``."""
        self.role = role
        try:
            await self.publish()
        except StoreError as exc:
            log.warning("service registration update failed: %s", exc)
            self.lease = 0

    async def run(self) -> None:
        while True:
            try:
                if not self.lease:
                    await self.publish()
                else:
                    await self.kv.keepalive(self.lease)
            except StoreError as exc:
                log.warning("service registration refresh failed: %s", exc)
                self.lease = 0
            await asyncio.sleep(max(self.ttl / 3, 0.5))

    async def close(self) -> None:
        if self.lease:
            with contextlib.suppress(StoreError):
                await self.kv.revoke_lease(self.lease)
            self.lease = 0


class Leadership:
    def __init__(
        self,
        kv: KVStore,
        my_url: str,
        on_change: Callable[[bool, str], Awaitable[None]],
        ttl: int = 30,
        poll: float = 0.5,
    ) -> None:
        self.kv = kv
        self.my_url = my_url
        self.on_change = on_change
        self.ttl = ttl
        self.poll = poll
        self.lease = 0
        self.is_leader = False
        self.holder = ""

    @property
    def fence(self) -> Compare | None:
        return Compare(keys.LEADER_LOCK, "lease", "==", self.lease) if self.is_leader else None

    async def _try_acquire(self) -> bool:
        """One campaign step. A follower holds no lease: a fresh one is granted per attempt (a
        follower cannot keep a lease alive, and an expired lease would make every put fail)."""
        cur = await self.kv.get(keys.LEADER_LOCK)
        if cur is not None and cur.value != self.my_url:
            return False
        if cur is not None and self.lease and cur.lease == self.lease:
            return True
        lease = await self.kv.grant_lease(self.ttl)
        put = Put(keys.LEADER_LOCK, self.my_url, lease)
        if cur is None:
            res = await self.kv.txn([Compare(keys.LEADER_LOCK, "version", "==", 0)], [put])
        else:  # our own control URL from a previous life (kill -9): take it over at once
            res = await self.kv.txn([Compare(keys.LEADER_LOCK, "mod", "==", cur.mod_revision)], [put])
        if res.succeeded:
            self.lease = lease
            return True
        with contextlib.suppress(StoreError):
            await self.kv.revoke_lease(lease)
        return False

    async def _set(self, leader: bool, holder: str) -> None:
        changed = leader != self.is_leader or holder != self.holder
        self.is_leader, self.holder = leader, holder
        if not changed:
            return
        try:
            await self.on_change(leader, holder)
        except Exception as exc:  # a failed transition must not kill the election loop
            log.warning(
                "leadership transition (leader=%s) failed: %s",
                leader,
                exc,
                exc_info=not isinstance(exc, ContivError),
            )
            if leader:  # leader start did not complete: give the lock up, campaign again later
                self.is_leader, self.holder = False, ""
                await self.close()

    async def run(self) -> None:
        last_keepalive = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.is_leader:
                    if loop.time() - last_keepalive >= self.ttl / 3:
                        await self.kv.keepalive(self.lease)
                        last_keepalive = loop.time()
                    cur = await self.kv.get(keys.LEADER_LOCK)
                    if cur is None or cur.lease != self.lease:
                        log.warning("leader lock lost")
                        self.lease = 0
                        await self._set(False, cur.value if cur else "")
                        await asyncio.sleep(1)  # the original sleeps 1 s after LockLost
                        continue
                else:
                    if await self._try_acquire():
                        last_keepalive = loop.time()
                        await self._set(True, self.my_url)
                        continue
                    cur = await self.kv.get(keys.LEADER_LOCK)
                    await self._set(False, cur.value if cur else "")
            except Exception as exc:  # store errors (and bugs) never end the election loop
                log.warning("leader election: %s", exc, exc_info=not isinstance(exc, ContivError))
                if self.is_leader:
                    await self._set(False, "")
                self.lease = 0
            await asyncio.sleep(self.poll)

    async def close(self) -> None:
        if self.lease:
            with contextlib.suppress(StoreError):
                await self.kv.revoke_lease(self.lease)
            self.lease = 0


__all__ = ["Leadership", "ServiceRegistration"]
