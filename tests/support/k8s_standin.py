"""A STAND-IN Kubernetes API server for tests (no real API server can run on the test machines).

It speaks the list/watch protocol of the real one for the collections netmaster watches, with
real-shaped JSON: ``<Kind>List`` objects with ``metadata.resourceVersion``, objects with
``metadata.{name,namespace,uid,resourceVersion,labels}``, and watch streams of newline-separated
``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}``. A watch from a
resourceVersion older than the kept history gets what the API server sends then: one ERROR event
whose object is a ``Status`` with ``code: 410, reason: Expired`` (``gone_as_http=True``: an HTTP
410 answer instead). Not implemented: field/label selectors on lists, pagination tokens, auth,
server-side validation (objects are stored as given).

Optional TLS (server certificate, client certificates) and a required bearer token, answered
with 401 as the API server does. It runs an aiohttp server on 127.0.0.1 in its own thread, so a test drives it from plain
synchronous code: ``apply(kind, obj)`` (create or replace: bumps the resourceVersion and sends
ADDED/MODIFIED), ``delete(kind, ns, name)``, ``drop_watches()`` (breaks every open stream:
a disconnect), ``expire()`` (forgets the history: the next watch from an old version gets 410),
``bookmark()``. ``requests`` records every (path, query) served, for asserting resume vs relist.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from typing import Any

from aiohttp import web

PATHS = {
    "/api/v1/namespaces": ("Namespace", "v1"),
    "/api/v1/pods": ("Pod", "v1"),
    "/apis/networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", "networking.k8s.io/v1"),
    "/api/v1/services": ("Service", "v1"),
    "/api/v1/endpoints": ("Endpoints", "v1"),
}
KIND_PATH = {kind: path for path, (kind, _) in PATHS.items()}


class K8sStandIn:
    def __init__(
        self, gone_as_http: bool = False, tls: dict[str, Any] | None = None, token: str = ""
    ) -> None:
        """``tls``: {"cert", "key"} (https) and optionally "client_ca" (client certificates required);
        ``token``: a bearer token every request must carry (else 401, as the API server answers)."""
        self.gone_as_http = gone_as_http
        self.tls = tls
        self.token = token
        self.rv = 100
        self.objs: dict[str, dict[tuple[str, str], dict]] = {k: {} for k, _ in PATHS.values()}
        self.history: list[tuple[int, str, str, dict]] = []  # (rv, kind, type, obj)
        self.min_rv = self.rv  # watches from below this get 410
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._watchers: set[tuple[str, asyncio.Queue]] = set()
        self._requests_open: dict[int, web.Request] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="k8s-standin", daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> K8sStandIn:
        self.thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        for path in PATHS:
            app.router.add_get(path, self._handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        ctx = None
        if self.tls:
            import ssl

            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(self.tls["cert"]), str(self.tls["key"]))
            if self.tls.get("client_ca"):
                ctx.load_verify_locations(str(self.tls["client_ca"]))
                ctx.verify_mode = ssl.CERT_REQUIRED
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.runner is not None:
            self._call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _stop(self) -> None:
        await self._drop()
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @web.middleware
    async def _auth(self, req: web.Request, handler) -> web.StreamResponse:
        if self.token and req.headers.get("Authorization") != f"Bearer {self.token}":
            self.requests.append((req.path, {"unauthorized": "1"}))
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}  # fmt: skip
            return web.json_response(body, status=401)
        return await handler(req)

    def _call(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    # --- test controls ----------------------------------------------------------------------------
    def apply(self, kind: str, obj: dict) -> dict:
        return self._call(self._apply(kind, copy.deepcopy(obj)))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._call(self._delete(kind, namespace, name))

    def drop_watches(self) -> None:
        self._call(self._drop())

    def expire(self) -> None:
        """Forget every event so far: a watch from any version seen until now gets 410."""

        async def go() -> None:
            self.history.clear()
            self.min_rv = self.rv + 1

        self._call(go())

    def bookmark(self) -> None:
        async def go() -> None:
            for kind, q in list(self._watchers):
                api = PATHS[KIND_PATH[kind]][1]
                q.put_nowait(
                    {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api,
                                                    "metadata": {"resourceVersion": str(self.rv)}}}
                )  # fmt: skip

        self._call(go())

    def watch_count(self) -> int:
        return len(self._watchers)

    # --- state changes ----------------------------------------------------------------------------
    async def _apply(self, kind: str, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        old = self.objs[kind].get(key)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", PATHS[KIND_PATH[kind]][1])
        self.objs[kind][key] = obj
        self._emit(kind, "MODIFIED" if old else "ADDED", obj)
        return copy.deepcopy(obj)

    async def _delete(self, kind: str, namespace: str, name: str) -> None:
        obj = self.objs[kind].pop((namespace, name))
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(kind, "DELETED", obj)

    def _emit(self, kind: str, typ: str, obj: dict) -> None:
        self.history.append((self.rv, kind, typ, obj))
        for wkind, q in list(self._watchers):
            if wkind == kind:
                q.put_nowait({"type": typ, "object": obj})

    async def _drop(self) -> None:
        for req in list(self._requests_open.values()):  # abrupt: the client sees the connection break
            if req.transport is not None:
                req.transport.close()
        for _, q in list(self._watchers):
            q.put_nowait(None)
        await asyncio.sleep(0.05)

    # --- HTTP -------------------------------------------------------------------------------------
    async def _handle(self, req: web.Request) -> web.StreamResponse:
        kind, api = PATHS[req.path]
        q = dict(req.query)
        self.requests.append((req.path, q))
        if q.get("watch") in ("1", "true"):
            return await self._watch(req, kind, q)
        items = [copy.deepcopy(o) for _, o in sorted(self.objs[kind].items())]
        body = {"kind": f"{kind}List", "apiVersion": api, "metadata": {"resourceVersion": str(self.rv)},
                "items": items}  # fmt: skip
        return web.json_response(body)

    def _gone(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "too old resource version",
            "reason": "Expired" if not self.gone_as_http else "Gone",
            "code": 410,
        }

    async def _watch(self, req: web.Request, kind: str, q: dict[str, str]) -> web.StreamResponse:
        try:
            since = int(q.get("resourceVersion") or self.rv)
        except ValueError:
            since = 0
        if since < self.min_rv and self.gone_as_http:
            return web.json_response(self._gone(), status=410)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)
        if since < self.min_rv:
            await resp.write((json.dumps({"type": "ERROR", "object": self._gone()}) + "\n").encode())
            return resp
        queue: asyncio.Queue = asyncio.Queue()
        for rv, k, typ, obj in self.history:
            if k == kind and rv > since:
                queue.put_nowait({"type": typ, "object": obj})
        entry = (kind, queue)
        self._watchers.add(entry)
        self._requests_open[id(req)] = req
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(queue.get(), 0.2)
                except TimeoutError:  # notice a client that went away without waiting for a write
                    if req.transport is None or req.transport.is_closing():
                        break
                    continue
                if ev is None:
                    break
                await resp.write((json.dumps(ev) + "\n").encode())
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self._watchers.discard(entry)
            self._requests_open.pop(id(req), None)
        return resp


# --- real-shaped object builders ----------------------------------------------------------------


def namespace(name: str, labels: dict[str, str] | None = None) -> dict:
    lab = {"kubernetes.io/metadata.name": name, **(labels or {})}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": lab},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}  # fmt: skip


def pod(ns: str, name: str, ip: str | None, labels: dict[str, str] | None = None, ready: bool = True) -> dict:
    status: dict[str, Any] = {"phase": "Running" if ip else "Pending", "hostIP": "192.0.2.10"}
    status["conditions"] = [
        {
            "type": "Ready",
            "status": "True" if ip and ready else "False",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels or {})},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": status,
    }


def network_policy(ns: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "generation": 1}, "spec": spec}  # fmt: skip


def service(ns: str, name: str, cluster_ip: str, selector: dict[str, str], ports: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "selector": selector, "ports": ports}}  # fmt: skip


def endpoints(ns: str, name: str, ips: list[str], ports: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}] if ips else []}  # fmt: skip
