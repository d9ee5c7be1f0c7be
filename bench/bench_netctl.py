"""Start-up + request time of ``netctl --netmaster URL network ls`` (target: median <= 40 ms).

Usage:  python bench/bench_netctl.py [--netmaster URL] [-n 30]

Without ``--netmaster`` a local recording HTTP server replaying the transcript's answers
(tests.support.netctl_fakeserver) is started in this process. Three ways of running netctl are
timed, each ``-n`` times, printing median and p90 in milliseconds:

* ``console-script``: the ``netctl`` script pip installed next to this interpreter, i.e.
  what a user types (includes the interpreter's ``site`` start-up and every ``.pth`` hook
  of the environment);
* ``python -S``: the same entry point with ``site`` disabled (PYTHONPATH = this checkout),
  i.e. the interpreter + netctl cost without the environment's ``.pth`` hooks;
* ``in-process``: ``contivpy.netctl.app.run`` called in this process (netctl's own work:
  parsing, two HTTP requests, formatting), no interpreter start.

Byte code is compiled first (``compileall``), as ``pip install`` does; without it every run
would recompile netctl's modules (this environment sets PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import argparse
import compileall
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.netctl_fakeserver import ReplayServer  # noqa: E402

TENANT = '{"key":"default","tenantName":"default","link-sets":{}}'
NET = (
    '{"key":"default:test-net","encap":"vxlan","networkName":"test-net","nwType":"data","subnet":"10.103.1.0/24",'
    '"tenantName":"default","link-sets":{},"links":{"Tenant":{"type":"tenant","key":"default"}}}'
)
ROUTES = {
    ("GET", "/api/v1/tenants/default/"): (200, TENANT),
    ("GET", "/api/v1/networks/"): (200, f"[{NET}]"),
}


def stats(samples: list[float]) -> str:
    s = sorted(samples)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return f"median {statistics.median(s):6.1f} ms   p90 {p90:6.1f} ms   min {s[0]:6.1f} ms"


def time_cmd(cmd: list[str], env: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True)
        out.append((time.perf_counter() - t) * 1000)
        if p.returncode != 0:
            raise SystemExit(f"{cmd} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return out


def time_inprocess(url: str, n: int) -> list[float]:
    from contivpy.netctl.app import run

    out = []
    saved = sys.stdout
    for _ in range(n):
        sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        t = time.perf_counter()
        code = run(["netctl", "--netmaster", url, "network", "ls"])
        out.append((time.perf_counter() - t) * 1000)
        sys.stdout = saved
        if code != 0:
            raise SystemExit(f"in-process run failed ({code})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--netmaster", help="URL of a running netmaster (default: a local replay server)")
    ap.add_argument("-n", type=int, default=30)
    a = ap.parse_args()
    compileall.compile_dir(str(ROOT / "contivpy" / "netctl"), quiet=1)
    compileall.compile_file(str(ROOT / "contivpy" / "__init__.py"), quiet=1)
    env = dict(os.environ, HOME=os.environ.get("HOME", "/root"))
    env.pop("NETMASTER", None)

    def bench(url: str) -> None:
        args = ["--netmaster", url, "network", "ls"]
        script = Path(sys.executable).with_name("netctl")
        print(f"netctl network ls against {url}, {a.n} runs each (load avg {os.getloadavg()[0]:.2f})")
        if script.exists():
            print(f"  console-script  {stats(time_cmd([str(script), *args], env, a.n))}   ({script})")
        env_s = dict(env, PYTHONPATH=str(ROOT))
        launcher = (
            "import sys; from contivpy.netctl.__main__ import main; sys.argv[0] = 'netctl'; sys.exit(main())"
        )
        bare = [sys.executable, "-S", "-c", launcher, *args]
        print(f"  python -S       {stats(time_cmd(bare, env_s, a.n))}")
        base = time_cmd([sys.executable, "-S", "-c", "pass"], env_s, a.n)
        site = time_cmd([sys.executable, "-c", "pass"], env, a.n)
        print(f"  in-process      {stats(time_inprocess(url, a.n))}")
        print(f"  (bare interpreter: python -S -c pass {stats(base)}; with site: {stats(site)})")

    if a.netmaster:
        bench(a.netmaster)
    else:
        with ReplayServer(ROUTES) as srv:
            bench(srv.url)


if __name__ == "__main__":
    main()
