"""EtcdKV: the KVStore on a real etcd v3 server, through aetcd (the only module importing aetcd).

Design
- One ``aetcd.Client`` per EtcdKV. grpc.aio binds it to the event loop it first connects on, so an
  EtcdKV must be created and used inside one loop (create it in the daemon's main coroutine or in a
  fixture with the same loop scope as the tests). Never keep one in a module global.
- Unary calls go straight to the gRPC stubs aetcd opened (``kvstub``, ``leasestub``) so that every
  answer carries its header revision; every failure (gRPC status, aetcd ClientError, timeout,
  OSError) becomes ``StoreError``.
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
import logging
import weakref
from collections.abc import AsyncIterator, Sequence

import aetcd
import aetcd.exceptions as aexc
import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from contivpy.common.errors import CompactedError, StoreError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, Put, TxnResult
from contivpy.common.pump import PumpedIterator

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
}


def _range(prefix: str) -> tuple[bytes, bytes]:
    if prefix == "":
        return b"\0", b"\0"
    key = prefix.encode()
    return key, prefix_range_end(key)


def _kv(kv) -> KeyValue:
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
        return f"{err.code().name}: {err.details()}"
    if isinstance(err, aexc.RevisionCompactedError):
        return str(err)
    cause = err.__cause__
    if isinstance(cause, rpc.AioRpcError):
        return f"{cause.code().name}: {cause.details()}"
    return str(err) or type(err).__name__


@contextlib.asynccontextmanager
async def _store_errors(what: str):
    try:
        yield
    except StoreError:
        raise
    except (aexc.ClientError, rpc.AioRpcError, OSError, TimeoutError) as err:
        raise StoreError(f"etcd {what} failed: {_describe(err)}") from err


class EtcdKV:
    """KVStore on etcd v3. ``EtcdKV("127.0.0.1", 2379)``; connection is lazy (first call)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2379,
        timeout: float = 10.0,
        tls: bool = False,
        ready_grace: float = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self._timeout = timeout
        self._ready_grace = min(ready_grace, timeout)
        self._client = aetcd.Client(host=host, port=port, timeout=timeout, options=_CHANNEL_OPTIONS)
        self._closed = False
        self._watches: weakref.WeakSet[PumpedIterator] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"EtcdKV({self.host}:{self.port})"

    async def _stubs(self) -> aetcd.Client:
        if self._closed:
            raise StoreError("etcd store is closed")
        c = self._client
        if self.tls and c.channel is None:
            self._open_tls_channel(c)
        await c.connect()
        await self._await_ready(c.channel)
        return c

    async def _await_ready(self, channel) -> None:
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

    def _open_tls_channel(self, c: aetcd.Client) -> None:
        # aetcd only opens plaintext channels: set up the same stubs on a TLS channel ourselves.
        from aetcd import watcher

        c.channel = grpc.aio.secure_channel(
            f"{self.host}:{self.port}",
            grpc.ssl_channel_credentials(),
            options=list(_CHANNEL_OPTIONS.items()),
        )
        c.kvstub = rpc.KVStub(c.channel)
        c.clusterstub = rpc.ClusterStub(c.channel)
        c.leasestub = rpc.LeaseStub(c.channel)
        c.maintenancestub = rpc.MaintenanceStub(c.channel)
        c._watcher = watcher.Watcher(rpc.WatchStub(c.channel), timeout=self._timeout, metadata=c.metadata)
        c._connected.set()

    async def connect(self) -> None:
        """Open the channel and check that etcd answers (raises StoreError if not)."""
        await self.get_prefix("/contiv.io/__ping__/")

    # ---- reads -------------------------------------------------------------------------

    async def _range_call(self, key: bytes, range_end: bytes | None):
        c = await self._stubs()
        req = rpc.RangeRequest(key=key)
        if range_end is not None:
            req.range_end = range_end
            req.sort_order = rpc.RangeRequest.ASCEND
            req.sort_target = rpc.RangeRequest.KEY
        return await c.kvstub.Range(req, timeout=self._timeout, metadata=c.metadata)

    async def get(self, key: str) -> KeyValue | None:
        async with _store_errors("get"):
            resp = await self._range_call(key.encode(), None)
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        async with _store_errors("get"):
            resp = await self._range_call(*_range(prefix))
        return [_kv(kv) for kv in resp.kvs], resp.header.revision

    # ---- writes ------------------------------------------------------------------------

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        async with _store_errors("put"):
            c = await self._stubs()
            req = rpc.PutRequest(key=key.encode(), value=value.encode(), lease=lease)
            resp = await c.kvstub.Put(req, timeout=self._timeout, metadata=c.metadata)
        return resp.header.revision

    async def _delete_range(self, key: bytes, range_end: bytes | None) -> int:
        async with _store_errors("delete"):
            c = await self._stubs()
            req = rpc.DeleteRangeRequest(key=key)
            if range_end is not None:
                req.range_end = range_end
            resp = await c.kvstub.DeleteRange(req, timeout=self._timeout, metadata=c.metadata)
        return resp.deleted

    async def delete(self, key: str) -> bool:
        return await self._delete_range(key.encode(), None) > 0

    async def delete_prefix(self, prefix: str) -> int:
        return await self._delete_range(*_range(prefix))

    @staticmethod
    def _compare(c: Compare):
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
    def _op(op: Put | Delete):
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
            c = await self._stubs()
            resp = await c.leasestub.LeaseGrant(
                rpc.LeaseGrantRequest(TTL=ttl), timeout=self._timeout, metadata=c.metadata
            )
        if resp.error:
            raise StoreError(f"etcd lease grant failed: {resp.error}")
        return resp.ID

    async def keepalive(self, lease_id: int) -> None:
        async with _store_errors("lease keepalive"):
            c = await self._stubs()
            stream = c.leasestub.LeaseKeepAlive(
                [rpc.LeaseKeepAliveRequest(ID=lease_id)], timeout=self._timeout, metadata=c.metadata
            )
            reply = await anext(aiter(stream), None)
            stream.cancel()
        if reply is None or reply.TTL <= 0:
            raise StoreError(f"lease {lease_id:x} not found (expired or revoked)")

    async def revoke_lease(self, lease_id: int) -> None:
        async with _store_errors("lease revoke"):
            c = await self._stubs()
            await c.leasestub.LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease_id), timeout=self._timeout, metadata=c.metadata
            )

    # ---- watch -------------------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        w = PumpedIterator(self._events(prefix, start_revision), name=f"etcd-watch {prefix}")
        self._watches.add(w)
        return w

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
        delay = 0.1
        while next_rev <= 0:  # "from now": the revision of a first successful read
            try:
                _, rev = await self.get_prefix(prefix)
                next_rev = rev + 1
            except StoreError as err:
                if self._closed:
                    raise
                log.warning("etcd watch on %r cannot start (%s); retrying in %.1fs", prefix, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
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

    async def close(self) -> None:
        """Close the client; open watch iterators end with StoreError("... closed")."""
        self._closed = True
        for w in list(self._watches):
            await w.fail(StoreError("etcd store is closed"))
        with contextlib.suppress(Exception):
            await self._client.close()


__all__ = ["EtcdKV"]
