"""Start-up + request time of ``netctl --netmaster URL network ls`` (target: median <= 20 ms).

Usage:  python bench/bench_netctl.py [--netmaster URL] [-n 30] [--cmd PATH ...]

Without ``--netmaster`` a local recording HTTP server replaying the transcript's answers
(tests.support.netctl_fakeserver) is started in this process (one network; for a real
netmaster with 100 networks see ``bench/bench_netmaster.py --netctl``). Ways of running netctl
are timed ``-n`` rounds, one run of each per round in turn (the machine's drift hits all alike),
printing median, p90 and min in milliseconds:

* ``installed``: the ``netctl`` installed next to this interpreter, i.e. what a user types
  (``make deps``/``make install`` pin the launcher to the venv's interpreter: Python starts
  directly with ``-S``);
* ``sh bin/netctl``: the checkout's launcher as shipped (sh finds the interpreter, then execs it);
* each ``--cmd PATH``: another netctl (``/usr/local/sbin/netctl``, an older install);
* ``python -S``: the entry point with ``site`` disabled (PYTHONPATH = this checkout), i.e.
  the interpreter + netctl cost without any launcher;
* ``in-process``: ``contivpy.netctl.app.run`` called in this process (netctl's own work:
  parsing, two HTTP requests, formatting), no interpreter start.

Byte code is compiled first (``compileall``), as ``pip install`` and ``make deps`` do; without
it every run would recompile netctl's modules (this environment sets PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import argparse
import compileall
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from _common import time_interleaved  # noqa: E402

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
    ap.add_argument("--cmd", action="append", default=[], metavar="PATH", help="also time this netctl")
    a = ap.parse_args()
    compileall.compile_dir(str(ROOT / "contivpy" / "netctl"), quiet=1)
    compileall.compile_file(str(ROOT / "contivpy" / "__init__.py"), quiet=1)
    env = dict(os.environ, HOME=os.environ.get("HOME", "/root"))
    env.pop("NETMASTER", None)

    def bench(url: str) -> None:
        args = ["--netmaster", url, "network", "ls"]
        print(f"netctl network ls against {url}, {a.n} rounds (load avg {os.getloadavg()[0]:.2f})")
        env_s = dict(env, PYTHONPATH=str(ROOT))
        entry = (
            "import sys; from contivpy.netctl.__main__ import main; sys.argv[0] = 'netctl'; sys.exit(main())"
        )
        cmds: dict[str, list[str]] = {}
        installed = Path(sys.executable).with_name("netctl")
        if installed.exists():
            cmds[f"installed ({installed})"] = [str(installed), *args]
        cmds["sh bin/netctl"] = ["sh", str(ROOT / "bin" / "netctl"), *args]
        for path in a.cmd:
            cmds[path] = [path, *args]
        cmds["python -S"] = [sys.executable, "-S", "-c", entry, *args]
        cmds["bare python -S -c pass"] = [sys.executable, "-S", "-c", "pass"]
        cmds["bare python -c pass (site)"] = [sys.executable, "-c", "pass"]
        for name, samples in time_interleaved(cmds, env_s, a.n).items():
            print(f"  {name:<28} {stats(samples)}")
        print(f"  {'in-process':<28} {stats(time_inprocess(url, a.n))}")
        print(f"  (load avg {os.getloadavg()[0]:.2f} at the end)")

    if a.netmaster:
        bench(a.netmaster)
    else:
        with ReplayServer(ROUTES) as srv:
            bench(srv.url)


if __name__ == "__main__":
    main()
