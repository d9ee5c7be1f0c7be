"""Asyncio OpenFlow 1.3 controller endpoint (server mode, as ofnet: OVS connects to us).

:class:`OfController` listens on ``host:port`` (ofnet: 127.0.0.1:6633 vxlan / :6634 vlan) or
on a pre-bound socket (tests bind one inside a network namespace) and keeps at most one
live :class:`OfSwitch`.  Per connection: HELLO (version 1.3 only), FEATURES (dpid),
a reader task and a periodic echo task inside one ``TaskGroup``; an echo unanswered for
``echo_timeout`` seconds, EOF or a protocol error closes the connection and fails every
pending request with :class:`SwitchDisconnected`.

Requests are correlated by xid futures.  :meth:`OfSwitch.batch` sends a list of encoded
messages followed by a BARRIER; OVS processes messages in order, so every ``OFPT_ERROR``
for the batch arrives before the barrier reply and is returned to the caller with the
xid it refers to.  Multipart replies (flow stats, group desc) are collected until the
last part.  Packet-ins go to the ``on_packet_in`` callback (run as a task of the
connection's group; its exceptions are logged, never kill the connection).
``on_connect`` callbacks run after FEATURES, before any packet-in is dispatched; the
flow cache uses this to read back and converge (never wipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from contivpy.common.errors import ExternalServiceError

from . import codec
from .codec import encode_msg, parse_message

__all__ = ["OfController", "OfSwitch", "SwitchDisconnected", "OpenFlowError"]

log = logging.getLogger(__name__)

_HDR = struct.Struct("!BBHI")


def _consume(fut: asyncio.Future) -> None:
    """Mark a request's reply future as seen. When the connection ends while the request is still
    in ``drain()``, ``close()`` fails the future and the caller gets the drain's error instead:
    without this asyncio logs "Future exception was never retrieved" for each such request
    (thousands of lines when a busy agent's switch connections were dropped, bench_mesh)."""
    if fut.done() and not fut.cancelled():
        fut.exception()


class SwitchDisconnected(ExternalServiceError):
    pass


class OpenFlowError(ExternalServiceError):
    """The switch rejected one or more messages; ``errors`` = [(xid, type, code, text)]."""

    def __init__(self, message: str, errors: list[tuple[int, int, int, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


error_text = codec.error_text


class OfSwitch:
    """One live OpenFlow 1.3 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, controller: OfController):
        self._r = reader
        self._w = writer
        self._ctl = controller
        self._xids = itertools.count(0x100)
        self._pending: dict[int, asyncio.Future] = {}
        self._multipart: dict[int, list] = {}
        self._errors: dict[int, tuple[int, int, int, str]] = {}
        self._tracked: set[int] = set()
        self.dpid: int = 0
        self.n_tables: int = 0
        self.closed = False
        self._last_rx = 0.0
        self.stats = {"tx_msgs": 0, "rx_msgs": 0, "errors": 0, "packet_in": 0, "echo_tx": 0}

    # ---- sending ---------------------------------------------------------------------------
    def next_xid(self) -> int:
        return next(self._xids) & 0xFFFFFFFF

    def send_raw(self, data: bytes) -> None:
        if self.closed:
            raise SwitchDisconnected("OpenFlow switch is not connected")
        self._w.write(data)
        self.stats["tx_msgs"] += 1

    def send(self, msg) -> int:
        xid = self.next_xid()
        self.send_raw(encode_msg(msg, xid))
        return xid

    async def request(self, msg, timeout: float = 10.0):
        """Send ``msg`` and await the reply with the same xid (single-part replies)."""
        xid = self.next_xid()
        fut = asyncio.get_running_loop().create_future()
        self._pending[xid] = fut
        try:
            self.send_raw(encode_msg(msg, xid))
            await self._w.drain()
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(xid, None)
            _consume(fut)

    async def multipart(self, msg, timeout: float = 30.0) -> list:
        """Send a multipart request; return the concatenated bodies of all reply parts."""
        xid = self.next_xid()
        fut = asyncio.get_running_loop().create_future()
        self._pending[xid] = fut
        self._multipart[xid] = []
        try:
            self.send_raw(encode_msg(msg, xid))
            await self._w.drain()
            await asyncio.wait_for(fut, timeout)
            return self._multipart[xid]
        finally:
            self._pending.pop(xid, None)
            self._multipart.pop(xid, None)
            _consume(fut)

    async def batch(self, messages: list[tuple[int, bytes]], timeout: float = 60.0) -> list[tuple]:
        """Send pre-encoded (xid, bytes) messages, then a barrier; return errors for these xids."""
        xids = {x for x, _ in messages}
        self._tracked |= xids
        try:
            for _, data in messages:
                self.send_raw(data)
                if self._w.transport.get_write_buffer_size() > 1 << 20:
                    await self._w.drain()
            await self.request(codec.barrier_request(), timeout)
            return [self._errors.pop(x) for x in xids if x in self._errors]
        finally:
            self._tracked -= xids
            for x in xids:
                self._errors.pop(x, None)

    async def packet_out(self, in_port: int, actions, data: bytes) -> None:
        self.send(codec.packet_out(in_port, actions, data))
        await self._w.drain()

    async def flow_stats(self, cookie: int = 0, cookie_mask: int = 0) -> list:
        return await self.multipart(codec.flow_stats_request(cookie, cookie_mask))

    async def group_desc(self) -> list:
        return await self.multipart(codec.group_desc_request())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._w.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SwitchDisconnected("OpenFlow switch disconnected"))

    # ---- receiving ---------------------------------------------------------------------------
    async def _read(self):
        hdr = await self._r.readexactly(8)
        _, _, length, _ = _HDR.unpack(hdr)
        body = await self._r.readexactly(length - 8) if length > 8 else b""
        self._last_rx = asyncio.get_running_loop().time()
        self.stats["rx_msgs"] += 1
        return hdr + body

    async def handshake(self) -> None:
        self.send(codec.hello())
        await self._w.drain()
        raw = await asyncio.wait_for(self._read(), 10)
        if raw[0] < codec.OFP_VERSION or raw[1] != codec.T_HELLO:
            # OVS sends its own HELLO first; a version < 1.3 cannot work with this pipeline
            raise ExternalServiceError(f"switch does not speak OpenFlow 1.3 (hello version {raw[0]})")

    async def run(self, ready: Callable[[], Awaitable[None]]) -> None:
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(self._reader_loop(tg))
            feat = await self.request(codec.features_request())
            self.dpid, self.n_tables = feat.datapath_id, feat.n_tables
            tg.create_task(self._echo_loop())
            await ready()
            await reader

    async def _reader_loop(self, tg: asyncio.TaskGroup) -> None:
        try:
            while True:
                raw = await self._read()
                try:
                    msg = parse_message(raw)
                except codec.CodecError as e:  # one malformed message never ends the connection
                    log.warning("%s: dropped malformed OpenFlow message: %s", self._ctl.name, e)
                    continue
                self._dispatch(msg, raw, tg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.close()
            raise _ConnectionDone()

    def _dispatch(self, msg, raw: bytes, tg: asyncio.TaskGroup) -> None:
        xid = msg.xid
        if isinstance(msg, codec.EchoRequest):
            self._echo_reply(msg)
        elif isinstance(msg, codec.ErrorMsg):
            self.stats["errors"] += 1
            err = (xid, msg.type, msg.code, error_text(msg.type, msg.code))
            fut = self._pending.get(xid)
            if xid in self._tracked:
                self._errors[xid] = err
            elif fut is not None and not fut.done():
                fut.set_exception(OpenFlowError(f"switch error {err[3]}", [err]))
            else:
                log.warning("unsolicited OpenFlow error xid=%#x: %s", xid, err[3])
        elif isinstance(msg, codec.PacketIn):
            self.stats["packet_in"] += 1
            if self._ctl.on_packet_in is not None:
                tg.create_task(self._safe_packet_in(msg))
        elif isinstance(msg, codec.MultipartReply):
            if xid in self._multipart:
                self._multipart[xid].extend(msg.body)
            if not msg.flags & codec.OFPMPF_REPLY_MORE:
                self._resolve(xid, msg)
        else:
            self._resolve(xid, msg)

    def _echo_reply(self, msg) -> None:
        self.send_raw(codec.echo_reply(msg.data).encode(msg.xid))

    def _resolve(self, xid: int, msg) -> None:
        fut = self._pending.get(xid)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def _safe_packet_in(self, msg) -> None:
        try:
            await self._ctl.on_packet_in(self, msg)
        except Exception:  # a bad packet must never kill the connection
            log.exception("packet-in handler failed")

    async def _echo_loop(self) -> None:
        interval, timeout = self._ctl.echo_interval, self._ctl.echo_timeout
        while not self.closed:
            await asyncio.sleep(interval)
            try:
                self.stats["echo_tx"] += 1
                await self.request(codec.echo_request(b"contivpy"), timeout)
            except (TimeoutError, SwitchDisconnected):
                log.warning("OpenFlow echo timed out; closing connection to dpid %#x", self.dpid)
                self.close()
                return


class _ConnectionDone(Exception):
    pass


class OfController:
    """Listener for one bridge; exposes the current switch and connection events."""

    def __init__(
        self,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 6633,
        sock: socket.socket | None = None,
        echo_interval: float = 5.0,
        echo_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.host, self.port, self._sock = host, port, sock
        self.echo_interval, self.echo_timeout = echo_interval, echo_timeout
        self.on_connect: list[Callable[[OfSwitch], Awaitable[None]]] = []
        self.on_disconnect: list[Callable[[OfSwitch], None]] = []
        self.on_packet_in: Callable[[OfSwitch, object], Awaitable[None]] | None = None
        self.switch: OfSwitch | None = None
        self.connects = 0
        self._server: asyncio.base_events.Server | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        if self._sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock)
        else:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.switch is not None:
            self.switch.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    async def wait_connected(self, timeout: float | None = None) -> OfSwitch:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise ExternalServiceError(f"OVS switch {self.name} Failed to connect") from None
        assert self.switch is not None
        return self.switch

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.switch is not None and not self.switch.closed

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sw = OfSwitch(reader, writer, self)
        try:
            await sw.handshake()
        except Exception as exc:
            log.warning("%s: OpenFlow handshake failed: %s", self.name, exc)
            sw.close()
            return
        if self.switch is not None and not self.switch.closed:
            log.info("%s: new switch connection replaces the old one", self.name)
            self.switch.close()

        async def ready() -> None:
            self.switch = sw
            self.connects += 1
            for cb in self.on_connect:
                await cb(sw)
            self._connected.set()

        try:
            await sw.run(ready)
        except* _ConnectionDone:
            pass
        except* Exception as eg:
            log.warning("%s: switch connection ended: %r", self.name, eg.exceptions)
        finally:
            sw.close()
            if self.switch is sw:
                self._connected.clear()
                for cb in self.on_disconnect:
                    cb(sw)
