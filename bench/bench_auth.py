"""Cost of HTTPS and --auth on netmaster's REST API (private etcd, loopback only).

Usage:  python bench/bench_auth.py [--requests 300] [--runs 3]

Three netmasters in turn on one etcd: plain http; https (``--tls-auto``); https + ``--auth``
(admin seeded from a password file). For each: ``--requests`` sequential GET /api/v1/tenants/ on one
keep-alive connection (http.client), reported as requests/s; and, for the auth one, the time of
``POST /api/v1/auth_proxy/login/`` (one scrypt hash) as the median of 10. Each figure is the median
of ``--runs``. No targets: the numbers show what TLS and the per-request token check (one etcd read)
cost. Everything started here is stopped by PID (bench/_common.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BenchEnv, median  # noqa: E402

PW = "bench-admin-pw"


def connect(port: int, tls: bool) -> http.client.HTTPConnection:
    if tls:
        return http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=10, context=ssl._create_unverified_context()
        )
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def call(conn, method: str, path: str, body=None, headers=None) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def wait_ready(port: int, tls: bool, auth: bool) -> str:
    """Poll until the API answers as leader; returns a token when ``auth``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c = connect(port, tls)
            if auth:
                body = json.dumps({"username": "admin", "password": PW})
                st, data = call(c, "POST", "/api/v1/auth_proxy/login/", body)
                if st == 200:
                    return json.loads(data)["token"]
            elif call(c, "GET", "/api/v1/tenants/")[0] == 200:
                return ""
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("netmaster not ready")


def run_one(env: BenchEnv, name: str, extra: list[str], n: int) -> tuple[float, float | None]:
    tls, auth = "--tls-auto" in extra, "--auth" in extra
    env.wipe()
    nm = env.netmaster(extra)
    nm.spawn()
    try:
        token = wait_ready(nm.port, tls, auth)
        hdr = {"x-auth-token": token} if token else {}
        c = connect(nm.port, tls)
        for _ in range(20):  # warm-up
            call(c, "GET", "/api/v1/tenants/", headers=hdr)
        t = time.perf_counter()
        for _ in range(n):
            st, _ = call(c, "GET", "/api/v1/tenants/", headers=hdr)
            assert st == 200, st
        rps = n / (time.perf_counter() - t)
        login_ms = None
        if auth:
            samples = []
            body = json.dumps({"username": "admin", "password": PW})
            for _ in range(10):
                t = time.perf_counter()
                st, _ = call(c, "POST", "/api/v1/auth_proxy/login/", body)
                assert st == 200, st
                samples.append((time.perf_counter() - t) * 1000)
            login_ms = median(samples)
        return rps, login_ms
    finally:
        nm.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with BenchEnv() as env:
        (env.tmp / "pw").write_text(PW)
        tls = ["--tls-auto", "--tls-dir", str(env.tmp / "tls")]
        auth = [*tls, "--auth", "--auth-admin-password-file", str(env.tmp / "pw")]
        for name, extra in (("http", []), ("https", tls), ("https+auth", auth)):
            rps, logins = [], []
            for _ in range(a.runs):
                r, lg = run_one(env, name, extra, a.requests)
                rps.append(r)
                if lg is not None:
                    logins.append(lg)
            line = f"{name:<11} GET /api/v1/tenants/ sequential: median {median(rps):7.0f} req/s  runs {[round(x) for x in rps]}"
            if logins:
                line += f"   login median {median(logins):.1f} ms"
            print(line, flush=True)


if __name__ == "__main__":
    main()
