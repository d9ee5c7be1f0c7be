"""The plugin's HTTP server on a unix socket (``--plugin-socket``, default
``/run/docker/plugins/netplugin.sock``), which dockerd discovers by name.

- The socket file is removed and recreated at start; its directory is created with mode 0700.
- Every ``POST /<Interface>.<Method>`` goes to ``handlers.run_handler``. Bodies are decoded
  whatever the Content-Type (Docker sends ``application/vnd.docker.plugins.v1.2+json``).
- Exactly one error path: a ``ContivError`` -> HTTP 500 ``{"Err": "<message>"}`` (libnetwork's
  plugin client reads ``Err`` from non-200 replies); any other exception is logged with its
  traceback and answered the same way with a generic message. Unknown methods -> 404
  ``404 page not found``. The server keeps serving after any error.
- Every call is timed: ``contiv_netplugin_plugin_requests_total{call,code}`` and
  ``contiv_netplugin_plugin_request_duration_seconds{call}`` (common/metrics.py).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from aiohttp import web

from contivpy.common import metrics
from contivpy.common.errors import ContivError

from .handlers import PluginHandlers, run_handler

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/docker/plugins/netplugin.sock"
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"


def _json(status: int, body: dict) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=CONTENT_TYPE)


def make_app(handlers: PluginHandlers) -> web.Application:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        elapsed = metrics.timer()
        resp = await _dispatch(request)
        # contiv_netplugin_plugin_*: unknown methods share one label (bounded label set)
        call = request.match_info["method"] if resp.status != 404 else "unknown"
        metrics.observe_plugin(call, resp.status, elapsed())
        return resp

    async def _dispatch(request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["method"]
        raw = await request.read()
        try:
            status, body = await run_handler(handlers, path, raw)
        except ContivError as e:
            log.info("%s failed: %s", path, e)
            return _json(500, {"Err": str(e)})
        except Exception:
            log.exception("%s: internal error", path)
            return _json(500, {"Err": f"{path}: internal error in netplugin (see its log)"})
        if status == 404:
            return web.Response(status=404, text="404 page not found\n")
        log.debug("%s %s -> %s", path, raw[:512], body)
        return _json(status, body)

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/{method}", dispatch)
    return app


class PluginServer:
    def __init__(self, handlers: PluginHandlers, socket_path: str = DEFAULT_SOCKET) -> None:
        self.handlers = handlers
        self.socket_path = socket_path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        sock = Path(self.socket_path)
        sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(sock.parent, 0o700)
        try:
            sock.unlink()
        except FileNotFoundError:
            pass
        self._runner = web.AppRunner(make_app(self.handlers), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(sock)).start()
        log.info("docker plugin listening on %s", sock)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            Path(self.socket_path).unlink()
        except FileNotFoundError:
            pass
