"""Minimal ofnet master: JSON-RPC 1.0 over TCP (Go net/rpc/jsonrpc framing) on <control-ip>:9001.

Wire format: a stream of JSON objects. Request ``{"method": "OfnetMaster.X", "params": [arg],
"id": N}``; response ``{"id": N, "result": ..., "error": null}`` (``error`` is a string on failure,
``result`` null). Methods (contiv/ofnet ofnetMaster.go):

- ``OfnetMaster.RegisterNode(OfnetNode{HostAddr, HostPort}) -> true``   agent announces itself
- ``OfnetMaster.UnRegisterNode(OfnetNode) -> true``
- ``OfnetMaster.EndpointAdd(OfnetEndpoint{EndpointID, ...}) -> true``  endpoint DB (relay is done
  through etcd /contiv.io/oper/eps in contivpy, see architecture.md, so nothing is pushed back)
- ``OfnetMaster.EndpointDel(OfnetEndpoint) -> true``
- ``OfnetMaster.MakeDummyRpcCall() / DummyRpc -> true``                liveness

``dump()`` gives the /debug/ofnet view. One task per connection; a malformed message answers an
error and closes that connection only. State is in memory (as in the original).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from contivpy.common.httpserve import timeouts
from contivpy.common.jsonwire import syntax_error

log = logging.getLogger("netmaster.rpc")

MAX_MSG = 1 << 20


class _Refused(Exception):
    """Input that ends the connection (after one error answer)."""


class OfnetMaster:
    def __init__(self, addr: str, port: int) -> None:
        self.addr = addr
        self.port = port
        self.agents: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.policies: dict[str, dict] = {}
        self.stats: dict[str, dict[str, int]] = {}
        self._server: asyncio.base_events.Server | None = None

    # --- methods ---------------------------------------------------------------------------
    def _node(self, arg) -> tuple[str, dict]:
        if not isinstance(arg, dict) or not isinstance(arg.get("HostAddr"), str):
            raise ValueError("invalid OfnetNode")
        port = arg.get("HostPort") or 0
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError("invalid OfnetNode")
        node = {"HostAddr": arg["HostAddr"], "HostPort": port}
        return f"{node['HostAddr']}:{node['HostPort']}", node

    def _count(self, host: str, stat: str) -> None:
        self.stats.setdefault(host, {})
        self.stats[host][stat] = self.stats[host].get(stat, 0) + 1

    def call(self, method: str, params: list):
        arg = params[0] if params else None
        name = method.split(".", 1)[-1]
        if name == "RegisterNode":
            key, node = self._node(arg)
            self.agents[key] = node
            self._count(key, "RegisterNode")
            return True
        if name == "UnRegisterNode":
            key, _ = self._node(arg)
            self.agents.pop(key, None)
            return True
        if name in ("EndpointAdd", "EndpointDel"):
            if not isinstance(arg, dict) or not isinstance(arg.get("EndpointID"), str):
                raise ValueError("invalid OfnetEndpoint")
            if name == "EndpointAdd":
                self.endpoints[arg["EndpointID"]] = arg
            else:
                self.endpoints.pop(arg["EndpointID"], None)
            return True
        if name in ("MakeDummyRpcCall", "DummyRpc"):
            return True
        raise LookupError(f"rpc: can't find method {method}")

    def dump(self) -> dict:
        return {
            "MyAddr": self.addr,
            "MyPort": self.port,
            "AgentDb": dict(self.agents),
            "EndpointDb": dict(self.endpoints),
            "PolicyDb": dict(self.policies),
            "AgentStats": self.stats or None,
        }

    # --- server ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.addr, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("ofnet master RPC listening on %s:%d", self.addr, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: messages are answered in order. Bounded like the HTTP listeners
        (common/httpserve.py): a started message must be complete within the body timeout, an idle
        connection is closed after the idle timeout, and so is one whose answers the client does not read
        within the body timeout (each call's answer has that deadline); malformed or over-size input answers one error
        and closes this connection only (never a traceback, never Python wording)."""
        limits = timeouts()
        dec = json.JSONDecoder()
        buf = ""
        pending = b""  # an incomplete UTF-8 sequence at the end of the last chunk
        try:
            while True:
                wait = limits.body if buf.strip() else limits.idle
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), wait)
                except TimeoutError:
                    log.info("rpc connection closed: no complete message within %g s", wait)
                    return
                if not chunk:
                    return
                data = pending + chunk
                try:
                    text, pending = data.decode("utf-8"), b""
                except UnicodeDecodeError as exc:
                    if exc.reason != "unexpected end of data":  # not just a sequence cut by the chunk
                        raise _Refused("invalid UTF-8 in message") from None
                    text, pending = data[: exc.start].decode("utf-8"), data[exc.start :]
                buf += text
                if len(buf) > MAX_MSG:
                    raise _Refused("message too large")
                while buf.strip():
                    buf = buf.lstrip()
                    try:
                        msg, end = dec.raw_decode(buf)
                    except json.JSONDecodeError as exc:
                        if exc.pos >= len(buf.rstrip()) or exc.msg.startswith("Unterminated"):
                            break  # incomplete: wait for more bytes
                        raise _Refused(syntax_error(exc, buf)) from None
                    except RecursionError:
                        raise _Refused("exceeded max depth") from None
                    buf = buf[end:]
                    writer.write(self._answer(msg).encode() + b"\n")
                try:  # a client that sends but never reads its answers is cut, not waited for
                    await asyncio.wait_for(writer.drain(), limits.body)
                except TimeoutError:
                    log.info("rpc connection closed: answers not read within %g s", limits.body)
                    writer.transport.abort()
                    return
        except _Refused as exc:
            log.info("rpc connection refused: %s", exc)
            with contextlib.suppress(ConnectionError):
                writer.write(json.dumps({"id": None, "result": None, "error": str(exc)}).encode() + b"\n")
                await writer.drain()
        except ConnectionError as exc:
            log.info("rpc connection dropped: %s", exc)
        finally:
            writer.close()

    def _answer(self, msg) -> str:
        mid = msg.get("id") if isinstance(msg, dict) else None
        try:
            if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
                raise ValueError("invalid request")
            params = msg.get("params") or []
            if not isinstance(params, list):
                raise ValueError("invalid params")
            result, error = self.call(msg["method"], params), None
        except (ValueError, LookupError, TypeError) as exc:
            result, error = None, str(exc)
        return json.dumps({"id": mid, "result": result, "error": error})


__all__ = ["OfnetMaster"]
