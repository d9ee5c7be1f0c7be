"""The one error mapping of the netmaster HTTP server (an aiohttp middleware).

- ``ContivError`` -> HTTP 500, ``text/plain; charset=utf-8``, body = message + "\\n" (the
  original's ``http.Error``; no Go stack trace, no Python traceback).
- Unknown route / missing trailing slash -> 404 ``404 page not found\\n`` (gorilla mux).
- Route known but method not served -> 405 ``405 method not allowed\\n``.
- Oversized body -> 500 with a clear message; anything else is a bug: logged with its
  traceback server-side, answered 500 ``internal server error\\n``. No request kills the daemon.
"""

from __future__ import annotations

import logging

from aiohttp import web

from contivpy.common.errors import ContivError
from contivpy.model.objects import MAX_BODY

log = logging.getLogger("netmaster.api")

_HDRS = {"X-Content-Type-Options": "nosniff"}


def text_error(message: str, status: int = 500) -> web.Response:
    return web.Response(
        status=status, text=message + "\n", content_type="text/plain", charset="utf-8", headers=_HDRS
    )


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ContivError as exc:
        return text_error(str(exc))
    except web.HTTPNotFound:
        return text_error("404 page not found", 404)
    except web.HTTPMethodNotAllowed:
        return text_error("405 method not allowed", 405)
    except web.HTTPRequestEntityTooLarge:
        return text_error(f"request body too large (limit {MAX_BODY} bytes)")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return text_error("internal server error")


__all__ = ["error_middleware", "text_error"]
