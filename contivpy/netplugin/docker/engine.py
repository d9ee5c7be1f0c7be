"""Minimal asyncio client of the local Docker Engine API (unix socket), for the plugin's needs.

Used for: resolving a Docker network id to its name and IPAM options, keeping this host's
netplugin networks in sync with etcd (sync.py), and learning container names (Engine events and
container inspect) for DNS. Unversioned paths: the engine answers with its own API version.

Every failure (socket missing, engine error reply) raises ``ExternalServiceError`` carrying the
engine's ``message``; ``status`` is kept on the exception for callers that care (404, 409).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

from contivpy.common.errors import ExternalServiceError


class EngineError(ExternalServiceError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def socket_path(docker_host: str) -> str:
    """``unix:///run/docker.sock`` or a plain path -> the socket path."""
    if docker_host.startswith("unix://"):
        return docker_host[len("unix://") :]
    if "://" in docker_host:
        raise EngineError(f"unsupported docker host {docker_host!r}: only unix sockets")
    return docker_host


class DockerEngine:
    def __init__(self, docker_host: str, timeout: float = 30.0) -> None:
        self.path = socket_path(docker_host)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path), timeout=self._timeout
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        try:
            async with self._sess().request(method, "http://docker" + path, json=body, params=params) as resp:
                raw = await resp.read()
                data: Any = None
                if raw:
                    try:
                        data = json.loads(raw)
                    except json.JSONDecodeError:
                        data = raw.decode(errors="replace")
                if resp.status >= 400:
                    msg = data.get("message") if isinstance(data, dict) else str(data)
                    raise EngineError(f"docker engine: {msg}", resp.status)
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise EngineError(f"docker engine at {self.path} unreachable: {e}") from None

    async def ping(self) -> bool:
        try:
            await self._call("GET", "/_ping")
            return True
        except EngineError:
            return False

    async def list_networks(self, driver: str | None = None) -> list[dict]:
        params = {"filters": json.dumps({"driver": [driver]})} if driver else None
        return await self._call("GET", "/networks", params=params) or []

    async def inspect_network(self, net_id: str) -> dict:
        return await self._call("GET", f"/networks/{quote(net_id, safe='')}")

    async def create_network(self, spec: dict) -> str:
        data = await self._call("POST", "/networks/create", body=spec)
        return data["Id"]

    async def delete_network(self, net_id: str) -> None:
        await self._call("DELETE", f"/networks/{quote(net_id, safe='')}")

    async def inspect_container(self, cid: str) -> dict:
        return await self._call("GET", f"/containers/{quote(cid, safe='')}/json")

    async def list_containers(self) -> list[dict]:
        return await self._call("GET", "/containers/json") or []

    async def events(self, filters: dict[str, list[str]]) -> AsyncIterator[dict]:
        """Engine events matching ``filters`` from now on; ends when the engine goes away."""
        params = {"filters": json.dumps(filters)}
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            ) as s:
                async with s.get("http://docker/events", params=params) as resp:
                    if resp.status >= 400:
                        raise EngineError(f"docker engine events: HTTP {resp.status}", resp.status)
                    async for line in resp.content:
                        line = line.strip()
                        if line:
                            try:
                                yield json.loads(line)
                            except json.JSONDecodeError:
                                continue
        except (aiohttp.ClientError, OSError) as e:
            raise EngineError(f"docker engine events at {self.path}: {e}") from None
