"""``/healthz`` and ``/readyz`` of both daemons (docs/rest-api.md, "Health and metrics").

- ``GET /healthz``: the process is alive and its event loop answers: always ``200 ok``.
- ``GET /readyz``: every readiness check passes -> 200, else 503. Body (JSON):
  ``{"ready": bool, "checks": {<name>: {"ok": bool, "detail": str}}}``.

A daemon registers its checks with ``add_routes(app, checks)``; ``checks()`` returns
``{name: (ok, detail)}``. ``etcd_check(kv)`` is the shared one: a read of one key with a short
deadline, so a probe never hangs on an unreachable store. The handlers never raise: a failing
check is reported, not turned into a 500. These routes are answered by the process itself (the
netmaster follower proxy and the auth middleware let them through, see ``LOCAL_PATHS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from contivpy.common.kv.base import KVStore

#: Paths a netmaster follower answers itself instead of proxying to the leader, and that need no token.
LOCAL_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_KEY = "/contiv.io/master/config/global"
Checks = Callable[[], Awaitable[dict[str, tuple[bool, str]]]]


async def etcd_check(kv: KVStore, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            await kv.get(PROBE_KEY)
        return True, "connected"
    except TimeoutError:
        return False, f"no answer from etcd within {timeout:g}s"
    except Exception as exc:  # StoreError and whatever a broken client raises: reported, never a 500
        return False, str(exc) or type(exc).__name__


def add_routes(app: web.Application, checks: Checks) -> None:
    async def healthz(_req: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_req: web.Request) -> web.Response:
        try:
            results = await checks()
        except Exception as exc:
            results = {"checks": (False, str(exc) or type(exc).__name__)}
        ready = all(ok for ok, _ in results.values())
        body = {"ready": ready, "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in results.items()}}
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


__all__ = ["LOCAL_PATHS", "add_routes", "etcd_check"]
