"""The one Docker Engine API client of contivpy, plus the Docker network naming and create payload.

Used by netmaster (docker cluster mode: ``netmaster/dockernet.py`` creates/deletes the Docker
network of every contiv network and group on its ``--docker-host``) and by netplugin (its Docker
plugin keeps the local engine's networks in sync, resolves network ids and learns container names).

- ``DockerClient(docker_host, api_version="")``: asyncio client over the engine's unix socket
  (aiohttp, imported lazily so importing this module stays cheap). ``api_version`` ``"1.23"``
  sends ``/v1.23/...`` (the original netmaster's client version); empty = unversioned paths, the
  engine answers with its own version. Every failure raises ``DockerApiError`` (an
  ``ExternalServiceError``) carrying the engine's ``message`` and the HTTP ``status`` (0 when the
  engine could not be reached: "Cannot connect to the Docker daemon at ... Is the docker daemon
  running?", the docker CLI's words). ``find_network`` and ``delete_network`` treat 404 as
  "absent" (None / False) instead of raising.
- ``docker_net_name``: the original's name (docs/original.md §5.5): the group name for an endpoint
  group, else the network name, ``/<tenant>`` appended unless the tenant is ``default``.
- ``network_create_body``: the ``POST /networks/create`` payload contiv sends for a network or
  group (driver = IPAM driver = plugin name, CheckDuplicate, Attachable, IPAM options
  tenant/network[/group], driver options tenant/encap/pkt-tag, v4 [+ v6] IPAM config).
- ``one_network(client, name, driver)``: the network named ``name`` after removing duplicates.
  Docker 20.10 checks ``CheckDuplicate`` before creating, without a lock: two concurrent creators
  of one name on one engine (netmaster in docker mode and the netplugin of the host whose engine
  is netmaster's ``--docker-host``, both creating every contiv network) can both succeed. Every
  creator calls this after creating (or on 409): among the same-named networks of ``driver`` the
  oldest (``Created``, then ``Id``) is kept, the others are deleted (one Docker still uses is left
  for a later pass). The rule is deterministic, so concurrent callers keep the same one.
- ``DockerClient.events(since, filters)``: the engine's event stream (``GET /events``) as an
  async iterator of dicts, on a session of its own with no overall timeout (the stream lasts as long
  as the engine). Docker writes one JSON object per line; ``split_events`` cuts the received bytes
  into events, and a line that is not a JSON object (or one over 1 MiB) is counted in
  ``malformed`` and skipped, never raised. The stream ends when the engine closes it (dockerd
  stops); a connection failure raises ``DockerApiError``. ``since_param(ns)`` writes Docker's
  ``<seconds>.<nanoseconds>`` form; Docker's ``since`` is inclusive (events at that very nanosecond
  are sent again), which the caller must handle (``netplugin/docker/events.py``).
- ``parse_docker_time`` reads Docker's RFC 3339 times (``Created``, ``/info`` ``SystemTime``);
  ``DockerClient.engine_time()`` is the engine's clock, against which netplugin's sync measures a
  network's age (``netplugin/docker/sync.py``: grace period before deleting an unconfirmed one).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from contivpy.common.errors import ExternalServiceError

if TYPE_CHECKING:  # imported where used: importing this module stays cheap
    import aiohttp

__all__ = [
    "DEFAULT_DOCKER_HOST",
    "DockerApiError",
    "DockerClient",
    "docker_net_name",
    "network_create_body",
    "one_network",
    "parse_docker_time",
    "since_param",
    "socket_path",
    "split_events",
]

log = logging.getLogger(__name__)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
#: longest event line kept; a longer one is skipped as malformed
MAX_EVENT = 1 << 20


class DockerApiError(ExternalServiceError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def socket_path(docker_host: str) -> str:
    """``unix:///run/docker.sock`` or a plain path -> the socket path."""
    if docker_host.startswith("unix://"):
        return docker_host[len("unix://") :]
    if "://" in docker_host:
        raise DockerApiError(f"unsupported docker host {docker_host!r}: only unix sockets")
    return docker_host


