"""Follower -> leader reverse proxy (the original's runFollower catch-all route).

A middleware placed before the error middleware: while this process is not the leader, every
request (any path, any method) is forwarded to ``http://<leader lock holder>`` and the leader's
status, headers and body are relayed unchanged, except ``/healthz``, ``/readyz`` and ``/metrics``
(``common/health.py``), which describe the process asked. A request that already went through one proxy
(``X-Contiv-Proxied``) is never forwarded again, which avoids loops while the lock changes hands.
With TLS (``--tls-*``) the leader is reached over https and its certificate is pinned to the SHA-256
fingerprint it published under ``/contiv.io/auth/tls/<leader ip:port>`` (netmaster/tls.py); headers,
including ``x-auth-token``, are relayed as they came (the leader checks the token again).
"""

from __future__ import annotations

import logging

from aiohttp import web

from contivpy.common.health import LOCAL_PATHS
from contivpy.common.httpserve import read_body
from contivpy.model import keys
from contivpy.netmaster.api.errors import text_error
from contivpy.netmaster.api.keys import CONFIG, KV, STATE

log = logging.getLogger("netmaster.proxy")


class _Session:
    """The proxy's client session, opened on first use: the leader never needs aiohttp's client,
    and importing it costs start-up time (common/fastweb.py)."""

    def __init__(self) -> None:
        self.session = None

    def get(self):
        if self.session is None:
            from aiohttp import ClientSession, ClientTimeout

            self.session = ClientSession(timeout=ClientTimeout(total=60), auto_decompress=False)
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


SESSION: web.AppKey[_Session] = web.AppKey("proxy_session", _Session)
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
_MARK = "X-Contiv-Proxied"


async def session_ctx(app: web.Application):
    app[SESSION] = _Session()
    yield
    await app[SESSION].close()


@web.middleware
async def proxy_middleware(request: web.Request, handler) -> web.StreamResponse:
    state = request.app[STATE]
    if state.is_leader or request.path in LOCAL_PATHS:  # probes and metrics describe this process
        return await handler(request)
    leader = state.leader_url
    if request.headers.get(_MARK) or not leader or leader == getattr(request.app[CONFIG], "control_url", ""):
        # no leader, or we hold the lock and our leader start is not done yet (proxying to
        # ourselves would only come back here, marked)
        return text_error("netmaster leader is not available, please retry")
    from aiohttp import ClientError, Fingerprint

    ssl = None
    if getattr(request.app[CONFIG], "tls_cert_file", ""):  # the leader serves https: pin its certificate
        pin = await request.app[KV].get(keys.AUTH_TLS_PIN + state.leader_url)
        if pin is None:
            return text_error(f"netmaster leader {state.leader_url} has not published its TLS certificate")
        ssl = Fingerprint(bytes.fromhex(pin.value))
    url = f"{'https' if ssl else 'http'}://{state.leader_url}{request.path_qs}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    headers[_MARK] = "1"
    body = await read_body(request)
    try:
        async with (
            request.app[SESSION]
            .get()
            .request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False, ssl=ssl
            ) as resp
        ):
            data = await resp.read()
            out = web.Response(status=resp.status, body=data)
            for k, v in resp.headers.items():
                if k.lower() not in _HOP and k.lower() not in ("date", "server"):
                    out.headers[k] = v
            return out
    except (ClientError, OSError, TimeoutError) as exc:
        log.warning("proxy to leader %s failed: %s", state.leader_url, exc)
        return text_error(f"failed to reach netmaster leader {state.leader_url}: {exc}")


__all__ = ["proxy_middleware", "session_ctx", "SESSION"]
