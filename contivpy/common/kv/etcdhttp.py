"""EtcdHTTP: a small client of etcd v3's JSON gateway (HTTP/1.1 on the client port), stdlib only.

Why (docs/decisions.md, "etcd client"): the gRPC client stack (grpcio + protobuf + aetcd) cost
each daemon about 16 MiB of RSS and tens of ms of start-up CPU (docs/benchmarks.md, "etcd
client"); the price is more CPU in etcd per request and per watch event (same section). etcd (3.4 and later) serves the same
v3 API as JSON on the same port: ``POST /v3/kv/range``, ``/v3/kv/txn``, ``/v3/watch`` (a streamed
answer, one JSON object per line), ``/v3/lease/*``. Keys and values are base64 in JSON, int64s are
decimal strings, fields at their default value (0, false, "") are left out of answers.

Design
- Transport only: ``call(path, body)`` sends one JSON request and returns the decoded answer;
  ``stream(path, body)`` yields the ``result`` objects of a streamed answer. KV semantics live in
  common/kv/etcd.py (EtcdKV), the one module using this one.
- Connections: asyncio streams, HTTP/1.1 keep-alive. Unary calls take an idle connection from a
  pool (at most ``pool_size`` idle ones are kept; an idle connection the server closed is seen by
  ``at_eof`` and dropped before use) or open one; at most ``max_conns`` unary calls are in flight
  at once (the others wait). A streamed call owns its connection until the stream ends; its socket
  gets TCP keep-alive (10 s idle, 5 s interval, 2 probes) so that a member that vanished without
  closing the socket is noticed, as gRPC's pings did.
- Endpoints and fail-over: connections go to the current endpoint (the first one to start with).
  When a connection cannot be opened, the next endpoint is tried, round the list; when none
  accepts one, the attempts go on every 0.1 s for up to ``ready_grace`` seconds (an etcd being
  restarted is waited for briefly), then the call fails. etcd members forward writes to the raft
  leader, so any member serves every call.
- A member cut off from the others (a network partition, or its peers gone) is detected: every
  request carries the leader requirement (header ``Grpc-Metadata-hasleader: true``, the gateway's
  form of the Go client's ``WithRequireLeader``). A member without a raft leader then refuses
  unary calls at once with "etcdserver: no leader" (before doing anything, so any call may be
  sent again), and cancels open watch streams within a few election timeouts, instead of
  answering stale reads and keeping a watch open that never sees the majority's writes. Such an
  answer moves the client off that member (``_avoid``: the next endpoint becomes current and the
  idle connections to the member are dropped); a refused unary call is then re-sent once to the
  next member, and a cancelled watch is re-created there by EtcdKV from the revision it owes.
- Re-sending: a request that was written and then lost its connection is sent again once, on a
  new connection, only if ``retry=True`` (reads and lease calls: repeating them is harmless).
  Writes are never re-sent: the caller gets the error, as the write may have been applied.
  A connection in an unknown state (timeout, cancellation, broken answer) is closed, never reused.
- Counting: every request sent counts once in ``contiv_etcd_requests_total{kind}`` (``request_kind``:
  range, range_prefix, txn_read, txn, put, ...; a re-sent request counts once more) and its JSON
  bytes in ``contiv_etcd_bytes_total{kind,direction}``; a watch stream counts once when opened and
  the bytes of every line it delivers. These are the counts docs/benchmarks.md ("etcd requests per
  endpoint") reports; they are exact, unlike timings, so tests can pin them.
- TLS: an ``ssl.SSLContext`` (CA, optional client certificate). The name checked is the host of
  the first endpoint for every member (docs/deployment.md, "TLS").
- Errors: everything raises ``EtcdHTTPError`` (gRPC status code + etcd's message; code 14 for a
  transport failure); ``describe()`` turns the limits etcd enforces into messages that say what
  to change (request size, operations per txn) instead of etcd's raw text.

Invariants
- No third-party import: asyncio, ssl, socket, json only (importing this module costs < 1 ms).
- A connection is returned to the pool only after a complete answer with keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

from contivpy.common import metrics

# gRPC status codes, as etcd's gateway reports them in {"code": N}
_CODE_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
UNAVAILABLE = 14
_KINDS = {
    "/v3/kv/put": "put",
    "/v3/kv/deleterange": "deleterange",
    "/v3/lease/grant": "lease_grant",
    "/v3/lease/keepalive": "lease_keepalive",
    "/v3/lease/revoke": "lease_revoke",
    "/v3/watch": "watch",
    "/v3/maintenance/status": "status",
    "/v3/kv/compaction": "compaction",
}
_TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class EtcdHTTPError(Exception):
    """An etcd call failed: ``code`` is the gRPC status code (14 for transport failures)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def describe(self) -> str:
        msg = self.message
        if self.code == 8 or "request is too large" in msg:
            # e.g. a /8 network's address bitmap (2.8 MB) against etcd's default 1.5 MiB limit
            return f"request too large for etcd ({msg}); start etcd with a larger --max-request-bytes"
        if "too many operations in txn request" in msg:
            return (
                f"too many operations in one etcd transaction ({msg}); start etcd with a larger --max-txn-ops"
            )
        return f"{_CODE_NAMES.get(self.code, 'UNKNOWN')}: {msg}"

    def __str__(self) -> str:
        return self.describe()


