"""netmaster start-up imports only what serving needs (common/fastweb.py), checked in a fresh
interpreter by the modules loaded, not by timing:

- after ``fastweb.install()``, importing the netmaster daemon (routes, middlewares, crud, the
  follower proxy) loads aiohttp's server side but not its client side (``aiohttp.client``,
  ``aiohttp.connector``: the SSL contexts with the CA bundle), nor the CRUD hooks;
- the first use of a client name completes the package: ``from aiohttp import ClientSession``
  and ``aiohttp.ClientTimeout`` work unchanged, and an HTTP round trip through aiohttp's client
  to aiohttp's server (on loopback) succeeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import json, sys
from contivpy.common import fastweb
installed = fastweb.install()
import contivpy.netmaster.daemon
heavy = ("aiohttp.client", "aiohttp.connector", "aiohttp.cookiejar", "contivpy.netmaster.hooks.")
loaded = sorted(m for m in sys.modules if m in heavy or m.startswith(heavy[-1]))
before = fastweb.is_complete()

import asyncio
import aiohttp
from aiohttp import ClientSession, web

async def main():
    app = web.Application()
    async def hello(request):
        return web.Response(text="hi")
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        async with s.get(f"http://127.0.0.1:{port}/") as r:
            body = await r.text()
    await runner.cleanup()
    return body

print(json.dumps({"installed": installed, "loaded": loaded, "before": before,
                  "after": fastweb.is_complete(), "body": asyncio.run(main())}))
"""


def test_netmaster_serving_imports_without_the_http_client():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["installed"] is True
    assert got["loaded"] == [], got["loaded"]  # no client, no connector, no hooks at import
    assert got["before"] is False
    assert got["after"] is True and got["body"] == "hi"


_MIME = r"""
import json, sys
if sys.argv[1] == "install":
    from contivpy.common import fastweb
    fastweb.install()
import mimetypes
from aiohttp import web, web_fileresponse
names = ["a.deb", "a.json", "a.tar.gz", "a.svgz", "a.webp", "x.unknownext"]
print(json.dumps({
    "global": [mimetypes.guess_type(n) for n in names],
    "ext": mimetypes.guess_extension("application/vnd.debian.binary-package"),
    "aiohttp": [web_fileresponse.CONTENT_TYPES.guess_type(n) for n in names],
}))
"""


def test_mime_database_answers_unchanged():
    """``install()`` keeps aiohttp's import from reading the system MIME files into ``mimetypes``'
    module database; every answer (module functions, which read them on first use, and aiohttp's
    own table) is the same as in an interpreter without it."""
    got = {}
    for mode in ("install", "plain"):
        out = subprocess.run(
            [sys.executable, "-c", _MIME, mode], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        got[mode] = json.loads(out.stdout)
    assert got["install"] == got["plain"]
    if Path("/etc/mime.types").exists():  # read from the system file, on first use
        assert got["install"]["global"][0][0] == "application/vnd.debian.binary-package"
