"""Kubernetes API adapter: configuration, list, watch, and a list+watch loop (the informer).

This is the only module that talks to a Kubernetes API server. It uses aiohttp (already a
dependency) rather than an official client: contivpy needs four read-only calls (list, watch) on
five resources, and ``kubernetes_asyncio`` would add a large generated package and its
dependencies for them (docs/decisions.md "Kubernetes API client"). Objects are handled as the
API's JSON (plain dicts), exactly as the server sends them.

Configuration (``load_config``), as the original: ``contiv.json`` (default
``/var/contiv/config/contiv.json``) with ``K8S_API_SERVER``, ``K8S_CA``, ``K8S_KEY``, ``K8S_CERT``,
``K8S_TOKEN`` (a token string, or the path of a file holding it); when the file is absent or has no
``K8S_API_SERVER``, the in-cluster service account (``KUBERNETES_SERVICE_HOST``/``_PORT``, the
token and CA under ``/var/run/secrets/kubernetes.io/serviceaccount``). ``None`` when neither exists.

The informer (``Informer.run``), per resource:
1. LIST (``?limit=500`` pages followed with ``continue``) -> ``handler.replace(kind, items)``: the
   full current set, so a consumer can drop what disappeared while it was not watching.
2. WATCH from the list's ``resourceVersion`` (``allowWatchBookmarks=true``, server timeout
   ``WATCH_TIMEOUT``) -> ``handler.event(kind, type, obj)`` for ADDED / MODIFIED / DELETED; every
   event and BOOKMARK advances the remembered resourceVersion.
3. When the stream ends or breaks (timeout, disconnect, server restart), WATCH again from the last
   resourceVersion (resume: nothing is missed and nothing is replayed).
4. ``410 Gone`` (as an HTTP status or as an ERROR event carrying a Status with code 410, which is
   how the API server reports an expired resourceVersion) -> back to 1 (relist).
Invariants: a handler exception is logged and the object skipped (one bad object never stops the
watch); network errors back off (``RETRY_MIN`` .. ``RETRY_MAX``) and retry forever; ``run`` ends
only when cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

log = logging.getLogger("contivpy.k8sapi")

DEFAULT_CONFIG = "/var/contiv/config/contiv.json"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
WATCH_TIMEOUT = 300  # seconds the server keeps one watch open before ending it
RETRY_MIN, RETRY_MAX = 0.2, 10.0

# kind -> collection path (cluster-wide lists/watches)
Obj = dict[str, Any]  # a Kubernetes object as the API sends it (JSON)

RESOURCES: dict[str, str] = {
    "Namespace": "/api/v1/namespaces",
    "Pod": "/api/v1/pods",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/networkpolicies",
    "Service": "/api/v1/services",
    "Endpoints": "/api/v1/endpoints",
}


class K8sConfigError(Exception):
    """contiv.json or the service account cannot be used (message says which file and why)."""


class Gone(Exception):
    """410: the resourceVersion asked for is too old; the caller must list again."""


class ApiError(Exception):
    """Any other non-success answer of the API server."""


@dataclass
class K8sConfig:
    server: str
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    token: str = ""
    source: str = ""


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def load_config(
    path: str = DEFAULT_CONFIG, env: dict[str, str] | None = None, sa_dir: str = SA_DIR
) -> K8sConfig | None:
    env = dict(os.environ) if env is None else env
    if path and os.path.exists(path):
        try:
            data = json.loads(_read(path) or "{}")
        except (OSError, ValueError) as exc:
            raise K8sConfigError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise K8sConfigError(f"{path}: a JSON object expected")
        server = str(data.get("K8S_API_SERVER") or "")
        if server and not server.startswith(("http://", "https://")):
            raise K8sConfigError(f"{path}: K8S_API_SERVER must be an http(s):// URL")
        if server:
            token = str(data.get("K8S_TOKEN") or "")
            if token and os.path.isfile(token):
                try:
                    token = _read(token)
                except OSError as exc:
                    raise K8sConfigError(f"cannot read K8S_TOKEN file {token}: {exc}") from None
            cfg = K8sConfig(
                server=server.rstrip("/"),
                ca_file=str(data.get("K8S_CA") or ""),
                cert_file=str(data.get("K8S_CERT") or ""),
                key_file=str(data.get("K8S_KEY") or ""),
                token=token,
                source=path,
            )
            if bool(cfg.cert_file) != bool(cfg.key_file):
                raise K8sConfigError(f"{path}: K8S_CERT and K8S_KEY must be given together")
            for f in (cfg.ca_file, cfg.cert_file, cfg.key_file):
                if f and not os.access(f, os.R_OK):
                    raise K8sConfigError(f"{path}: cannot read {f}")
            return cfg
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    token_file = os.path.join(sa_dir, "token")
    if host and port and os.path.exists(token_file):
        try:
            token = _read(token_file)
        except OSError as exc:
            raise K8sConfigError(f"cannot read {token_file}: {exc}") from None
        h = f"[{host}]" if ":" in host else host
        ca = os.path.join(sa_dir, "ca.crt")
        return K8sConfig(
            server=f"https://{h}:{port}",
            ca_file=ca if os.path.exists(ca) else "",
            token=token,
            source="service account",
        )
    return None


class Handler(Protocol):
    async def replace(self, kind: str, items: list[Obj]) -> None: ...

    async def event(self, kind: str, typ: str, obj: Obj) -> None: ...


class KubeClient:
    """List and watch over one aiohttp session (TLS and auth from ``K8sConfig``)."""

    def __init__(self, cfg: K8sConfig, watch_timeout: int = WATCH_TIMEOUT) -> None:
        self.cfg = cfg
        self.watch_timeout = watch_timeout
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.cfg.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context(cafile=self.cfg.ca_file or None)
        if self.cfg.cert_file:
            ctx.load_cert_chain(self.cfg.cert_file, self.cfg.key_file)
        return ctx

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "contivpy"}
            if self.cfg.token:
                headers["Authorization"] = f"Bearer {self.cfg.token}"
            conn = aiohttp.TCPConnector(ssl=self._ssl())
            self._session = aiohttp.ClientSession(headers=headers, connector=conn)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    async def _error(resp: aiohttp.ClientResponse) -> Exception:
        text = (await resp.text())[:300]
        if resp.status == 410:
            return Gone(text)
        return ApiError(f"{resp.method} {resp.url.path}: HTTP {resp.status}: {text}")

    async def get(self, path: str, timeout: float = 10.0) -> Obj | None:
        """One object, None when the API answers 404; ``ApiError`` for anything else, including a
        server that cannot be reached within ``timeout`` seconds."""
        try:
            async with self._sess().get(
                self.cfg.server + path, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    raise await self._error(resp)
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ApiError(f"GET {path}: {exc or type(exc).__name__}") from None
        if not isinstance(body, dict):
            raise ApiError(f"GET {path}: not an object")
        return body

    async def pod_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """A pod's ``metadata.labels``; None when the pod does not exist."""
        pod = await self.get(f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}")
        if pod is None:
            return None
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    async def list(self, path: str) -> tuple[list[Obj], str]:
        """Every item of the collection (all pages) and the list's resourceVersion."""
        items: list[Obj] = []
        cont = ""
        while True:
            params = {"limit": "500"}
            if cont:
                params["continue"] = cont
            timeout = aiohttp.ClientTimeout(total=60)
            async with self._sess().get(self.cfg.server + path, params=params, timeout=timeout) as resp:
                if resp.status != 200:
                    raise await self._error(resp)
                body = await resp.json(content_type=None)
            if not isinstance(body, dict):
                raise ApiError(f"GET {path}: not a list object")
            items += [i for i in body.get("items") or [] if isinstance(i, dict)]
            meta = body.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(self, path: str, rv: str) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) pairs from one watch stream; raises ``Gone`` on 410 in either form."""
        params = {
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.watch_timeout + 30)
        async with self._sess().get(self.cfg.server + path, params=params, timeout=timeout) as resp:
            if resp.status != 200:
                raise await self._error(resp)
            async for raw in resp.content:
                line = raw.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    log.warning("kubernetes: %s: undecodable watch line skipped", path)
                    continue
                if not isinstance(ev, dict) or not isinstance(ev.get("object"), dict):
                    log.warning("kubernetes: %s: malformed watch event skipped", path)
                    continue
                typ, obj = str(ev.get("type") or ""), ev["object"]
                if typ == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(str(obj.get("message") or "resourceVersion expired"))
                    raise ApiError(f"watch {path}: {obj.get('message') or obj}")
                yield typ, obj


def resource_version(obj: Obj) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""


class Informer:
    """List+watch of one resource kind into ``handler`` (see the module docstring)."""

    def __init__(self, client: KubeClient, kind: str, handler: Handler, path: str | None = None) -> None:
        self.client = client
        self.kind = kind
        self.path = path or RESOURCES[kind]
        self.handler = handler
        self.rv = ""
        self.lists = 0  # how many LISTs were done (1 + relists); for status and tests
        self.synced = asyncio.Event()

    async def _deliver(self, typ: str, obj: Obj) -> None:
        try:
            await self.handler.event(self.kind, typ, obj)
        except Exception as exc:  # one bad object never stops the watch
            raw = obj.get("metadata")
            meta: Obj = raw if isinstance(raw, dict) else {}
            log.warning(
                "kubernetes: %s %s/%s skipped: %s",
                self.kind,
                meta.get("namespace", ""),
                meta.get("name", ""),
                exc,
                exc_info=not isinstance(exc, ValueError | KeyError | TypeError),
            )

    async def _list(self) -> None:
        items, rv = await self.client.list(self.path)
        self.lists += 1
        try:
            await self.handler.replace(self.kind, items)
        except Exception as exc:
            log.warning("kubernetes: %s list not applied: %s", self.kind, exc, exc_info=True)
        self.rv = rv
        self.synced.set()
        log.info("kubernetes: listed %d %s (resourceVersion %s)", len(items), self.kind, rv)

    async def run(self) -> None:
        delay = RETRY_MIN
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                async for typ, obj in self.client.watch(self.path, self.rv):
                    delay = RETRY_MIN
                    rv = resource_version(obj)
                    if typ != "BOOKMARK":
                        await self._deliver(typ, obj)
                    if rv:
                        self.rv = rv
                log.debug("kubernetes: %s watch ended; resuming at %s", self.kind, self.rv)
                continue
            except Gone:
                log.info("kubernetes: %s resourceVersion %s expired (410); listing again", self.kind, self.rv)
                need_list = True
                continue
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ApiError, ValueError) as exc:
                log.warning(
                    "kubernetes: %s %s failed: %s; retrying in %.1fs",
                    self.kind,
                    "list" if need_list else "watch",
                    exc or type(exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)


__all__ = [
    "ApiError",
    "DEFAULT_CONFIG",
    "Gone",
    "Handler",
    "Informer",
    "K8sConfig",
    "K8sConfigError",
    "KubeClient",
    "RESOURCES",
    "load_config",
    "resource_version",
]