def docker_net_name(tenant: str, network: str, group: str = "") -> str:
    name = group or network
    return name if tenant == "default" else f"{name}/{tenant}"


def network_create_body(
    plugin: str,
    *,
    tenant: str,
    network: str,
    subnet: str,
    gateway: str = "",
    encap: str = "vxlan",
    pkt_tag: int | str = 0,
    group: str = "",
    subnet6: str = "",
    gateway6: str = "",
) -> dict[str, Any]:
    ipam_opts = {"network": network, "tenant": tenant}
    if group:
        ipam_opts = {"group": group, **ipam_opts}
    configs: list[dict[str, str]] = [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}]
    if subnet6:
        configs.append({"Subnet": subnet6, **({"Gateway": gateway6} if gateway6 else {})})
    return {
        "CheckDuplicate": True,
        "Driver": plugin,
        "EnableIPv6": bool(subnet6),
        "IPAM": {"Driver": plugin, "Options": ipam_opts, "Config": configs},
        "Internal": False,
        "Attachable": True,
        "Options": {"encap": encap, "pkt-tag": str(pkt_tag), "tenant": tenant},
        "Labels": None,
        "Name": docker_net_name(tenant, network, group),
    }


class DockerClient:
    def __init__(
        self, docker_host: str = DEFAULT_DOCKER_HOST, timeout: float = 30.0, api_version: str = ""
    ) -> None:
        self.host = docker_host if "://" in docker_host else f"unix://{docker_host}"
        self.path = socket_path(docker_host)
        self.prefix = f"/v{api_version}" if api_version else ""
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    def _unreachable(self, exc: BaseException | None = None) -> DockerApiError:
        if isinstance(exc, TimeoutError):
            return DockerApiError(f"Docker daemon at {self.host} timed out")
        return DockerApiError(
            f"Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?"
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        import aiohttp

        url = "http://docker" + self.prefix + path
        try:
            async with self._sess().request(method, url, json=body, params=params) as resp:
                raw = await resp.read()
                data: Any = None
                if raw.strip():
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        data = {"message": raw.decode(errors="replace").strip()}
                if resp.status >= 400:
                    msg = data.get("message") if isinstance(data, dict) else None
                    raise DockerApiError(msg or f"docker engine error (HTTP {resp.status})", resp.status)
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise self._unreachable(e) from None

    async def ping(self) -> bool:
        try:
            await self._call("GET", "/_ping")
            return True
        except DockerApiError:
            return False

    async def engine_time(self) -> datetime:
        """The engine's clock (``/info`` ``SystemTime``); this host's clock if the engine omits it."""
        info = await self._call("GET", "/info") or {}
        when = parse_docker_time(info.get("SystemTime") if isinstance(info, dict) else None)
        return when if when is not None else datetime.now(UTC)

    # ---- networks -----------------------------------------------------------------------------
    async def list_networks(self, driver: str | None = None) -> list[dict[str, Any]]:
        params = {"filters": json.dumps({"driver": [driver]})} if driver else None
        nets: list[dict[str, Any]] = await self._call("GET", "/networks", params=params) or []
        return nets

    async def inspect_network(self, name_or_id: str) -> dict[str, Any]:
        net: dict[str, Any] = await self._call("GET", "/networks/" + quote(name_or_id, safe=""))
        return net

    async def find_network(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            return await self.inspect_network(name_or_id)
        except DockerApiError as e:
            if e.status == 404:
                return None
            raise

    async def create_network(self, body: dict[str, Any]) -> str:
        data = await self._call("POST", "/networks/create", body=body)
        return str((data or {}).get("Id", ""))

    async def delete_network(self, name_or_id: str) -> bool:
        """True when deleted, False when it did not exist."""
        try:
            await self._call("DELETE", "/networks/" + quote(name_or_id, safe=""))
            return True
        except DockerApiError as e:
            if e.status == 404:
                return False
            raise

    # ---- containers ---------------------------------------------------------------------------
    async def inspect_container(self, cid: str) -> dict[str, Any]:
        cont: dict[str, Any] = await self._call("GET", f"/containers/{quote(cid, safe='')}/json")
        return cont

    async def list_containers(self) -> list[dict[str, Any]]:
        conts: list[dict[str, Any]] = await self._call("GET", "/containers/json") or []
        return conts

    # ---- events -------------------------------------------------------------------------------
    async def events(
        self,
        since: str = "",
        filters: dict[str, list[str]] | None = None,
        malformed: list[int] | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The engine's events from ``since`` on, until the engine closes the stream. Malformed
        lines are skipped; ``malformed[0]`` (when given) counts them. ``on_open()`` is called once
        the engine has accepted the request (before any event)."""
        import aiohttp

        params = {}
        if since:
            params["since"] = since
        if filters:
            params["filters"] = json.dumps(filters)
        sess = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.path),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout),
        )
        try:
            async with sess.get("http://docker" + self.prefix + "/events", params=params) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    try:
                        msg = json.loads(raw).get("message")
                    except (ValueError, AttributeError):
                        msg = raw.decode(errors="replace").strip()
                    raise DockerApiError(msg or f"docker engine error (HTTP {resp.status})", resp.status)
                if on_open is not None:
                    on_open()
                buf, skipping = b"", False
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    if skipping:  # the rest of an over-long line
                        cut = buf.find(b"\n")
                        if cut < 0:
                            buf = b""
                            continue
                        buf, skipping = buf[cut + 1 :], False
                    evs, buf, bad = split_events(buf)
                    if len(buf) > MAX_EVENT:
                        buf, skipping, bad = b"", True, bad + 1
                    if bad and malformed is not None:
                        malformed[0] += bad
                    if bad:
                        log.warning("docker events: %d malformed event(s) skipped", bad)
                    for ev in evs:
                        yield ev
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise self._unreachable(e) from None
        finally:
            await sess.close()


def split_events(buf: bytes) -> tuple[list[dict[str, Any]], bytes, int]:
    """Complete lines of ``buf`` -> (the JSON objects among them, the incomplete rest, how many
    complete lines were not a JSON object). Blank lines are ignored."""
    *lines, rest = buf.split(b"\n")
    out: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except (ValueError, RecursionError):
            bad += 1
            continue
        if isinstance(ev, dict):
            out.append(ev)
        else:
            bad += 1
    return out, rest, bad


def since_param(ns: int) -> str:
    """Nanoseconds since the epoch -> Docker's ``since`` (``<seconds>.<9-digit nanoseconds>``)."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")
_NEVER = datetime.max.replace(tzinfo=UTC)


def parse_docker_time(value: Any) -> datetime | None:
    """Docker's RFC 3339 time (up to 9 fraction digits, trailing zeros trimmed) -> aware datetime;
    None when absent or unreadable."""
    m = _TIME.match(str(value or ""))
    if not m:
        return None
    zone = m.group(3) or "Z"
    try:
        return datetime.fromisoformat(
            f"{m.group(1)}.{(m.group(2) or '')[:6].ljust(6, '0')}{'+00:00' if zone == 'Z' else zone}"
        )
    except ValueError:
        return None


def _age_key(net: dict[str, Any]) -> tuple[datetime, str]:
    """Sort key: ``Created`` (unreadable = newest), then ``Id``."""
    return parse_docker_time(net.get("Created")) or _NEVER, str(net.get("Id") or "")


async def one_network(client: DockerClient, name: str, driver: str) -> dict[str, Any] | None:
    """The network called ``name`` (None if there is none); duplicates of ``driver`` removed, the
    oldest kept. A same-named network of another driver is returned as is (the caller refuses it)."""
    nets = [n for n in await client.list_networks() if n.get("Name") == name]
    ours = sorted((n for n in nets if n.get("Driver") == driver), key=_age_key)
    if not ours:
        return nets[0] if nets else None
    for extra in ours[1:]:
        try:
            if await client.delete_network(extra["Id"]):
                log.info("duplicate docker network %s (%s) removed", name, extra["Id"][:12])
        except DockerApiError as e:  # still in use: a later pass removes it
            log.warning("duplicate docker network %s (%s) not removed: %s", name, extra["Id"][:12], e)
    return ours[0]
