"""Users, passwords and tokens of netmaster's ``--auth``, kept in etcd (used by netmaster/auth.py).

State (every netmaster, leader or follower, reads the same keys, so any of them accepts any token):
- ``/contiv.io/auth/users/<name>``: ``{"username","role","tenants","password","gen"}``; ``password`` is
  ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (hashlib.scrypt, 16-byte random salt), never plaintext;
  ``gen`` is a random string renewed on every password change, so old tokens stop working.
- ``/contiv.io/auth/secret``: the HMAC-SHA256 key of the tokens, created once (create-if-absent).
- ``/contiv.io/auth/agent-token``: the credential netplugin sends for ``/plugin/*`` (create-if-absent).
  Whoever can read etcd already controls the cluster, so keeping it there adds no exposure.

Token: ``base64url(JSON {"u": user, "g": gen, "e": expiry}) "." base64url(HMAC(secret, payload))``.
A token is valid while the signature matches, it has not expired and the user still exists with the
same ``gen`` (one etcd read per check, so a deleted user or a changed password takes effect at once).
While etcd cannot be read, a token verified in the last ``STALE_OK`` (120) seconds is still accepted,
so requests that do not need etcd (cached reads) keep working through a short outage.
Every user write is a create-if-absent or a compare-and-swap on the record; the last admin can be
neither deleted nor demoted. Hashing runs in a thread (it takes tens of ms).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass

from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.model import keys

log = logging.getLogger("netmaster.auth")

ROLES = ("admin", "ops")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SCRYPT = (1 << 14, 8, 1)  # n, r, p: ~16 MiB and tens of ms per hash
STALE_OK = 120.0  # seconds a verified token stays usable while etcd is unreachable


class AuthError(Exception):
    """A refused user-management request; ``str()`` is the message, ``status`` the HTTP code."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


# ---- passwords and tokens -----------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str) -> str:
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(h)}"


def verify_password(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, want = stored.split("$")
        if kind != "scrypt":
            return False
        h = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=64 << 20, dklen=32
        )
    except (ValueError, TypeError, UnicodeError):
        return False
    return hmac.compare_digest(h, _unb64(want))


_DUMMY: list[str] = []  # a hash checked when the user does not exist (same timing); made on first use


def _dummy() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_hex(8)))
    return _DUMMY[0]


def make_token(secret: bytes, user: str, gen: str, ttl: int) -> str:
    payload = _b64(json.dumps({"u": user, "g": gen, "e": int(time.time()) + ttl}).encode())
    return payload + "." + _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def read_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """(user, gen) of a well-signed, unexpired token; None otherwise."""
    payload, _, sig = token.partition(".")
    try:
        good = hmac.compare_digest(_unb64(sig), hmac.new(secret, payload.encode(), hashlib.sha256).digest())
        if not good:
            return None
        d = json.loads(_unb64(payload))
        if not isinstance(d, dict) or not isinstance(d.get("e"), int) or d["e"] < time.time():
            return None
        user, gen = d.get("u"), d.get("g")
    except (ValueError, TypeError, UnicodeError):
        return None
    return (user, gen) if isinstance(user, str) and isinstance(gen, str) else None


# ---- the store ------------------------------------------------------------------------------------


@dataclass
class User:
    username: str
    role: str
    tenants: list[str]
    password: str
    gen: str

    def public(self) -> dict:
        return {"username": self.username, "role": self.role, "tenants": sorted(self.tenants)}

    def dumps(self) -> str:
        return json.dumps(
            {**self.public(), "password": self.password, "gen": self.gen}, separators=(",", ":")
        )


def _load(value: str) -> User | None:
    try:
        d = json.loads(value)
        return User(d["username"], d["role"], list(d.get("tenants") or []), d["password"], d["gen"])
    except (ValueError, KeyError, TypeError):
        return None


