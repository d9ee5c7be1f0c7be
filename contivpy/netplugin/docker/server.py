"""The plugin's HTTP server on a unix socket (``--plugin-socket``, default
``/run/docker/plugins/netplugin.sock``), which dockerd discovers by name.

- The socket file is removed and recreated at start. Its directory is created with mode 0700 when
  it does not exist; an existing directory keeps its mode and owner (``/run/docker/plugins`` is
  Docker's, other plugins live there too).
- Served by the guarded server (common/httpserve.py): header/body/idle timeouts, malformed HTTP
  -> plain ``400 Bad Request``.
- Every ``POST /<Interface>.<Method>`` goes to ``handlers.run_handler`` with the WHOLE body (at
  most 1 MiB), decoded whatever the Content-Type (Docker sends
  ``application/vnd.docker.plugins.v1.2+json``) by ``wire.parse_body`` (Go wording).
- Exactly one error path: a ``ContivError`` (including an over-size body, malformed JSON, a field
  of the wrong type) -> HTTP 500 ``{"Err": "<message>"}`` (libnetwork's plugin client reads
  ``Err`` from non-200 replies), logged without a traceback; any other exception is a bug, logged
  with its traceback and answered the same way with a generic message. Unknown methods -> 404
  ``404 page not found``. The server keeps serving after any error.
- Every call is timed: ``contiv_netplugin_plugin_requests_total{call,code}`` and
  ``contiv_netplugin_plugin_request_duration_seconds{call}`` (common/metrics.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from contivpy.common import metrics
from contivpy.common.errors import ContivError
from contivpy.common.httpserve import MAX_BODY, GuardedRunner, read_body, remove_socket, serve_unix

from .handlers import PluginHandlers, run_handler

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_SOCKET = "/run/docker/plugins/netplugin.sock"
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"


def _json(status: int, body: dict) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=CONTENT_TYPE)


def _not_found() -> web.Response:
    return web.Response(status=404, text="404 page not found\n")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one error mapping of the socket: router refusals in gorilla mux's words, a ContivError
    (bad body, unknown network, netmaster or OVS failure) as ``{"Err": msg}`` without a traceback,
    anything else (a bug) logged with its traceback and answered with a generic Err."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _not_found()
    except web.HTTPMethodNotAllowed:
        return web.Response(status=405, text="405 method not allowed\n")
    except ContivError as e:
        log.info("%s failed: %s", request.path, e)
        return _json(500, {"Err": str(e)})
    except Exception:
        log.exception("%s: internal error", request.path)
        return _json(500, {"Err": f"{request.path}: internal error in netplugin (see its log)"})


def make_app(handlers: PluginHandlers) -> web.Application:
    async def _dispatch(request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["method"]
        if path not in handlers.routes:
            return _not_found()
        raw = await read_body(request, MAX_BODY)
        status, body = await run_handler(handlers, path, raw)
        if status == 404:
            return _not_found()
        log.debug("%s %s -> %s", path, raw[:512], body)
        return _json(status, body)

    app = web.Application(client_max_size=MAX_BODY, middlewares=[_errors])
    app.router.add_post("/{method}", metrics.observed_plugin_calls(_dispatch))
    return app


class PluginServer:
    def __init__(self, handlers: PluginHandlers, socket_path: str = DEFAULT_SOCKET) -> None:
        self.handlers = handlers
        self.socket_path = socket_path
        self._runner: GuardedRunner | None = None

    async def start(self) -> None:
        self._runner = await serve_unix(make_app(self.handlers), self.socket_path)
        log.info("docker plugin listening on %s", self.socket_path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        remove_socket(self.socket_path)
