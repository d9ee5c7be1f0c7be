"""Login, roles and user routes of netmaster (``--auth``; docs/security.md): one aiohttp middleware.

Off by default: without ``--auth`` nothing is installed and the middleware passes every request
through. Users, passwords and tokens: netmaster/auth_store.py (all in etcd).

``auth_middleware`` (outermost, before the follower proxy, so a follower checks tokens itself and the
leader checks them again) decides for every request:
- ``POST /api/v1/auth_proxy/login/``, ``GET /version``, ``/healthz``, ``/readyz``, ``/metrics``: open
  (failed logins are throttled per user name and per address: ``LoginThrottle``, answered 429);
- no token or an invalid one: 401; ``/plugin/*``: the agent token or an admin token;
- role ``admin``: everything; role ``ops``: every GET (except the user routes), and writes only to
  objects keyed by a tenant it was granted (``/api/v1/<plural>/<tenant>:.../``,
  ``/debug/epcleanup/tenant/<t>/``); anything else 403.
User management (admin only): ``/api/v1/auth_proxy/local_users/`` (GET list, POST create) and
``/api/v1/auth_proxy/local_users/<name>/`` (GET, PATCH ``password``/``role``/``grant``/``revoke``,
DELETE). Answers are text in netmaster's style; passwords never appear in one.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections import deque

from aiohttp import web

from contivpy.common import jsonwire
from contivpy.common.errors import StoreError, ValidationError
from contivpy.common.health import LOCAL_PATHS
from contivpy.common.httpserve import read_body
from contivpy.common.kv.base import KVStore
from contivpy.model.codec import SPECS
from contivpy.netmaster.api.errors import text_error
from contivpy.netmaster.auth_store import AuthError, AuthStore, User
from contivpy.netmaster.registry import BY_PLURAL

log = logging.getLogger("netmaster.auth")

LOGIN_PATH = "/api/v1/auth_proxy/login/"
USERS_PATH = "/api/v1/auth_proxy/local_users/"
TOKEN_HEADER = "x-auth-token"
_MAX_BODY = 64 * 1024
_OPEN = {("POST", LOGIN_PATH), ("GET", "/version"), ("HEAD", "/version")}


# ---- the middleware -------------------------------------------------------------------------------

STORE: web.AppKey[AuthStore] = web.AppKey("auth_store", AuthStore)
USER: str = "contiv_user"  # request[USER] = User (absent for the agent token)


def _unauthorized() -> web.Response:
    return text_error("401 Unauthorized: a valid x-auth-token is required, log in with 'netctl login'", 401)


def _tenant_of(request: web.Request) -> str:
    """The tenant a write targets, or "" when it is not tenant-scoped (then only admin may write)."""
    parts = request.path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["api", "v1"]:
        t = BY_PLURAL.get(parts[2])
        spec = SPECS.get(t.name) if t is not None else None
        if spec is not None and spec.key_fields and spec.key_fields[0] == "tenantName" and t.name != "tenant":
            return parts[3].split(":", 1)[0]
    if len(parts) >= 4 and parts[:3] == ["debug", "epcleanup", "tenant"]:
        return parts[3]
    return ""


def allowed(user: User, request: web.Request) -> bool:
    if user.role == "admin":
        return True
    path, method = request.path, request.method
    if path.startswith("/plugin/") or path.startswith(USERS_PATH):
        return False
    if method in ("GET", "HEAD"):
        return True
    tenant = _tenant_of(request)
    return bool(tenant) and tenant in user.tenants


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    store = request.app.get(STORE)
    if store is None or (request.method, request.path) in _OPEN or request.path in LOCAL_PATHS:
        return await handler(request)
    if not store.secret:
        return text_error("netmaster auth state is not ready (etcd unreachable?), please retry", 503)
    token = request.headers.get(TOKEN_HEADER, "")
    if not token or len(token) > 4096 or not token.isascii():
        return _unauthorized()
    if request.path.startswith("/plugin/") and hmac.compare_digest(
        token.encode(), store.agent_token.encode()
    ):
        return await handler(request)
    try:
        user = await store.check(token)
    except Exception as exc:  # store trouble: the request may be retried
        log.warning("auth: token check failed: %s", exc)
        return text_error("netmaster auth state is not available (etcd unreachable?), please retry", 503)
    if user is None:
        return _unauthorized()
    if not allowed(user, request):
        return text_error("Access denied", 403)
    request[USER] = user
    return await handler(request)


# ---- routes ---------------------------------------------------------------------------------------


def _json(data) -> web.Response:
    return web.Response(body=(json.dumps(data) + "\n").encode(), headers={"Content-Type": "application/json"})


async def _body(request: web.Request) -> dict:
    raw = await read_body(request, _MAX_BODY)
    try:
        body = jsonwire.loads(raw)
    except ValidationError as exc:
        raise AuthError(f"invalid JSON: {exc}", 400) from None
    if not isinstance(body, dict):
        raise AuthError("invalid JSON: an object is expected", 400)
    return body


def _strings(body: dict, name: str) -> list[str]:
    v = body.get(name, [])
    v = [v] if isinstance(v, str) else v
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise AuthError(f"{name}: a list of tenant names is expected", 400)
    return v


class LoginThrottle:
    """Failed logins, remembered per user name and per client address for ``window`` seconds.

    After ``limit`` failures for one name (or ``4 * limit`` from one address) within the window,
    further logins for it are answered 429 without checking the password, until the oldest failure
    leaves the window: password guessing is slowed to ``limit`` tries a window, and the password
    hash (deliberately expensive) cannot be used to burn netmaster's CPU. A success clears the
    name's failures. The memory is bounded (``MAX_KEYS`` names and addresses, oldest dropped) and
    per process: each netmaster counts what it sees; that is a rate limit, not state to persist.
    ``$CONTIVPY_LOGIN_THROTTLE`` = ``limit,window`` overrides the defaults (5 failures, 60 s).
    """

    MAX_KEYS = 4096

    def __init__(self, limit: int = 5, window: float = 60.0) -> None:
        raw = os.environ.get("CONTIVPY_LOGIN_THROTTLE", "")
        if raw:
            try:
                a, b = raw.split(",")
                if int(a) > 0 and 0 < float(b) < 1e6:
                    limit, window = int(a), float(b)
            except ValueError:
                log.warning("ignoring CONTIVPY_LOGIN_THROTTLE=%r (want failures,seconds)", raw)
        self.limit, self.window = limit, window
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, name: str, addr: str) -> float:
        """Seconds until a login for ``name`` from ``addr`` is checked again (0: now)."""
        now = time.monotonic()
        wait = 0.0
        for key, limit in ((f"u:{name}", self.limit), (f"a:{addr}", 4 * self.limit)):
            q = self._recent(key, now)
            if len(q) >= limit:
                wait = max(wait, self.window - (now - q[-limit]))
        return wait

    def failed(self, name: str, addr: str) -> None:
        now = time.monotonic()
        for key in (f"u:{name}", f"a:{addr}"):
            if key not in self._fails and len(self._fails) >= self.MAX_KEYS:
                self._fails.pop(next(iter(self._fails)))
            self._fails.setdefault(key, deque(maxlen=4 * self.limit)).append(now)

    def succeeded(self, name: str) -> None:
        self._fails.pop(f"u:{name}", None)


THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle", LoginThrottle)


async def login(request: web.Request) -> web.Response:
    body = await _body(request)
    name, pw = body.get("username"), body.get("password")
    if not isinstance(name, str) or not isinstance(pw, str) or not name or not pw:
        raise AuthError("username and password are required", 400)
    throttle = request.app[THROTTLE]
    addr = request.remote or ""
    wait = throttle.retry_after(name, addr)
    if wait > 0:
        log.info("auth: login for %r from %s refused: too many failed logins", name[:64], addr)
        return text_error(f"too many failed logins, retry in {int(wait) + 1} s", 429)
    token = await request.app[STORE].login(name, pw)
    if token is None:
        throttle.failed(name, addr)
        log.info("auth: failed login for %r from %s", name[:64], addr)
        return text_error("401 Unauthorized: bad username or password", 401)
    throttle.succeeded(name)
    return _json({"token": token})


async def list_users(request: web.Request) -> web.Response:
    users = sorted(await request.app[STORE].list(), key=lambda u: u.username)
    return _json([u.public() for u in users])


async def create_user(request: web.Request) -> web.Response:
    body = await _body(request)
    name, pw, role = body.get("username"), body.get("password"), body.get("role", "ops")
    if not isinstance(name, str):
        raise AuthError("username is required", 400)
    u = await request.app[STORE].create(name, pw, role, _strings(body, "tenants"))
    return _json(u.public())


async def get_user(request: web.Request) -> web.Response:
    user, _ = await request.app[STORE].get(request.match_info["name"])
    if user is None:
        raise AuthError(f"user {request.match_info['name']} not found")
    return _json(user.public())


async def patch_user(request: web.Request) -> web.Response:
    body = await _body(request)
    change: dict = {k: body[k] for k in ("role", "password") if k in body}
    for k in ("grant", "revoke"):
        if k in body:
            change[k] = _strings(body, k)
    user = await request.app[STORE].update(request.match_info["name"], change)
    return _json(user.public())


async def delete_user(request: web.Request) -> web.Response:
    await request.app[STORE].delete(request.match_info["name"])
    return _json(request.match_info["name"])


def _guard(fn):
    async def handler(request: web.Request) -> web.Response:
        try:
            return await fn(request)
        except AuthError as exc:
            return text_error(str(exc), exc.status)
        except StoreError as exc:
            log.warning("auth: %s %s: %s", request.method, request.path, exc)
            return text_error("netmaster auth state is not available (etcd unreachable?), please retry", 503)

    return handler


def install(app: web.Application, kv: KVStore, admin_password: str = "", token_ttl: int = 12 * 3600) -> None:
    """Enable auth on ``app``: the store (started in the background: until it has read its secret every
    guarded request gets 503), the routes. Call before the model routes: ``/api/v1/auth_proxy/login/``
    would otherwise match ``/api/v1/{plural}/{key}/``."""
    store = AuthStore(kv, token_ttl)
    app[STORE] = store
    app[THROTTLE] = LoginThrottle()

    async def _start(_app: web.Application):
        task = asyncio.get_running_loop().create_task(store.start(admin_password))
        yield
        task.cancel()

    app.cleanup_ctx.append(_start)
    app.router.add_post(LOGIN_PATH, _guard(login))
    app.router.add_get(USERS_PATH, _guard(list_users))
    app.router.add_post(USERS_PATH, _guard(create_user))
    app.router.add_get(USERS_PATH + "{name}/", _guard(get_user))
    app.router.add_patch(USERS_PATH + "{name}/", _guard(patch_user))
    app.router.add_delete(USERS_PATH + "{name}/", _guard(delete_user))


__all__ = ["auth_middleware", "install", "allowed", "STORE", "USER"]