class _Conn:
    __slots__ = ("reader", "writer", "endpoint")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, endpoint: int) -> None:
        self.reader = reader
        self.writer = writer
        self.endpoint = endpoint

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _transport_text(err: BaseException, tls: bool = True) -> str:
    if isinstance(err, asyncio.IncompleteReadError):
        if not tls and not err.partial:
            return "connection closed by etcd without an answer (if etcd serves https://, use https:// URLs)"
        return "connection closed by etcd"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS: server certificate not accepted ({err.verify_message or err.reason})"
    if isinstance(err, ssl.SSLError):
        reason = (err.reason or str(err)).lower().replace("_", " ")
        if "bad certificate" in reason or "certificate required" in reason or "unknown ca" in reason:
            return f"TLS: etcd refused the client certificate ({reason})"
        return f"TLS: {reason}"
    if isinstance(err, OSError):
        if err.errno:
            return os.strerror(err.errno)
        return err.strerror or str(err) or type(err).__name__
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP answer: {lines[0][:60]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if parts[0] == "HTTP/1.0" and "connection" not in headers:
            headers["connection"] = "close"
        return status, headers


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The chunks of a chunked body, as they arrive; trailers are read and ignored."""
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                trailer = await reader.readline()
                if not trailer.endswith(b"\n"):
                    raise asyncio.IncompleteReadError(trailer, None)
                if trailer in (b"\r\n", b"\n"):
                    return
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """(body, complete-with-keep-alive)."""
    keep = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return b"".join([c async for c in _chunks(reader)]), keep
    length = headers.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length)), keep
    return await reader.read(), False  # delimited by the end of the connection


def _error(status: int, body: bytes) -> EtcdHTTPError:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):  # a stream's error object
            return EtcdHTTPError(int(err.get("grpc_code", 2)), str(err.get("message", "")))
        if err is not None or "message" in doc:
            return EtcdHTTPError(int(doc.get("code", 2)), str(doc.get("message") or err))
    text = body.decode("utf-8", "replace").strip()[:200]
    return EtcdHTTPError(UNAVAILABLE if status >= 500 else 2, f"HTTP {status}: {text}")


def _keepalive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)


class EtcdHTTP:
    """JSON gateway client for the members ``endpoints`` of one etcd cluster."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        ready_grace: float = 2.0,
        pool_size: int = 32,
        max_conns: int = 64,
    ) -> None:
        self.endpoints = list(endpoints)
        self._ssl = ssl_context
        self._server_hostname = self.endpoints[0][0] if ssl_context is not None else None
        self.timeout = timeout
        self.ready_grace = min(ready_grace, timeout)
        self._pool_size = pool_size
        self._max_conns = max_conns
        self._sem: asyncio.Semaphore | None = None  # made on first use (inside the loop)
        self._idle: list[_Conn] = []
        self._streams: set[_Conn] = set()
        self._current = 0
        self._closed = False
        self._hosts = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.endpoints]

    # ---- connections -------------------------------------------------------------------

    async def _open(self) -> _Conn:
        """A new connection to the current endpoint, failing over round the list; retried for
        up to ``ready_grace`` s when no endpoint accepts one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_grace
        last: BaseException | None = None
        while True:
            n = len(self.endpoints)
            for step in range(n):
                i = (self._current + step) % n
                host, port = self.endpoints[i]
                try:
                    async with asyncio.timeout(max(0.5, min(self.timeout, self.ready_grace))):
                        reader, writer = await asyncio.open_connection(
                            host,
                            port,
                            ssl=self._ssl,
                            server_hostname=self._server_hostname,
                            limit=1 << 20,
                        )
                except ssl.SSLError as err:  # not transient: report at once
                    raise EtcdHTTPError(
                        UNAVAILABLE, f"etcd at {self._hosts[i]}: {_transport_text(err)}"
                    ) from err
                except (OSError, TimeoutError) as err:
                    last = err
                    continue
                if self._closed:
                    writer.close()
                    raise EtcdHTTPError(UNAVAILABLE, "etcd store is closed")
                self._current = i
                return _Conn(reader, writer, i)
            if loop.time() >= deadline or self._closed:
                hosts = ",".join(self._hosts)
                raise EtcdHTTPError(
                    UNAVAILABLE, f"etcd unreachable at {hosts}: {_transport_text(last or OSError())}"
                ) from last
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    async def _acquire(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        return await self._open(), False

    def _release(self, conn: _Conn) -> None:
        if not self._closed and len(self._idle) < self._pool_size and conn.usable():
            self._idle.append(conn)
        else:
            conn.close()

    def _request(self, path: str, payload: bytes, endpoint: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self._hosts[endpoint]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Grpc-Metadata-hasleader: true\r\n\r\n"
        ).encode() + payload

    def _avoid(self, endpoint: int) -> None:
        """``endpoint`` answered that it has no raft leader: use the next member from now on."""
        if len(self.endpoints) < 2:
            return
        if self._current == endpoint:
            self._current = (endpoint + 1) % len(self.endpoints)
        keep = []
        for conn in self._idle:
            if conn.endpoint == endpoint:
                conn.close()
            else:
                keep.append(conn)
        self._idle = keep

    # ---- calls -------------------------------------------------------------------------

    async def call(self, path: str, body: dict[str, Any], *, retry: bool = False) -> dict[str, Any]:
        """POST ``body`` to ``path``; the decoded answer. ``retry``: the request may be sent again
        once if its connection broke (harmless to repeat)."""
        data = await self._call_bytes(path, body, retry)
        try:
            doc = json.loads(data)
        except ValueError as err:
            raise EtcdHTTPError(2, f"etcd answered invalid JSON: {data[:80]!r}") from err
        if not isinstance(doc, dict):
            raise EtcdHTTPError(2, "etcd answered invalid JSON")
        return doc

    async def call_stream_first(
        self, path: str, body: dict[str, Any], *, retry: bool = False
    ) -> dict[str, Any]:
        """For a streamed call whose stream ends once the request is read (lease keepalive):
        the first ``result`` (``{}`` if none)."""
        doc_lines = await self.call_lines(path, body, retry=retry)
        for line in doc_lines:
            if "error" in line:
                raise _error(500, json.dumps(line).encode())
            result = line.get("result")
            if isinstance(result, dict):
                return result
        return {}

    async def call_lines(
        self, path: str, body: dict[str, Any], *, retry: bool = False
    ) -> list[dict[str, Any]]:
        """A complete streamed answer (it ends by itself), one object per line."""
        doc = await self._call_bytes(path, body, retry)
        out = []
        for line in doc.split(b"\n"):
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError as err:
                    raise EtcdHTTPError(2, f"etcd answered invalid JSON: {line[:80]!r}") from err
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    async def _call_bytes(self, path: str, body: dict[str, Any], retry: bool) -> bytes:
        """Send one request; the body of its 200 answer (EtcdHTTPError otherwise)."""
        if self._closed:
            raise EtcdHTTPError(UNAVAILABLE, "etcd store is closed")
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._max_conns)
        payload = json.dumps(body, separators=(",", ":")).encode()
        kind = request_kind(path, body)
        loop = asyncio.get_running_loop()
        leaderless_until: float | None = None  # refused for "no leader": retried until then
        resent = False  # a broken connection's request is re-sent at most once
        async with self._sem:
            while True:
                conn, reused = await self._acquire()
                metrics.ETCD_REQUESTS.inc(kind)
                metrics.ETCD_BYTES.inc(kind, "sent", amount=len(payload))
                try:
                    async with asyncio.timeout(self.timeout):
                        conn.writer.write(self._request(path, payload, conn.endpoint))
                        status, headers = await _read_head(conn.reader)
                        data, keep = await _read_body(conn.reader, headers)
                except _TRANSPORT_ERRORS + (TimeoutError,) as err:
                    conn.close()
                    if isinstance(err, ssl.SSLError | TimeoutError) or resent or not retry:
                        raise EtcdHTTPError(
                            UNAVAILABLE,
                            f"etcd at {self._hosts[conn.endpoint]}: {_transport_text(err, self._ssl is not None or reused)}",
                        ) from err
                    resent = True
                    continue
                except BaseException:
                    conn.close()
                    raise
                if keep:
                    self._release(conn)
                else:
                    conn.close()
                metrics.ETCD_BYTES.inc(kind, "received", amount=len(data))
                if status == 200:
                    return data
                refused = _error(status, data)
                if not _no_leader(refused):
                    raise refused
                # refused before any work, so safe to send again: to the next member at once, and
                # round the members for up to ready_grace (an election in progress, a member
                # starting) before the caller sees the error
                self._avoid(conn.endpoint)
                now = loop.time()
                if leaderless_until is None:
                    leaderless_until = now + self.ready_grace
                if now >= leaderless_until or self._closed:
                    raise refused
                if len(self.endpoints) < 2 or self._current == 0:  # every member tried this round
                    await asyncio.sleep(0.1)

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The ``result`` objects of a streamed answer, as they arrive, until the stream ends
        (normally: the server went away). An ``error`` object raises EtcdHTTPError."""
        if self._closed:
            raise EtcdHTTPError(UNAVAILABLE, "etcd store is closed")
        payload = json.dumps(body, separators=(",", ":")).encode()
        conn, _ = await self._acquire()
        kind = request_kind(path, body)
        metrics.ETCD_REQUESTS.inc(kind)
        metrics.ETCD_BYTES.inc(kind, "sent", amount=len(payload))
        self._streams.add(conn)
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    conn.writer.write(self._request(path, payload, conn.endpoint))
                    status, headers = await _read_head(conn.reader)
                    if status != 200:
                        data, _ = await _read_body(conn.reader, headers)
                        raise _error(status, data)
                _keepalive(conn.writer)
                buf = b""
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    source: AsyncIterator[bytes] = _chunks(conn.reader)
                else:
                    source = _until_eof(conn.reader)
                async for chunk in source:
                    buf += chunk
                    while True:
                        line, sep, rest = buf.partition(b"\n")
                        if not sep:
                            break
                        buf = rest
                        if line.strip():
                            metrics.ETCD_BYTES.inc(kind, "received", amount=len(line) + 1)
                            yield _result(line)
                if buf.strip():
                    yield _result(buf)
            except _TRANSPORT_ERRORS + (TimeoutError,) as err:
                raise EtcdHTTPError(
                    UNAVAILABLE,
                    f"etcd at {self._hosts[conn.endpoint]}: {_transport_text(err, self._ssl is not None)}",
                ) from err
            except EtcdHTTPError as err:
                if _no_leader(err):  # the member lost its leader (partitioned): watch elsewhere
                    self._avoid(conn.endpoint)
                raise
        finally:
            self._streams.discard(conn)
            conn.close()

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle + list(self._streams):
            conn.close()
        self._idle.clear()


