"""HTTP server of the CNI plugin protocol on a unix socket (``--cni-socket``; docs/cni.md).

``POST /ContivCNI.AddPod``, ``/ContivCNI.DelPod`` (the original's paths and request keys
``K8S_POD_NAME``, ``K8S_POD_NAMESPACE``, ``K8S_POD_INFRA_CONTAINER_ID``, ``CNI_NETNS``, ``CNI_IFNAME``,
plus ``CNI_CONTAINERID`` and ``Labels``) and ``/ContivCNI.CheckPod`` (contivpy, CNI CHECK; also
``Addresses``). Replies: ``{"result": 0, "endpointid", "ipaddress": "ip/len", ...}`` (HTTP 200) or
``{"result": 1, "errmsg", "errinfo", "code"}`` (HTTP 500) where ``code`` is the CNI error code the plugin
reports. Exactly one error path: a ``CniError`` keeps its code; other ``ContivError``s become code
100, or 11 (try again later) when the state store or netmaster could not be reached; anything else is
logged with its traceback and answered with a generic message. The server never dies from a request.

The socket file is removed and recreated at start (a stale one from a crashed agent), its directory
made with mode 0700, and removed at stop.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from contivpy.common import metrics
from contivpy.common.errors import ContivError, ExternalServiceError, StoreError
from contivpy.common.httpserve import GuardedRunner, read_body, remove_socket, serve_unix

from .pods import NETPLUGIN_FAILED, TRY_AGAIN_LATER, CniError, PodRequest, PodService

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/contiv/contiv-cni.sock"


def _error(code: int, msg: str, details: str = "", status: int = 500) -> web.Response:
    body = {"result": 1, "errmsg": msg, "errinfo": details, "code": code}
    return web.json_response(body, status=status)


def make_app(pods: PodService) -> web.Application:
    methods = {
        "ContivCNI.AddPod": (pods.add, True),
        "ContivCNI.DelPod": (pods.delete, False),
        "ContivCNI.CheckPod": (pods.check, False),
    }

    async def _dispatch(request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"]
        if name not in methods:
            return _error(NETPLUGIN_FAILED, f"unknown method {name}", status=404)
        fn, need_netns = methods[name]
        try:
            raw = await read_body(request)
            try:
                body = json.loads(raw) if raw.strip() else {}
            except (UnicodeDecodeError, ValueError):
                raise CniError(6, "invalid request body: not JSON") from None
            return web.json_response(await fn(PodRequest.parse(body, need_netns)))
        except CniError as e:
            log.info("%s failed: %s", name, e)
            return _error(e.code, str(e), e.details)
        except (StoreError, ExternalServiceError) as e:
            transient = isinstance(e, StoreError) or "cannot reach" in str(e)
            log.warning("%s failed: %s", name, e)
            return _error(TRY_AGAIN_LATER if transient else NETPLUGIN_FAILED, str(e))
        except ContivError as e:
            log.info("%s failed: %s", name, e)
            return _error(NETPLUGIN_FAILED, str(e))
        except Exception:
            log.exception("%s: internal error", name)
            return _error(NETPLUGIN_FAILED, f"{name}: internal error in netplugin (see its log)")

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/{method}", metrics.observed_plugin_calls(_dispatch))
    return app


class CniServer:
    def __init__(self, pods: PodService, socket_path: str = DEFAULT_SOCKET) -> None:
        self.pods = pods
        self.socket_path = socket_path
        self._runner: GuardedRunner | None = None

    async def start(self) -> None:
        # the guarded server of every listener (common/httpserve.py): timeouts, whole bodies
        self._runner = await serve_unix(make_app(self.pods), self.socket_path, mode=0o600)
        log.info("CNI server listening on %s", self.socket_path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        remove_socket(self.socket_path)