class AuthStore:
    """Users, the token secret and the agent token in etcd. ``await start()`` before use."""

    def __init__(self, kv: KVStore, token_ttl: int = 12 * 3600) -> None:
        self.kv = kv
        self.ttl = token_ttl
        self.secret = b""
        self.agent_token = ""
        # token -> (user, monotonic time of its last successful check against etcd); used only while
        # etcd cannot be read, for STALE_OK seconds, so reads served from the cache keep working
        self._recent: dict[str, tuple[User, float]] = {}

    async def _once(self, key: str, value: str) -> str:
        await self.kv.txn([Compare(key, "version", "==", 0)], [Put(key, value)])
        got = await self.kv.get(key)
        assert got is not None
        return got.value

    async def start(self, admin_password: str = "") -> None:
        """Create the secret and agent token once; seed user ``admin`` if it is absent (retries the store)."""
        while True:
            try:
                self.secret = bytes.fromhex(await self._once(keys.AUTH_SECRET, secrets.token_hex(32)))
                self.agent_token = await self._once(keys.AUTH_AGENT_TOKEN, secrets.token_urlsafe(32))
                if admin_password:
                    pw = await asyncio.to_thread(hash_password, admin_password)
                    u = User("admin", "admin", [], pw, secrets.token_hex(8))
                    k = keys.AUTH_USERS + "admin"
                    if (await self.kv.txn([Compare(k, "version", "==", 0)], [Put(k, u.dumps())])).succeeded:
                        log.info("auth: created user admin")
                return
            except Exception as exc:  # store not reachable yet
                log.warning("auth state not ready (retrying): %s", exc)
                await asyncio.sleep(1)

    async def get(self, name: str) -> tuple[User | None, int]:
        kv = await self.kv.get(keys.AUTH_USERS + name) if _NAME.match(name) else None
        return (_load(kv.value), kv.mod_revision) if kv is not None else (None, 0)

    async def list(self) -> list[User]:
        kvs, _ = await self.kv.get_prefix(keys.AUTH_USERS)
        return [u for u in (_load(kv.value) for kv in kvs) if u is not None]

    async def login(self, name: str, password: str) -> str | None:
        user, _ = await self.get(name)
        stored = user.password if user else await asyncio.to_thread(_dummy)
        ok = await asyncio.to_thread(verify_password, stored, password)
        if user is None or not ok:
            return None
        return make_token(self.secret, user.username, user.gen, self.ttl)

    async def check(self, token: str) -> User | None:
        """The token's user, read from etcd on every call. If etcd cannot be read, a token that passed
        this check within the last ``STALE_OK`` seconds is still accepted (raises otherwise)."""
        got = read_token(self.secret, token)
        if got is None:
            return None
        try:
            user, _ = await self.get(got[0])
        except Exception:
            seen = self._recent.get(token)
            if seen is not None and time.monotonic() - seen[1] < STALE_OK:
                return seen[0]
            raise
        if user is None or not hmac.compare_digest(user.gen.encode(), got[1].encode()):
            self._recent.pop(token, None)
            return None
        if len(self._recent) >= 1024 and token not in self._recent:
            self._recent.pop(next(iter(self._recent)))
        self._recent[token] = (user, time.monotonic())
        return user

    async def create(self, name: str, password: str, role: str, tenants: list[str]) -> User:
        if not _NAME.match(name):
            raise AuthError(f"invalid user name {name!r}: letters, digits, '.', '_', '-' (at most 64)")
        _check_role(role)
        _check_password(password)
        pw = await asyncio.to_thread(hash_password, password)
        u = User(name, role, sorted(set(tenants)), pw, secrets.token_hex(8))
        k = keys.AUTH_USERS + name
        if not (await self.kv.txn([Compare(k, "version", "==", 0)], [Put(k, u.dumps())])).succeeded:
            raise AuthError(f"user {name} already exists")
        return u

    async def _other_admins(self, name: str) -> list[Compare]:
        """Guards for removing admin ``name``: every other admin record unchanged (none = refuse).
        Two admins removing each other at once: one txn fails its compare, retries, and is refused."""
        kvs, _ = await self.kv.get_prefix(keys.AUTH_USERS)
        others = [kv for kv in kvs if (u := _load(kv.value)) is not None and u.role == "admin"]
        return [
            Compare(kv.key, "mod", "==", kv.mod_revision) for kv in others if kv.key != keys.AUTH_USERS + name
        ]

    async def update(self, name: str, change: dict) -> User:
        for _ in range(5):
            user, rev = await self.get(name)
            if user is None:
                raise AuthError(f"user {name} not found")
            guards: list[Compare] = []
            if "role" in change:
                _check_role(change["role"])
                if change["role"] != "admin" and user.role == "admin":
                    guards = await self._other_admins(name)
                    if not guards:
                        raise AuthError("the last admin cannot be demoted")
                user.role = change["role"]
            tenants = set(user.tenants)
            tenants |= set(change.get("grant", []))
            tenants -= set(change.get("revoke", []))
            user.tenants = sorted(tenants)
            if "password" in change:
                _check_password(change["password"])
                user.password = await asyncio.to_thread(hash_password, change["password"])
                user.gen = secrets.token_hex(8)
            k = keys.AUTH_USERS + name
            if (await self.kv.txn([Compare(k, "mod", "==", rev), *guards], [Put(k, user.dumps())])).succeeded:
                return user
        raise AuthError("concurrent update, please retry")

    async def delete(self, name: str) -> None:
        for _ in range(5):
            user, rev = await self.get(name)
            if user is None:
                raise AuthError(f"user {name} not found")
            guards = await self._other_admins(name) if user.role == "admin" else []
            if user.role == "admin" and not guards:
                raise AuthError("the last admin cannot be deleted")
            k = keys.AUTH_USERS + name
            if (await self.kv.txn([Compare(k, "mod", "==", rev), *guards], [Delete(k)])).succeeded:
                return
        raise AuthError("concurrent update, please retry")


def _check_role(role) -> None:
    if role not in ROLES:
        raise AuthError(f"invalid role {role!r}: must be one of {', '.join(ROLES)}")


def _check_password(pw) -> None:
    if not isinstance(pw, str) or not 8 <= len(pw) <= 1024:
        raise AuthError("password must be 8 to 1024 characters")
    try:
        pw.encode()
    except UnicodeError:
        raise AuthError("password must be valid UTF-8 text") from None


__all__ = [
    "AuthError",
    "AuthStore",
    "User",
    "ROLES",
    "hash_password",
    "verify_password",
    "make_token",
    "read_token",
]