def request_kind(path: str, body: dict[str, Any]) -> str:
    """What a request is, for counting: ``range`` (one key), ``range_prefix`` (a key range),
    ``txn_read`` (a txn without compares whose operations all read: ``get_many``), ``txn_check``
    (a txn that writes only when its compares fail: the service registry's periodic check of its
    key), ``txn``, or the path's operation (``put``, ``deleterange``, ``lease_grant``, ``watch``, ...)."""
    if path == "/v3/kv/range":
        return "range_prefix" if "range_end" in body else "range"
    if path == "/v3/kv/txn":
        ops = list(body.get("success", ())) + list(body.get("failure", ()))
        if not body.get("compare") and all("request_range" in op for op in ops):
            return "txn_read"
        if not body.get("success") and body.get("compare"):
            return "txn_check"
        return "txn"
    return _KINDS.get(path, path.rsplit("/", 1)[-1])


async def _until_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        data = await reader.read(65536)
        if not data:
            return
        yield data


def _no_leader(err: EtcdHTTPError) -> bool:
    """etcd's answer to a request with the leader requirement, on a member without a leader."""
    return "no leader" in err.message


def _result(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError as err:
        raise EtcdHTTPError(2, f"etcd answered invalid JSON: {line[:80]!r}") from err
    if not isinstance(obj, dict):
        raise EtcdHTTPError(2, "etcd answered invalid JSON")
    if "error" in obj:
        raise _error(500, line)
    result = obj.get("result")
    return result if isinstance(result, dict) else {}


__all__ = ["EtcdHTTP", "EtcdHTTPError", "UNAVAILABLE"]
