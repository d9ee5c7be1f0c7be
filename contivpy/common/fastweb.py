"""Import aiohttp's server side without its client side: a daemon's time to its first answer.

``import aiohttp`` runs the package's ``__init__``, which imports the whole HTTP client
(``client``, ``connector``, ``cookiejar``, ``tracing``, ...); ``aiohttp.connector`` builds two
SSL contexts at import time, loading the system CA bundle twice. A daemon that only serves HTTP
at start-up pays for all of that (about a third of netmaster's CPU until its first answer).

``install()`` (call it before anything imports aiohttp) registers ``aiohttp`` as the real package
(same spec, same ``__path__``) whose ``__init__`` has NOT run yet: ``from aiohttp import web``
and any other submodule import work as usual and load only what they import themselves. The first
access to any other name of the package (``aiohttp.ClientSession``, ``from aiohttp import
ClientError``) runs the real ``__init__`` in that module (module ``__getattr__``, PEP 562), so
client code works unchanged and simply pays for the client on first use, e.g. the first request a
follower proxies to the leader.

``install()`` also defers the standard library's MIME database: ``aiohttp.web_fileresponse`` builds a
``mimetypes.MimeTypes()`` at import, whose constructor first runs ``mimetypes.init()``, reading
``/etc/mime.types`` and friends (about 3.5 ms of CPU) into the *module's* database, which that
instance does not use (an instance starts from the built-in tables). ``install()`` marks the module
initialised (``mimetypes.inited``) when it is not yet; the module's functions (``guess_type``, ...)
check their database, not the flag, so they still read the system files on their first call.

Invariants: after ``install()`` the ``aiohttp`` module is the real one or becomes it on first use;
nothing of aiohttp is replaced or patched. If the package layout is not the expected one (no
``__version__`` line), ``install()`` does nothing and aiohttp is imported normally. Every
``mimetypes`` answer is the same as without ``install()``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType


def _version(source: str) -> str:
    """The ``__version__ = "x"`` assignment of a package's ``__init__`` ("" if there is none; a line
    scan rather than a regular expression: compiling one cost more than the scan, at every start)."""
    for line in source.splitlines():
        if line.startswith("__version__"):
            value = line.partition("=")[2].strip()
            if len(value) > 2 and value[0] == value[-1] == '"':
                return value[1:-1]
    return ""


def install() -> bool:
    """Register the lazy ``aiohttp`` package; False if aiohttp was already imported (or cannot be)."""
    if "aiohttp" in sys.modules:
        return False
    spec = importlib.util.find_spec("aiohttp")
    if spec is None or spec.origin is None or spec.loader is None or not spec.submodule_search_locations:
        return False
    try:
        with open(spec.origin, encoding="utf-8") as f:
            version = _version(f.read())
    except OSError:
        return False
    if not version:
        return False
    pkg = importlib.util.module_from_spec(spec)
    setattr(pkg, "__version__", version)  # noqa: B010  (aiohttp.http reads it at import)
    path = list(spec.submodule_search_locations)
    loader = spec.loader

    def complete() -> None:
        delattr(pkg, "__getattr__")  # noqa: B043
        loader.exec_module(pkg)  # the real __init__, in this module: the client and the rest

    def module_getattr(name: str) -> object:
        if name.startswith("__") or importlib.machinery.PathFinder.find_spec(f"aiohttp.{name}", path):
            raise AttributeError(name)  # dunder probes, or a submodule: the import system loads it
        complete()
        return getattr(pkg, name)

    setattr(pkg, "__getattr__", module_getattr)  # noqa: B010  (PEP 562 module __getattr__)
    sys.modules["aiohttp"] = pkg
    import mimetypes

    if not mimetypes.inited:  # MimeTypes() skips init(); guess_type() & co. still run it when first used
        mimetypes.inited = True
    return True


def is_complete(mod: ModuleType | None = None) -> bool:
    """Whether the aiohttp package's ``__init__`` has run (for tests)."""
    mod = mod or sys.modules.get("aiohttp")
    return mod is not None and "ClientSession" in vars(mod)


__all__ = ["install", "is_complete"]
