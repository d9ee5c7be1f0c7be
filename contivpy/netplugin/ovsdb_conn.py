"""The OVSDB connection of the netplugin agent: RFC 7047 JSON-RPC on one asyncio stream.

The transport half of the OVSDB adapter (the operations are in ``ovsdb.py``, whose
``OvsdbClient`` extends :class:`OvsdbConnection`):

- One persistent connection (``unix:PATH`` or ``tcp:IP:PORT``), opened on first use and re-opened by
  the next call after it broke. Requests carry increasing ids and are matched to replies by id; the
  server's ``echo`` keep-alives are answered from the receive loop.
- A broken or closed connection fails every pending call with ``ExternalServiceError`` (never
  hangs); a call that gets no reply within ``timeout`` fails the same way.
- ``transact`` raises on the first failed operation of a transaction (OVSDB transactions are
  atomic: nothing of it was applied), with the operation's name and OVSDB's error text.

Invariants: at most one receive loop per connection; ``_pending`` holds exactly the calls awaiting a
reply on the current connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

from contivpy.common.errors import ExternalServiceError

DB = "Open_vSwitch"
_decoder = json.JSONDecoder()


class OvsdbConnection:
    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._rx_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- transport -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """An OVSDB session is open (the receive loop clears it when the connection drops)."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return
            try:
                if self.address.startswith("unix:"):
                    r, w = await asyncio.wait_for(
                        asyncio.open_unix_connection(self.address[5:]), self.timeout
                    )
                elif self.address.startswith("tcp:"):
                    host, port = self.address[4:].rsplit(":", 1)
                    r, w = await asyncio.wait_for(asyncio.open_connection(host, int(port)), self.timeout)
                else:
                    raise ExternalServiceError(f"unsupported OVSDB address {self.address!r}")
            except (OSError, TimeoutError) as e:
                raise ExternalServiceError(f"cannot connect to OVSDB at {self.address}: {e}") from e
            self._reader, self._writer = r, w
            self._rx_task = asyncio.get_running_loop().create_task(self._rx_loop(r, w))

    async def close(self) -> None:
        w, t = self._writer, self._rx_task
        self._writer = self._reader = None
        if w is not None:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        if t is not None:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        self._fail_pending("OVSDB connection closed")

    def _fail_pending(self, msg: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ExternalServiceError(msg))
        self._pending.clear()

    async def _rx_loop(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        buf = ""
        try:
            while True:
                chunk = await r.read(65536)
                if not chunk:
                    break
                buf += chunk.decode()
                while buf:
                    buf = buf.lstrip()
                    if not buf:
                        break
                    try:
                        msg, end = _decoder.raw_decode(buf)
                    except json.JSONDecodeError:
                        break  # incomplete message
                    buf = buf[end:]
                    self._dispatch(msg, w)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writer is w:
                self._writer = self._reader = None
            self._fail_pending(f"OVSDB connection to {self.address} lost")

    def _dispatch(self, msg: dict, w: asyncio.StreamWriter) -> None:
        if msg.get("method") == "echo":
            w.write(
                json.dumps({"id": msg.get("id"), "result": msg.get("params", []), "error": None}).encode()
            )
            return
        fut = self._pending.pop(msg.get("id"), None)
        if fut is not None and not fut.done():
            if msg.get("error") is not None:
                fut.set_exception(ExternalServiceError(f"OVSDB error: {msg['error']}"))
            else:
                fut.set_result(msg.get("result"))

    async def call(self, method: str, params: list) -> Any:
        await self.connect()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        assert self._writer is not None
        self._writer.write(json.dumps({"method": method, "params": params, "id": rid}).encode())
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError as e:
            self._pending.pop(rid, None)
            raise ExternalServiceError(f"OVSDB {method} timed out") from e

    async def transact(self, *ops: dict) -> list:
        result = await self.call("transact", [DB, *ops])
        for i, r in enumerate(result or []):
            if isinstance(r, dict) and r.get("error"):
                op = ops[i]["op"] if i < len(ops) else "commit"
                raise ExternalServiceError(f"OVSDB {op} failed: {r.get('error')}: {r.get('details', '')}")
        return result

    async def select(self, table: str, where: list, columns: list[str] | None = None) -> list[dict]:
        op: dict = {"op": "select", "table": table, "where": where}
        if columns:
            op["columns"] = columns
        return (await self.transact(op))[0]["rows"]
