"""netmaster aiohttp application factory.

Middlewares, outermost first: metrics (observe.py), the one error mapping (errors.py: every
ContivError, including the framing errors of ``common/httpserve``, whichever middleware or handler
raised it), auth (``contivpy.netmaster.auth``, only with ``--auth``: the module is not even imported
without it), follower proxy (everything goes to the leader while we are not it). Bodies are read with ``httpserve.read_body``
(whole body, 1 MiB limit).
Routes: model API (routes.py), non-model endpoints (misc.py) and, when present, the /plugin/*
routes of ``contivpy.netmaster.api.plugin_routes`` (``add_plugin_routes(app)``: their Allocator,
over ``crud.kv``, is made on first use by ``plugin_routes.allocator_of(crud)``).
"""

from __future__ import annotations

import importlib

from aiohttp import web

from contivpy.model.objects import MAX_BODY
from contivpy.netmaster.api import epcleanup, misc, observe, openapi, routes
from contivpy.netmaster.api.errors import error_middleware
from contivpy.netmaster.api.keys import CONFIG, CRUD, KV, STATE, LeaderState
from contivpy.netmaster.api.proxy import proxy_middleware, session_ctx


def make_app(crud, config, kv, state: LeaderState, rpc=None, auth_kv=None) -> web.Application:
    """``kv``: the store leader-only writers use (netmaster passes its FencedStore); ``auth_kv``: the
    store of the auth state (default ``kv``); netmaster passes the raw store, since every netmaster,
    follower or not, creates the token secret if absent and users are written by CAS on their record."""
    with_auth = bool(getattr(config, "auth", False))
    if with_auth:
        from contivpy.netmaster import auth
    mws = [observe.metrics_middleware, error_middleware]
    if with_auth:
        mws.append(auth.auth_middleware)
    mws.append(proxy_middleware)
    app = web.Application(middlewares=mws, client_max_size=MAX_BODY + 4096)
    app[CRUD], app[CONFIG], app[KV], app[STATE] = crud, config, kv, state
    if with_auth:  # before the model routes (login would match /api/v1/{p}/{k}/)
        auth.install(app, auth_kv or kv, config.auth_admin_password, config.auth_token_ttl)
    if rpc is not None:
        app[misc.RPC] = rpc
    app.cleanup_ctx.append(session_ctx)
    openapi.add_routes(app)  # before the model routes; the document is built on first request
    routes.add_routes(app)
    misc.add_routes(app)
    epcleanup.add_routes(app)
    observe.install(app)  # /healthz, /readyz, /metrics (observe.py)
    try:
        plugin = importlib.import_module("contivpy.netmaster.api.plugin_routes")
    except ModuleNotFoundError as exc:
        if exc.name != "contivpy.netmaster.api.plugin_routes":
            raise
        plugin = None
    if plugin is not None and hasattr(plugin, "add_routes"):
        plugin.add_routes(app)
    elif plugin is not None and hasattr(plugin, "add_plugin_routes"):
        plugin.add_plugin_routes(app)  # the Allocator: plugin_routes.allocator_of(crud), on first use
    return app


__all__ = ["make_app"]
