"""HTTP client netplugin -> netmaster ``/plugin/*`` (docs/original.md §2.4, §5.2).

Target: the holder of the leader lock ``/contiv.io/lock/netmaster/leader`` (value ``ip:port``, or a JSON
object carrying it); when nobody holds it, every netmaster in the service registry
(``contivpy.common.registry``, ``/contiv.io/service/netmaster/``) is tried, the one with Role ``leader``
first. Connection failures are retried 3 times with 1 s pauses
(the original's behaviour). A netmaster that serves https has published its certificate's SHA-256 under
``/contiv.io/auth/tls/<ip:port>``: it is then reached over https with that pin, and, when netmaster runs
with ``--auth``, with the agent token of ``/contiv.io/auth/agent-token`` as ``x-auth-token``
(docs/security.md). netmaster answers errors with HTTP 500 and a text body, which becomes an
``ExternalServiceError`` carrying netmaster's message verbatim.

The route (leader lock, agent token, the leader's pin: one etcd request) is reused for up to
``ROUTE_TTL`` (1 s) after it was read (concurrent calls wait for one read), so a burst of endpoint
creates reads it once a second instead of once per call (docs/benchmarks.md, "etcd requests per
endpoint"). A reused route never decides an outcome on its own: when the call through it fails to
connect, the route is read again at once and the call sent through the fresh one (what the first
attempt would have done); when it is answered with an error, the route is read again, and if it
changed (another leader, pin or token) the call is sent again through the fresh one (every
/plugin/* call is refused before any write, or idempotent); if it did not change, the error stands
as before. A leader that changed within the second is reached through the old one while that one
runs: a follower relays every request to the leader.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp

from contivpy.common import metrics
from contivpy.common.errors import ContivError, ExternalServiceError
from contivpy.common.kv.base import KeyValue, KVStore
from contivpy.common.registry import ServiceRegistry
from contivpy.model import keys

log = logging.getLogger(__name__)
ROUTE_TTL = 1.0  # seconds a route read from etcd is reused (see the module docstring)
Route = tuple[list[str], dict[str, "KeyValue | None"], "KeyValue | None"]


def _addr_of(value: str) -> str:
    value = value.strip()
    if value.startswith("{"):
        try:
            d = json.loads(value)
        except ValueError:
            return ""
        for k in ("HostAddr", "hostAddr", "address", "Address", "holder"):
            if d.get(k):
                port = d.get("Port") or d.get("port")
                return f"{d[k]}:{port}" if port and ":" not in str(d[k]) else str(d[k])
        return ""
    return value.strip('"')


class NetmasterClient:
    def __init__(
        self, kv: KVStore, retries: int = 3, retry_delay: float = 1.0, timeout: float = 30.0
    ) -> None:
        self.kv = kv
        self.registry = ServiceRegistry(kv)
        self.retries = retries
        self.retry_delay = retry_delay
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._last = ""  # the netmaster that answered last (its pin is read with the leader lock)
        self._cached: tuple[float, Route] | None = None  # (monotonic time read, route via the leader lock)
        self._route_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _targets(self) -> list[str]:
        return (await self._route())[0]

    async def _route(self, reuse: bool = False) -> Route:
        """(targets, the TLS pins read for them, the agent token): the leader lock, the token and
        the pin of the last target used are read in one request (a create's usual case: the
        leader did not change), the registry and another target's pin only when needed.
        ``reuse``: a route read less than ``ROUTE_TTL`` ago through the leader lock will do."""
        if not reuse:
            return await self._read_route()
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < ROUTE_TTL:
            return cached[1]
        async with self._route_lock:  # concurrent calls wait for one read instead of each reading
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < ROUTE_TTL:
                return cached[1]
            return await self._read_route()

    async def _read_route(self) -> Route:
        now = time.monotonic()
        self._cached = None
        last = self._last
        lock, token, pin = await self.kv.get_many(
            [keys.LEADER_LOCK, keys.AUTH_AGENT_TOKEN, keys.AUTH_TLS_PIN + (last or "-")]
        )
        pins = {last: pin} if last else {}
        if lock is not None and _addr_of(lock.value):
            target = _addr_of(lock.value)
            route: Route = ([target], pins, token)
            if target == last:  # (its pin was read with the lock)
                self._cached = (now, route)
            return route
        infos = await self.registry.list(keys.SVC_NETMASTER)
        infos.sort(key=lambda i: i.role != "leader")  # stable: leader first, then the store's order
        return [f"{i.host_addr}:{i.port}" for i in infos], pins, token

    async def _secure(
        self, target: str, pins: dict[str, KeyValue | None], token: KeyValue | None
    ) -> tuple[aiohttp.Fingerprint | None, dict[str, str]]:
        """https + certificate pin if that netmaster published one; the agent token if auth is on."""
        pin = pins[target] if target in pins else await self.kv.get(keys.AUTH_TLS_PIN + target)
        ssl = aiohttp.Fingerprint(bytes.fromhex(pin.value)) if pin is not None else None
        return ssl, ({"x-auth-token": token.value} if token is not None and ssl else {})

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        if self._session is None:
            # aiohttp's client side is loaded here, on the first request (common/fastweb.py)
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        last: Exception | None = None
        for attempt in range(self.retries):
            if attempt:
                metrics.NETMASTER_RETRIES.inc(path)
            before = self._cached
            route = await self._route(reuse=attempt == 0)
            reused = before is not None and route is before[1]  # (not read for this call)
            targets, pins, token = route
            if not targets:
                last = ExternalServiceError("netmaster not found: no leader and no registered netmaster")
            for t in targets:
                ssl, headers = await self._secure(t, pins, token)
                url = f"{'https' if ssl else 'http'}://{t}{path}"
                try:
                    async with self._session.post(url, json=body, ssl=ssl, headers=headers) as r:
                        text = await r.text()
                        if r.status != 200:
                            if reused and await self._route() != route:  # the reused route was stale
                                last = ExternalServiceError(text.strip() or f"HTTP {r.status}")
                                break
                            metrics.NETMASTER_CALLS.inc(path, "refused")
                            raise ExternalServiceError(
                                text.strip() or f"netmaster {path} failed: HTTP {r.status}"
                            )
                        metrics.NETMASTER_CALLS.inc(path, "ok")
                        self._last = t
                        return json.loads(text) if text.strip() else None
                except ContivError:
                    raise
                except (aiohttp.ClientConnectionError, TimeoutError) as e:
                    last = e
                    self._cached = None
                    log.warning("netmaster %s unreachable (%s), attempt %d", url, e, attempt + 1)
                    if reused:  # the leader may have changed within the second: read, no pause
                        break
            else:
                await asyncio.sleep(self.retry_delay)
        metrics.NETMASTER_CALLS.inc(path, "unreachable")
        raise ExternalServiceError(f"cannot reach netmaster for {path}: {last}")
