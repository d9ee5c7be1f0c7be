"""The one guarded HTTP server of contivpy: every HTTP listener runs on ``GuardedRunner``.

Used by netmaster's REST API (listen and control URLs, http or https), netplugin's debug REST
and netplugin's Docker plugin socket. (netmaster's ofnet RPC on 9001 is raw JSON-RPC over TCP,
not HTTP; it bounds its partial messages itself with ``timeouts().body``.)

What a client can do to a listener, and what it gets (docs/failure-modes.md, "Slow or malformed
clients"):

- Slow request head: the request line and headers must arrive within ``HEADER_TIMEOUT`` (10 s) of
  the connection opening, or of the first byte of a later request on a kept-alive connection;
  otherwise the connection is closed without an answer (as Go's ReadHeaderTimeout). With TLS the
  handshake gets the same limit, then the head gets its own.
- Slow body: a declared body must arrive within ``BODY_TIMEOUT`` (30 s) of the end of its head;
  otherwise the connection is closed, the handler's read fails with ``ClientGone`` (not logged
  as an error).
- Idle keep-alive: closed after ``IDLE_TIMEOUT`` (75 s) without a new request.
- Malformed HTTP (request line, header, framing): ``400 Bad Request`` as plain text, the
  connection closed, one log line without the raw bytes and without a traceback.
- Bodies: ``read_body`` reads the WHOLE body however it was split over TCP segments or chunks,
  and refuses more than ``limit`` bytes (``BodyTooLarge``) before buffering them.

``ClientError`` (a ``ValidationError``, so a ``ContivError``) is the root of the client-side
failures raised here: each server maps ContivErrors to its own response format in one place,
and never logs them with a traceback.

Timeouts are constants; ``CONTIVPY_HTTP_TIMEOUTS="header,body,idle"`` (seconds) overrides them
so tests run fast. Design note: aiohttp has no header or body deadline of its own, so the runner
installs a ``RequestHandler`` subclass (per connection) that arms one timer at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from contivpy.common.errors import ValidationError

log = logging.getLogger("contivpy.http")

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
IDLE_TIMEOUT = 75.0
TIMEOUTS_ENV = "CONTIVPY_HTTP_TIMEOUTS"
MAX_BODY = 1 << 20  # default request body limit (the REST objects' limit is the same)


@dataclass(frozen=True)
class Timeouts:
    header: float = HEADER_TIMEOUT
    body: float = BODY_TIMEOUT
    idle: float = IDLE_TIMEOUT


def timeouts() -> Timeouts:
    """The constants, or ``$CONTIVPY_HTTP_TIMEOUTS`` (``header,body,idle``) when set and valid."""
    raw = os.environ.get(TIMEOUTS_ENV, "")
    if raw:
        try:
            vals = [float(x) for x in raw.split(",")]
            if len(vals) == 3 and all(0 < v < 1e6 for v in vals):
                return Timeouts(*vals)
        except ValueError:
            pass
        log.warning("ignoring %s=%r (want header,body,idle seconds)", TIMEOUTS_ENV, raw)
    return Timeouts()


# ---- the exception tree of client-side failures ----------------------------------------------------


class ClientError(ValidationError):
    """The client's fault: answered with the message, never logged with a traceback."""


