"""netmaster's start-up defers what its first answers do not use (docs/benchmarks.md,
"netmaster start-up"), checked by the modules loaded in a real netmaster process, not by timing.

A probe interpreter runs netmaster's entry point the way ``bin/netmaster`` does (``sys.argv[0]`` is
``netmaster``; ``memory://`` store, free loopback port); a thread of that process asks it over
HTTP for ``GET /version`` and then ``GET /api/v1/networks/`` (needs leadership: tenant ``default``
and the global object created), and records which modules were loaded at each step (and after
importing the daemon module, i.e. before the listener opens):

- the cyclic GC is off as soon as the entry point is imported (common/startup.py) and on again
  after the start-up (``STARTUP_GC_DELAY``);
- the daemon's imports do not load the state records, the Allocator (endpoints, IPAM, providers)
  or any CRUD hook: the leader start and first use load them;
- neither answer has loaded: the auth middleware and its store (``--auth`` only), TLS, the OpenAPI
  document's oper declarations, the Kubernetes and Docker watchers, migration, Prometheus,
  ``importlib.metadata`` (GET /version reads the dist-info itself), aiohttp's client side, the
  hooks and ``model.oper`` the leader start does not run;
- first use still works: ``GET /api/v1/inspect/tenants/default/`` then answers 200 and has loaded
  ``model.oper``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import gc, json, os, signal, socket, sys, threading, time
port = int(sys.argv[1])
sys.argv = ["netmaster", "--etcd-endpoints", "memory://local", "--mode", "test", "--netmode", "vlan",
            "--fwdmode", "bridge", "--listen-url", f"127.0.0.1:{port}", "--control-url",
            f"127.0.0.1:{port}", "--rpc-port", "0"]
import contivpy.netmaster.__main__ as entry
gc_at_import = gc.isenabled()
from contivpy.common import fastweb
fastweb.install()
import contivpy.netmaster.daemon  # what main() imports before it listens
out = {"gc_at_import": gc_at_import, "at_daemon_import": sorted(sys.modules)}

def get(path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])

def until_200(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(path) == 200:
                return True
        except OSError:
            pass
        time.sleep(0.01)
    return False

def probe():
    try:
        out["version"] = until_200("/version")
        out["at_version"] = sorted(sys.modules)
        out["networks"] = until_200("/api/v1/networks/")
        out["at_networks"] = sorted(sys.modules)
        deadline = time.monotonic() + 30
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.05)
        out["gc_later"] = gc.isenabled()
        out["inspect"] = get("/api/v1/inspect/tenants/default/")
        out["after_inspect"] = sorted(sys.modules)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
rc = entry.main()
print(json.dumps(dict(out, rc=rc)))
"""

# Modules (or package prefixes, ending in ".") a default start must not load before they are used.
DEFERRED = (
    "contivpy.netmaster.auth",
    "contivpy.netmaster.auth_store",
    "contivpy.netmaster.tls",
    "contivpy.netmaster.k8snet.",
    "contivpy.netmaster.dockerrec",
    "contivpy.netmaster.migrate.",
    "contivpy.model.oper",
    "contivpy.netmaster.hooks.group",
    "contivpy.netmaster.hooks.network",
    "contivpy.netmaster.hooks.policy",
    "contivpy.netmaster.hooks.service_lb",
    "contivpy.netmaster.hooks.bgp",
    "prometheus_client",
    "importlib.metadata",
    "aiohttp.client",
    "aiohttp.connector",
)


# ... and, in addition, what the listener and the leader start up to the first answers do not need.
BEFORE_LISTEN = (
    "contivpy.model.state",
    "contivpy.netmaster.endpoints",
    "contivpy.netmaster.ipam",
    "contivpy.netmaster.providers",
    "contivpy.netmaster.hooks.",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loaded(mods: list[str], deferred: tuple[str, ...] = DEFERRED) -> list[str]:
    return [m for m in mods if any(m == d or (d.endswith(".") and m.startswith(d)) for d in deferred)]


def test_netmaster_first_answers_load_only_what_serving_needs():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(_free_port())], cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0
    assert got["gc_at_import"] is False  # paused by the entry point, before the other imports
    assert got["version"] is True and got["networks"] is True, out.stderr[-3000:]
    pre = _loaded(got["at_daemon_import"], DEFERRED + BEFORE_LISTEN)
    assert pre == [], pre
    assert _loaded(got["at_version"]) == [], _loaded(got["at_version"])
    assert _loaded(got["at_networks"]) == [], _loaded(got["at_networks"])
    assert got["gc_later"] is True  # resumed after the start-up
    assert got["inspect"] == 200  # first use loads what was deferred
    assert "contivpy.model.oper" in got["after_inspect"]
