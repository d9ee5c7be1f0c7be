"""A recording HTTP server on 127.0.0.1 that replays canned netmaster answers.

Used by netctl's unit tests and by bench/bench_netctl.py when no real netmaster is
available. It sits at the lowest boundary (the HTTP wire): netctl's own client, parser
and output code all run for real against it. Each request is recorded as
``(method, path, headers, body)``; answers come from ``routes[(method, path)]`` =
``(status, body)`` (JSON bodies get ``application/json``, others ``text/plain``), else 404
"404 page not found" like gorilla/mux. Not used by production code.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReplayServer  # type: ignore[assignment]

    def log_message(self, *args) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        srv = self.server
        with srv.lock:
            srv.requests.append((self.command, self.path, dict(self.headers.items()), body))
            status, payload = srv.routes.get((self.command, self.path), (404, "404 page not found\n"))
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        ctype = (
            "application/json"
            if status == 200 and data[:1] in (b"{", b"[", b'"')
            else "text/plain; charset=utf-8"
        )
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = _serve


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict = dict(routes or {})
        self.requests: list = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def run_inprocess(args: list[str], env: dict | None = None) -> tuple[int, str, str]:
    """Run ``netctl <args>`` in this process; return (exit status, stdout, stderr).

    stdout/stderr are swapped for byte buffers and ``env`` entries are set (a value of
    ``None`` removes the variable) for the duration of the call only.
    """
    import io
    import os
    import sys

    from contivpy.netctl.app import run

    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved = sys.stdout, sys.stderr
    so = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    se = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    try:
        for k, v in (env or {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sys.stdout, sys.stderr = so, se
        code = run(["netctl", *args])
        so.flush()
        se.flush()
    finally:
        sys.stdout, sys.stderr = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, so.buffer.getvalue().decode("utf-8"), se.buffer.getvalue().decode("utf-8")