class BodyTooLarge(ClientError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body too large (limit {limit} bytes)")


class ClientGone(ClientError):
    """The connection was closed (by the client, or by the body deadline) before the body arrived."""

    def __init__(self) -> None:
        super().__init__("request body not received: connection closed")


_BODY: web.RequestKey[bytes] = web.RequestKey("contiv_body", bytes)


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The whole request body (cached on the request), at most ``limit`` bytes."""
    cached: bytes | None = request.get(_BODY)
    if cached is not None:
        return cached
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    try:
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
    except (ConnectionError, HttpProcessingError, asyncio.IncompleteReadError):
        raise ClientGone() from None
    body = b"".join(chunks)
    request[_BODY] = body
    return body


# ---- the guarded connection -----------------------------------------------------------------------


class _GuardedHandler(RequestHandler):
    """aiohttp's connection protocol with a head deadline, a body deadline and quiet 4xx."""

    def __init__(self, *args: Any, limits: Timeouts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = ""
        self._payload: StreamReader | None = None  # body stream of the last request head parsed

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self._timer_kind = kind
        self._timer = self._loop.call_later(seconds, self._expire, kind, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_kind = None, ""

    def _expire(self, kind: str, seconds: float) -> None:
        self._timer, self._timer_kind = None, ""
        peer = self.peername or "a local client"
        log.info("closing the connection of %s: request %s not received within %g s", peer, kind, seconds)
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm("headers", self._limits.header)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        in_body = self._payload is not None and not self._payload.is_eof()
        if data and not in_body and self._timer is None:  # the first bytes of a new request head
            self._arm("headers", self._limits.header)
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a request head was parsed (or refused)
            self._disarm()
            self._payload = self._messages[-1][1] if self._messages else None
        if self._payload is not None and not self._payload.is_eof():
            if self._timer_kind != "body":
                self._arm("body", self._limits.body)
        elif self._timer_kind == "body":
            self._disarm()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if 400 <= status < 500:  # malformed HTTP: the client's fault, no raw bytes, no traceback
            log.info(
                "refused a malformed HTTP request from %s (%s)", self.peername or "a local client", status
            )
            text = f"{status} {HTTPStatus(status).phrase}"
        elif isinstance(exc, ClientError):  # escaped an application without its own mapping
            log.info("request from %s refused: %s", self.peername or "a local client", exc)
            text = str(exc)
        else:  # a bug below the application's own error mapping
            log.error("internal error serving %s", self.peername or "a local client", exc_info=exc)
            text = "internal server error"
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        resp = web.Response(status=status, text=text + "\n", content_type="text/plain", charset="utf-8")
        resp.force_close()
        return resp


class _GuardedServer(Server):
    _limits = Timeouts()

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, limits=self._limits, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are guarded as the module docstring says."""

    def __init__(self, app: web.Application, limits: Timeouts | None = None, **kwargs: Any) -> None:
        self._limits = limits or timeouts()
        kwargs.setdefault("access_log", None)
        kwargs.setdefault("handle_signals", False)
        super().__init__(app, keepalive_timeout=self._limits.idle, **kwargs)

    @property
    def limits(self) -> Timeouts:
        return self._limits

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer  # same state, our connection protocol
        assert isinstance(server, _GuardedServer)
        server._limits = self._limits
        return server


class _TCPSite(web.TCPSite):
    """``web.TCPSite`` whose TLS handshake is bounded by the header timeout (the head timer starts
    only once the handshake is done; asyncio's own handshake limit is 60 s)."""

    def __init__(self, *args: Any, handshake_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        if self._ssl_context is None:
            return await super().start()
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


async def serve_tcp(
    app: web.Application, addrs: list[tuple[str, int]], ssl_context: ssl.SSLContext | None = None
) -> GuardedRunner:
    """Serve ``app`` on every ``(host, port)``; ``runner.cleanup()`` stops it."""
    runner = GuardedRunner(app)
    await runner.setup()
    try:
        for host, port in addrs:
            site = _TCPSite(
                runner,
                host,
                port,
                reuse_address=True,
                ssl_context=ssl_context,
                handshake_timeout=runner.limits.header,
            )
            await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def serve_unix(app: web.Application, path: str, mode: int | None = None) -> GuardedRunner:
    """Serve ``app`` on the unix socket ``path``: its directory is created private (0700) when
    missing and left as it is when it exists; a stale socket file is replaced; ``mode`` (e.g.
    0o600) is applied to the socket. ``runner.cleanup()`` stops serving; ``remove_socket`` deletes it."""
    sock = Path(path)
    if not sock.parent.is_dir():
        sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    runner = GuardedRunner(app)
    await runner.setup()
    try:
        await web.UnixSite(runner, path).start()
        if mode is not None:
            os.chmod(path, mode)
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()


def split_hostport(addr: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` / ``[v6]:PORT`` / ``:PORT`` -> (host, port); ValueError when malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"invalid address {addr!r}: HOST:PORT expected")
    host = host.strip("[]") or default_host
    return host, int(port)


__all__ = [
    "BODY_TIMEOUT",
    "BodyTooLarge",
    "ClientError",
    "ClientGone",
    "GuardedRunner",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_BODY",
    "Timeouts",
    "read_body",
    "serve_tcp",
    "serve_unix",
    "remove_socket",
    "split_hostport",
    "timeouts",
]
