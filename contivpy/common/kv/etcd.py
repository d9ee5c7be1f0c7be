"""EtcdKV: the KVStore on a real etcd v3 server, over etcd's JSON gateway (common/kv/etcdhttp.py).

Design
- One ``EtcdHTTP`` transport per EtcdKV (asyncio streams, a keep-alive connection pool, fail-over
  between members, TLS; see its docstring). Its connections belong to the event loop they were
  opened on, so an EtcdKV must be created and used inside one loop (create it in the daemon's
  main coroutine or in a fixture with the same loop scope as the tests). Never keep one in a
  module global. Why our own client rather than aetcd/grpc: docs/decisions.md ("etcd client").
- Every answer carries its header revision; every failure (an etcd error, a transport failure, a
  timeout) becomes ``StoreError("etcd <what> failed: ...")``. etcd's limits are reported as what to
  change: "request too large for etcd (...); start etcd with a larger --max-request-bytes" and
  "too many operations in one etcd transaction (...); ... --max-txn-ops". A Python exception text
  never reaches a caller.
- Endpoints: ``EtcdKV(endpoints=[(host, port), ...])`` uses every member: requests go to one
  member; when it stops accepting connections the next one is used. etcd members forward writes
  to the raft leader, so any member serves every call; leases are cluster-wide, so keepalives
  through a surviving member keep them alive.
- Retries: a request whose connection broke after it was sent is re-sent once only if repeating
  it is harmless: reads, lease grant/keepalive/revoke. Writes (put, delete, txn) are never
  re-sent: the caller gets StoreError and decides.
- Reconnection: when no member accepts a connection, a call keeps trying every 0.1 s for up to
  ``ready_grace`` seconds (2 s), then fails: the first call after an etcd restart succeeds, and a
  call during an outage fails within ``ready_grace``.
- TLS: ``tls=True`` or any of ``ca_file``/``cert_file``/``key_file`` -> TLS verifying the server
  against ``ca_file`` (system roots if empty), presenting the client certificate if given.
- ``watch_prefix`` returns a ``common.pump.PumpedIterator`` over ``_events``, an async generator
  that owns the resume logic: it remembers the next revision it owes the caller (``last delivered
  + 1``; for ``start_revision=0`` the store revision read when the generator starts, + 1). When
  the stream ends or breaks (etcd restart, member killed, network error) it re-watches from that
  revision with exponential backoff (0.1 s .. 2 s), so the caller sees every change exactly once,
  in order. A compacted start revision raises ``CompactedError``.
- Leases: ``keepalive`` sends one LeaseKeepAlive (a stream that ends after one answer); a TTL <= 0
  answer means the lease is gone.

Invariants
- Keys/values are UTF-8 ``str`` at this API, base64 of the UTF-8 bytes on the wire.
- The empty prefix "" means the whole keyspace (range ["\\0", "\\0")).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator, Sequence
from typing import Any

from contivpy.common.errors import CompactedError, StoreError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, Put, TxnResult
from contivpy.common.kv.etcdcommon import EtcdClientBase, store_errors
from contivpy.common.kv.etcdhttp import EtcdHTTP, EtcdHTTPError

log = logging.getLogger(__name__)

_TARGETS = {
    "value": ("VALUE", "value"),
    "version": ("VERSION", "version"),
    "create": ("CREATE", "create_revision"),
    "mod": ("MOD", "mod_revision"),
    "lease": ("LEASE", "lease"),
}
_OPS = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def _b64(text: str) -> str:
    return b64encode(text.encode()).decode("ascii")


def _text(b64: str | None) -> str:
    return b64decode(b64).decode() if b64 else ""


def _prefix_end(key: bytes) -> bytes:
    """The end of the range of keys starting with ``key`` (etcd's ``--prefix``)."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every byte 0xff: to the end of the keyspace


def _range(prefix: str) -> tuple[str, str]:
    """(key, range_end) in base64 for every key under ``prefix``."""
    if prefix == "":
        return "AA==", "AA=="  # "\0", "\0": the whole keyspace
    key = prefix.encode()
    return b64encode(key).decode("ascii"), b64encode(_prefix_end(key)).decode("ascii")


def _kv(kv: dict[str, Any]) -> KeyValue:
    return KeyValue(
        _text(kv.get("key")),
        _text(kv.get("value")),
        int(kv.get("create_revision", 0)),
        int(kv.get("mod_revision", 0)),
        int(kv.get("version", 0)),
        int(kv.get("lease", 0)),
    )


def _revision(resp: dict[str, Any]) -> int:
    return int(resp.get("header", {}).get("revision", 0))


def _ssl_context(ca_file: str, cert_file: str, key_file: str) -> Any:
    """TLS context: the CA file (system roots when empty) and an optional client cert/key."""
    import ssl

    if bool(cert_file) != bool(key_file):
        raise StoreError("etcd TLS client certificate and key must be given together")
    for path, what in ((ca_file, "CA file"), (cert_file, "certificate file"), (key_file, "key file")):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as err:
                raise StoreError(f"cannot read etcd TLS {what} {path}: {err.strerror}") from err
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as err:
        raise StoreError(f"invalid etcd TLS files: {getattr(err, 'reason', None) or err}") from err
    return ctx


def _describe(err: BaseException) -> str | None:
    if isinstance(err, EtcdHTTPError):
        return err.describe()
    if isinstance(err, (OSError, TimeoutError, ValueError, KeyError, TypeError)):  # a malformed answer
        return type(err).__name__
    return None


def _store_errors(what: str) -> contextlib.AbstractAsyncContextManager[None]:
    return store_errors(what, _describe)


class EtcdKV(EtcdClientBase):
    """KVStore on etcd v3. ``EtcdKV("127.0.0.1", 2379)``; connection is lazy (first call)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2379,
        timeout: float = 10.0,
        tls: bool = False,
        ready_grace: float = 2.0,
        *,
        endpoints: Sequence[tuple[str, int]] = (),
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
    ) -> None:
        super().__init__(host, port, timeout, tls, endpoints, ca_file, cert_file, key_file)
        ctx = _ssl_context(ca_file, cert_file, key_file) if self.tls else None
        self._http = EtcdHTTP(self.endpoints, ssl_context=ctx, timeout=timeout, ready_grace=ready_grace)

    async def _call(self, path: str, body: dict[str, Any], *, retry: bool = False) -> dict[str, Any]:
        if self._closed:
            raise StoreError("etcd store is closed")
        return await self._http.call(path, body, retry=retry)

    async def connect(self) -> None:
        """Open a connection and check that etcd answers (raises StoreError if not)."""
        await self.get_prefix("/contiv.io/__ping__/")

    # ---- reads -------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        async with _store_errors("get"):
            resp = await self._call("/v3/kv/range", {"key": _b64(key)}, retry=True)
            kvs = resp.get("kvs")
            return _kv(kvs[0]) if kvs else None

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        key, end = _range(prefix)
        req = {"key": key, "range_end": end, "sort_order": "ASCEND", "sort_target": "KEY"}
        async with _store_errors("get"):
            resp = await self._call("/v3/kv/range", req, retry=True)
            return [_kv(kv) for kv in resp.get("kvs", ())], _revision(resp)

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        if not keys:
            return []
        if len(keys) > 100:
            raise StoreError("get_many: at most 100 keys per request")
        req = {"success": [{"request_range": {"key": _b64(k)}} for k in keys]}
        async with _store_errors("get"):
            resp = await self._call("/v3/kv/txn", req, retry=True)
            out: list[KeyValue | None] = []
            for r in resp.get("responses", ()):
                kvs = r.get("response_range", {}).get("kvs")
                out.append(_kv(kvs[0]) if kvs else None)
            if len(out) != len(keys):
                raise ValueError("short answer")
            return out

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[KeyValue]:
        # No sort order: etcd returns keys ascending anyway, and only then stops after ``limit``
        # keys (with a sort order it reads the whole range, then sorts and truncates).
        req: dict[str, Any] = {"key": _b64(start), "range_end": _b64(end)}
        if limit:
            req["limit"] = limit
        async with _store_errors("get"):
            resp = await self._call("/v3/kv/range", req, retry=True)
            return [_kv(kv) for kv in resp.get("kvs", ())]

    # ---- writes ------------------------------------------------------------------------

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        req: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            req["lease"] = str(lease)
        async with _store_errors("put"):
            return _revision(await self._call("/v3/kv/put", req))

    async def _delete_range(self, req: dict[str, Any]) -> int:
        async with _store_errors("delete"):
            resp = await self._call("/v3/kv/deleterange", req)
            return int(resp.get("deleted", 0))

    async def delete(self, key: str) -> bool:
        return await self._delete_range({"key": _b64(key)}) > 0

    async def delete_prefix(self, prefix: str) -> int:
        key, end = _range(prefix)
        return await self._delete_range({"key": key, "range_end": end})

    @staticmethod
    def _compare(c: Compare) -> dict[str, Any]:
        if c.target not in _TARGETS or c.op not in _OPS:
            raise StoreError(f"invalid compare {c!r}")
        target, field = _TARGETS[c.target]
        msg: dict[str, Any] = {"key": _b64(c.key), "target": target, "result": _OPS[c.op]}
        if c.target == "value":
            msg["value"] = _b64(str(c.value))
        else:
            msg[field] = str(int(c.value))
        return msg

    @staticmethod
    def _op(op: Put | Delete) -> dict[str, Any]:
        if isinstance(op, Put):
            put: dict[str, Any] = {"key": _b64(op.key), "value": _b64(op.value)}
            if op.lease:
                put["lease"] = str(op.lease)
            return {"request_put": put}
        if isinstance(op, Delete):
            if op.prefix:
                key, end = _range(op.key)
                return {"request_delete_range": {"key": key, "range_end": end}}
            return {"request_delete_range": {"key": _b64(op.key)}}
        raise StoreError(f"invalid txn operation {op!r}")

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult:
        req = {
            "compare": [self._compare(c) for c in compares],
            "success": [self._op(o) for o in success],
            "failure": [self._op(o) for o in failure],
        }
        async with _store_errors("txn"):
            resp = await self._call("/v3/kv/txn", req)
            return TxnResult(bool(resp.get("succeeded", False)), _revision(resp))

    # ---- leases ------------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        async with _store_errors("lease grant"):
            resp = await self._call("/v3/lease/grant", {"TTL": str(ttl)}, retry=True)
            if resp.get("error"):
                raise StoreError(f"etcd lease grant failed: {resp['error']}")
            return int(resp["ID"])

    async def keepalive(self, lease_id: int) -> None:
        if self._closed:
            raise StoreError("etcd store is closed")
        async with _store_errors("lease keepalive"):
            reply = await self._http.call_stream_first(
                "/v3/lease/keepalive", {"ID": str(lease_id)}, retry=True
            )
            ttl = int(reply.get("TTL", 0))
        if ttl <= 0:
            raise StoreError(f"lease {lease_id:x} not found (expired or revoked)")

    async def revoke_lease(self, lease_id: int) -> None:
        async with _store_errors("lease revoke"):
            await self._call("/v3/lease/revoke", {"ID": str(lease_id)}, retry=True)

    # ---- watch -------------------------------------------------------------------------

    async def _events(self, prefix: str, next_rev: int) -> AsyncIterator[Event]:
        """Every change under ``prefix`` from ``next_rev`` on, forever, re-watching after stream
        failures. Ends only by an error: CompactedError, or StoreError once the store is closed."""
        try:
            async for ev in self._watch_forever(prefix, next_rev):
                yield ev
        except StoreError:
            raise
        except EtcdHTTPError as err:
            raise StoreError(f"etcd watch on {prefix!r} failed: {err.describe()}") from err
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StoreError(f"etcd watch on {prefix!r} failed: {type(err).__name__}") from err

    async def _watch_forever(self, prefix: str, next_rev: int) -> AsyncIterator[Event]:
        key, end = _range(prefix)
        if next_rev <= 0:  # "from now"
            next_rev = await self.first_revision(prefix)
        delay = 0.1
        while True:
            if self._closed:
                raise StoreError("etcd store is closed")
            create = {"key": key, "range_end": end, "start_revision": str(next_rev), "prev_kv": True}
            try:
                async for res in self._http.stream("/v3/watch", {"create_request": create}):
                    if res.get("canceled"):
                        compacted = int(res.get("compact_revision", 0))
                        if compacted:
                            raise CompactedError(
                                f"etcd watch from revision {next_rev} failed: required revision has "
                                f"been compacted (compacted revision {compacted})",
                                compacted,
                            )
                        reason = res.get("cancel_reason") or "watch canceled by etcd"
                        raise EtcdHTTPError(1, str(reason))
                    if res.get("created"):
                        delay = 0.1
                    for ev in res.get("events", ()):
                        kv = ev.get("kv", {})
                        deleted = ev.get("type") == "DELETE"
                        mod = int(kv.get("mod_revision", 0))
                        prev = ev.get("prev_kv")
                        next_rev = mod + 1
                        yield Event(
                            "delete" if deleted else "put",
                            _text(kv.get("key")),
                            "" if deleted else _text(kv.get("value")),
                            mod,
                            _text(prev.get("value")) if prev is not None else None,
                        )
                # The stream ended without an error: closed under us (etcd stopped).
                log.info("etcd watch on %r ended; re-watching from revision %d", prefix, next_rev)
            except EtcdHTTPError as err:
                if self._closed:
                    raise StoreError("etcd store is closed") from err
                log.warning(
                    "etcd watch on %r broke (%s); retrying from revision %d in %.1fs",
                    prefix,
                    err.describe(),
                    next_rev,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # ---- misc --------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Compact history below ``revision`` (tests of CompactedError)."""
        async with _store_errors("compact"):
            await self._call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    async def status(self) -> dict[str, Any]:
        """The current member's status (version, dbSize, leader, raftIndex, ...)."""
        async with _store_errors("status"):
            return await self._call("/v3/maintenance/status", {}, retry=True)

    async def close(self) -> None:
        """Close the client; open watch iterators end with StoreError("... closed")."""
        await self._close_watches(self._http.close)


__all__ = ["EtcdKV"]
