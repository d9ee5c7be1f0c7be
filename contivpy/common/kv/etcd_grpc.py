"""EtcdGrpcKV: the KVStore on etcd v3 through aetcd/gRPC: the fallback client (the only module
importing aetcd), selected with ``CONTIVPY_ETCD_CLIENT=grpc`` (common/kv/__init__.py).

The default client is common/kv/etcd.py (etcd's JSON gateway, no grpc): it saves each daemon
about 12 MiB and 40-60 ms of start-up, but costs etcd more CPU per request and per watch event
(docs/benchmarks.md, "etcd client"). This one is kept for deployments where etcd's CPU is the
bottleneck; aetcd is then needed (``pip install 'contivpy[etcd-grpc]'``). Same behaviour and
error messages as EtcdKV; the contract suite runs against it with
``CONTIVPY_ETCD_CLIENT=grpc pytest tests/contract``.

Design
- One ``aetcd.Client`` per EtcdKV. grpc.aio binds it to the event loop it first connects on, so an
  EtcdKV must be created and used inside one loop (create it in the daemon's main coroutine or in a
  fixture with the same loop scope as the tests). Never keep one in a module global.
- Unary calls go straight to the gRPC stubs aetcd opened (``kvstub``, ``leasestub``) so that every
  answer carries its header revision; every failure (gRPC status, aetcd ClientError, timeout,
  OSError) becomes ``StoreError``.
- Endpoints: ``EtcdKV(endpoints=[(host, port), ...])`` opens one gRPC channel on all of them
  (target ``ipv4:a:p,b:p,...``, host names resolved when the channel opens) with gRPC's
  pick_first policy: calls go to one member; when its connection drops the channel moves to the
  next member that accepts a connection. etcd members forward writes to the raft leader, so any
  member serves every call; leases are cluster-wide, so keepalives through a surviving member
  keep them alive.
- Retries: a call that fails UNAVAILABLE (the member went away under it) is re-sent once only if
  repeating it is harmless: reads, lease grant/keepalive/revoke. Writes (put, delete, txn) are
  never re-sent by us (gRPC itself retries only what never left the client): the caller gets
  StoreError and decides.
- TLS: ``tls=True`` or any of ``ca_file``/``cert_file``/``key_file`` -> a TLS channel verifying the
  server against ``ca_file`` (system roots if empty), presenting the client certificate if given.
- Reconnection: the channel retries a lost connection every 0.1 s .. 1 s (gRPC's default backoff
  grows to 120 s, so a client could stay "UNAVAILABLE" for seconds after etcd came back). Before a
  call, a channel that is not READY gets up to ``ready_grace`` seconds (2 s) to become so; then the
  call is sent (and fails fast if etcd is still down). A call is never re-sent: a write that may
  have been applied is reported as failed, not repeated.
- ``watch_prefix`` returns a ``common.pump.PumpedIterator`` over ``_events``, an async generator
  that owns the resume logic: it remembers the next
  revision it owes the caller (``last delivered + 1``; for ``start_revision=0`` the store revision
  read when the generator starts, + 1). When the stream dies (etcd restart, network error) it
  re-watches from that revision with exponential backoff (0.1 s .. 2 s), so the caller sees every
  change exactly once, in order. A compacted start revision raises ``CompactedError``.
- Leases: ``keepalive`` sends one LeaseKeepAlive; a TTL <= 0 answer means the lease is gone.

Invariants
- Keys/values are UTF-8 ``str`` at this API, bytes on the wire.
- The empty prefix "" means the whole keyspace (range ["\\0", "\\0")).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aetcd
import aetcd.exceptions as aexc
import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from contivpy.common.errors import CompactedError, StoreError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, Put, TxnResult
from contivpy.common.kv.etcdcommon import EtcdClientBase, store_errors

log = logging.getLogger(__name__)

_TARGETS = {
    "value": (rpc.Compare.VALUE, "value"),
    "version": (rpc.Compare.VERSION, "version"),
    "create": (rpc.Compare.CREATE, "create_revision"),
    "mod": (rpc.Compare.MOD, "mod_revision"),
    "lease": (rpc.Compare.LEASE, "lease"),
}
_OPS = {
    "==": rpc.Compare.EQUAL,
    "!=": rpc.Compare.NOT_EQUAL,
    "<": rpc.Compare.LESS,
    ">": rpc.Compare.GREATER,
}
_RETRYABLE_WATCH = (aexc.ClientError, rpc.AioRpcError, OSError, TimeoutError)
# Reconnect quickly after an etcd restart instead of gRPC's default backoff (1 s growing to 120 s).
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    # notice a member that vanished without closing its socket (etcd's default
    # --grpc-keepalive-min-time is 5 s: pinging more often would get us disconnected)
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_file(path: str, what: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise StoreError(f"cannot read etcd TLS {what} {path}: {err.strerror}") from err


def _credentials(ca_file: str, cert_file: str, key_file: str) -> grpc.ChannelCredentials:
    """TLS credentials: the CA file (system roots when empty) and an optional client cert/key."""
    if bool(cert_file) != bool(key_file):
        raise StoreError("etcd TLS client certificate and key must be given together")
    return grpc.ssl_channel_credentials(
        root_certificates=_read_file(ca_file, "CA file"),
        private_key=_read_file(key_file, "key file"),
        certificate_chain=_read_file(cert_file, "certificate file"),
    )


def _range(prefix: str) -> tuple[bytes, bytes]:
    if prefix == "":
        return b"\0", b"\0"
    key = prefix.encode()
    return key, prefix_range_end(key)


def _kv(kv: Any) -> KeyValue:
    return KeyValue(
        kv.key.decode(), kv.value.decode(), kv.create_revision, kv.mod_revision, kv.version, kv.lease
    )


def _describe(err: BaseException) -> str:
    if isinstance(err, rpc.AioRpcError):
        if err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            # e.g. a /8 network's address bitmap (2.8 MB) against etcd's default 1.5 MiB limit
            return (
                f"request too large for etcd ({err.details()}); start etcd with a larger --max-request-bytes"
            )
        if "too many operations in txn request" in (err.details() or ""):
            return (
                f"too many operations in one etcd transaction ({err.details()}); "
                "start etcd with a larger --max-txn-ops"
            )
        if "request is too large" in (err.details() or ""):
            return (
                f"request too large for etcd ({err.details()}); start etcd with a larger --max-request-bytes"
            )
        return f"{err.code().name}: {err.details()}"
    if isinstance(err, aexc.RevisionCompactedError):
        return str(err)
    cause = err.__cause__
    if isinstance(cause, rpc.AioRpcError):
        return f"{cause.code().name}: {cause.details()}"
    return str(err) or type(err).__name__


def _store_errors(what: str) -> contextlib.AbstractAsyncContextManager[None]:
    return store_errors(what, lambda err: _describe(err) if isinstance(err, _RETRYABLE_WATCH) else None)


class EtcdGrpcKV(EtcdClientBase):
    """KVStore on etcd v3 over gRPC. ``EtcdGrpcKV("127.0.0.1", 2379)``; connection is lazy (first call)."""

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
        self._creds = _credentials(ca_file, cert_file, key_file) if self.tls else None
        self._ready_grace = min(ready_grace, timeout)
        self._client = aetcd.Client(host=self.host, port=self.port, timeout=timeout, options=_CHANNEL_OPTIONS)

    async def _stubs(self) -> aetcd.Client:
        if self._closed:
            raise StoreError("etcd store is closed")
        c = self._client
        if c.channel is None:
            await self._open_channel(c)
        await self._await_ready(c.channel)
        return c

    async def _await_ready(self, channel: Any) -> None:
        """Give a channel that is (re)connecting up to ``ready_grace`` s to become READY."""
        state = channel.get_state(try_to_connect=True)
        if state is grpc.ChannelConnectivity.READY:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_grace
        while state not in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.SHUTDOWN):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return  # let the call go out and report the channel's own error
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)

    async def _target(self) -> str:
        """The gRPC target: ``host:port`` for one endpoint, else an ``ipv4:``/``ipv6:`` address list
        (host names resolved once, here) that the channel's pick_first policy fails over across."""
        if len(self.endpoints) == 1:
            return f"{self.host}:{self.port}"
        loop = asyncio.get_running_loop()
        v4: list[str] = []
        v6: list[str] = []
        for host, port in self.endpoints:
            if _is_ip(host):
                addrs = [host]
            else:
                try:
                    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except OSError as err:
                    log.warning("etcd endpoint %s:%d does not resolve (%s); skipped", host, port, err)
                    continue
                addrs = list(dict.fromkeys(str(i[4][0]) for i in infos))
            for a in addrs:
                (v6 if ":" in a else v4).append(f"[{a}]:{port}" if ":" in a else f"{a}:{port}")
        if v4:
            return "ipv4:" + ",".join(v4)  # one address family per target: IPv4 first
        if v6:
            return "ipv6:" + ",".join(v6)
        raise StoreError("no etcd endpoint resolves: " + ",".join(f"{h}:{p}" for h, p in self.endpoints))

    async def _open_channel(self, c: aetcd.Client) -> None:
        # aetcd opens one plaintext host:port channel: set up the same stubs on our own channel
        # (every endpoint, pick_first failover, TLS when asked).
        from aetcd import watcher

        target = await self._target()
        if c.channel is not None:  # opened by another task meanwhile
            return
        options: list[tuple[str, int | str]] = list(_CHANNEL_OPTIONS.items())
        if len(self.endpoints) > 1:
            # TLS name checks use the first endpoint's host name (server certs must carry it, or
            # each member's address; see docs/deployment.md).
            options.append(("grpc.default_authority", f"{self.host}:{self.port}"))
        if self._creds is not None:
            c.channel = grpc.aio.secure_channel(target, self._creds, options=options)
        else:
            c.channel = grpc.aio.insecure_channel(target, options=options)
        c.kvstub = rpc.KVStub(c.channel)
        c.clusterstub = rpc.ClusterStub(c.channel)
        c.leasestub = rpc.LeaseStub(c.channel)
        c.maintenancestub = rpc.MaintenanceStub(c.channel)
        c._watcher = watcher.Watcher(rpc.WatchStub(c.channel), timeout=self._timeout, metadata=c.metadata)
        c._connected.set()

    async def _idempotent(self, call: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run ``call(client)``; re-send it once if it failed UNAVAILABLE (the member we were on
        went away: the channel fails over). Only for calls that are safe to repeat: reads and
        lease keepalive/revoke/grant (a duplicate grant is an unused lease that expires). With a
        single endpoint there is nowhere else to go: no re-send (an outage fails in ready_grace)."""
        try:
            return await call(await self._stubs())
        except rpc.AioRpcError as err:
            if err.code() is not grpc.StatusCode.UNAVAILABLE or self._closed or len(self.endpoints) < 2:
                raise
            log.info("etcd call failed (%s); retrying once on another member", _describe(err))
            return await call(await self._stubs())

    async def connect(self) -> None:
        """Open the channel and check that etcd answers (raises StoreError if not)."""
        await self.get_prefix("/contiv.io/__ping__/")

    # ---- reads -------------------------------------------------------------------------

    async def _range_call(self, key: bytes, range_end: bytes | None) -> Any:
        req = rpc.RangeRequest(key=key)
        if range_end is not None:
            req.range_end = range_end
            req.sort_order = rpc.RangeRequest.ASCEND
            req.sort_target = rpc.RangeRequest.KEY
        return await self._idempotent(
            lambda c: c.kvstub.Range(req, timeout=self._timeout, metadata=c.metadata)
        )

    async def get(self, key: str) -> KeyValue | None:
        async with _store_errors("get"):
            resp = await self._range_call(key.encode(), None)
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        async with _store_errors("get"):
            resp = await self._range_call(*_range(prefix))
        return [_kv(kv) for kv in resp.kvs], resp.header.revision

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        if not keys:
            return []
        if len(keys) > 100:
            raise StoreError("get_many: at most 100 keys per request")
        req = rpc.TxnRequest(
            success=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k.encode())) for k in keys]
        )
        async with _store_errors("get"):
            resp = await self._idempotent(
                lambda c: c.kvstub.Txn(req, timeout=self._timeout, metadata=c.metadata)
            )
        out: list[KeyValue | None] = []
        for r in resp.responses:
            kvs = r.response_range.kvs
            out.append(_kv(kvs[0]) if kvs else None)
        return out

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[KeyValue]:
        # No sort order: etcd returns keys ascending anyway, and only then stops after ``limit``
        # keys (with a sort order it reads the whole range, then sorts and truncates).
        req = rpc.RangeRequest(key=start.encode(), range_end=end.encode(), limit=limit)
        async with _store_errors("get"):
            resp = await self._idempotent(
                lambda c: c.kvstub.Range(req, timeout=self._timeout, metadata=c.metadata)
            )
        return [_kv(kv) for kv in resp.kvs]

    # ---- writes ------------------------------------------------------------------------

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        async with _store_errors("put"):
            c = await self._stubs()
            req = rpc.PutRequest(key=key.encode(), value=value.encode(), lease=lease)
            resp = await c.kvstub.Put(req, timeout=self._timeout, metadata=c.metadata)
        return int(resp.header.revision)

    async def _delete_range(self, key: bytes, range_end: bytes | None) -> int:
        async with _store_errors("delete"):
            c = await self._stubs()
            req = rpc.DeleteRangeRequest(key=key)
            if range_end is not None:
                req.range_end = range_end
            resp = await c.kvstub.DeleteRange(req, timeout=self._timeout, metadata=c.metadata)
        return int(resp.deleted)

    async def delete(self, key: str) -> bool:
        return await self._delete_range(key.encode(), None) > 0

    async def delete_prefix(self, prefix: str) -> int:
        return await self._delete_range(*_range(prefix))

    @staticmethod
    def _compare(c: Compare) -> Any:
        if c.target not in _TARGETS or c.op not in _OPS:
            raise StoreError(f"invalid compare {c!r}")
        target, field = _TARGETS[c.target]
        msg = rpc.Compare(key=c.key.encode(), target=target, result=_OPS[c.op])
        if c.target == "value":
            msg.value = str(c.value).encode()
        else:
            setattr(msg, field, int(c.value))
        return msg

    @staticmethod
    def _op(op: Put | Delete) -> Any:
        if isinstance(op, Put):
            return rpc.RequestOp(
                request_put=rpc.PutRequest(key=op.key.encode(), value=op.value.encode(), lease=op.lease)
            )
        if isinstance(op, Delete):
            if op.prefix:
                key, end = _range(op.key)
                return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=end))
            return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key.encode()))
        raise StoreError(f"invalid txn operation {op!r}")

    async def txn(
        self,
        compares: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult:
        req = rpc.TxnRequest(
            compare=[self._compare(c) for c in compares],
            success=[self._op(o) for o in success],
            failure=[self._op(o) for o in failure],
        )
        async with _store_errors("txn"):
            c = await self._stubs()
            resp = await c.kvstub.Txn(req, timeout=self._timeout, metadata=c.metadata)
        return TxnResult(resp.succeeded, resp.header.revision)

    # ---- leases ------------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        async with _store_errors("lease grant"):
            resp = await self._idempotent(
                lambda c: c.leasestub.LeaseGrant(
                    rpc.LeaseGrantRequest(TTL=ttl), timeout=self._timeout, metadata=c.metadata
                )
            )
        if resp.error:
            raise StoreError(f"etcd lease grant failed: {resp.error}")
        return int(resp.ID)

    async def keepalive(self, lease_id: int) -> None:
        async def once(c: Any) -> Any:
            stream = c.leasestub.LeaseKeepAlive(
                [rpc.LeaseKeepAliveRequest(ID=lease_id)], timeout=self._timeout, metadata=c.metadata
            )
            try:
                return await anext(aiter(stream), None)
            finally:
                stream.cancel()

        async with _store_errors("lease keepalive"):
            reply = await self._idempotent(once)
        if reply is None or reply.TTL <= 0:
            raise StoreError(f"lease {lease_id:x} not found (expired or revoked)")

    async def revoke_lease(self, lease_id: int) -> None:
        async with _store_errors("lease revoke"):
            await self._idempotent(
                lambda c: c.leasestub.LeaseRevoke(
                    rpc.LeaseRevokeRequest(ID=lease_id), timeout=self._timeout, metadata=c.metadata
                )
            )

    # ---- watch -------------------------------------------------------------------------

    async def _events(self, prefix: str, next_rev: int) -> AsyncIterator[Event]:
        """Every change under ``prefix`` from ``next_rev`` on, forever, re-watching after stream
        failures. Ends only by an error: CompactedError, or StoreError once the store is closed."""
        try:
            async for ev in self._watch_forever(prefix, next_rev):
                yield ev
        except StoreError:
            raise
        except Exception as err:
            raise StoreError(f"etcd watch on {prefix!r} failed: {_describe(err)}") from err

    async def _watch_forever(self, prefix: str, next_rev: int) -> AsyncIterator[Event]:
        key, end = _range(prefix)
        if next_rev <= 0:  # "from now"
            next_rev = await self.first_revision(prefix)
        delay = 0.1
        while True:
            watch = None
            try:
                c = await self._stubs()
                watch = await c.watch(key, range_end=end, start_revision=next_rev, prev_kv=True)
                delay = 0.1
                async for ev in watch:
                    deleted = ev.kind == "DELETE"
                    next_rev = ev.kv.mod_revision + 1
                    yield Event(
                        "delete" if deleted else "put",
                        ev.kv.key.decode(),
                        "" if deleted else ev.kv.value.decode(),
                        ev.kv.mod_revision,
                        ev.prev_kv.value.decode() if ev.prev_kv is not None else None,
                    )
                # The iterator ended without an error: the stream was closed under us.
                log.info("etcd watch on %r ended; re-watching from revision %d", prefix, next_rev)
            except aexc.RevisionCompactedError as err:
                raise CompactedError(
                    f"etcd watch from revision {next_rev} failed: {err}", err.compacted_revision
                ) from err
            except _RETRYABLE_WATCH as err:
                log.warning(
                    "etcd watch on %r broke (%s); retrying from revision %d in %.1fs",
                    prefix,
                    _describe(err),
                    next_rev,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                if watch is not None:
                    with contextlib.suppress(Exception):
                        await watch.cancel()

    # ---- misc --------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Compact history below ``revision`` (tests of CompactedError)."""
        async with _store_errors("compact"):
            c = await self._stubs()
            await c.kvstub.Compact(
                rpc.CompactionRequest(revision=revision, physical=True),
                timeout=self._timeout,
                metadata=c.metadata,
            )

    async def status(self) -> dict[str, Any]:
        """The current member's status (version, dbSize, leader, raftIndex, ...)."""
        async with _store_errors("status"):
            c = await self._stubs()
            r = await c.maintenancestub.Status(
                rpc.StatusRequest(), timeout=self._timeout, metadata=c.metadata
            )
        return {"version": r.version, "dbSize": str(r.dbSize), "leader": str(r.leader)}

    async def close(self) -> None:
        """Close the client; open watch iterators end with StoreError("... closed")."""

        async def close_client() -> None:
            with contextlib.suppress(Exception):
                await self._client.close()

        await self._close_watches(close_client)


__all__ = ["EtcdGrpcKV"]
