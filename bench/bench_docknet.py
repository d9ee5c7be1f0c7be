"""netmaster's Docker networks in docker mode (the post-commit reconciler, netmaster/dockerrec.py).

    python bench/bench_docknet.py [-n 10] [--outage 5] [--up-only] [--json out.json]

Starts etcd, one dockerd 20.10 in its own netns with the minimal remote network+IPAM plugin of
tests/integration/test_dockernet.py, and one ``netmaster --mode docker --docker-host <it>``.
Measures (printed as a Markdown table):
- Docker up, n networks one after the other: the REST answer of ``POST /api/v1/networks/...``
  and create -> the Docker network present (p50 / max);
- Docker down: the REST answer of a create (200: committed); after ``--outage`` s dockerd is
  started, and from its first answer -> the Docker network present (the time the reconciler
  needs to notice Docker is back);
- delete with Docker up: REST answer, and delete -> Docker network gone (p50 / max).
Everything it starts is stopped by PID, the netns and directories are removed, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.docker import DockerHost  # noqa: E402
from tests.fixtures.etcd import EtcdServer  # noqa: E402
from tests.fixtures.netmaster import NetmasterProc  # noqa: E402
from tests.integration.test_dockernet import _H, _S  # noqa: E402


def ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def wait(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise TimeoutError("condition not reached")


def body(i: int) -> dict:
    return {
        "networkName": f"tbd-n{i}",
        "tenantName": "default",
        "encap": "vxlan",
        "subnet": f"10.{90 + i}.0.0/24",
    }


def post(nm: NetmasterProc, i: int) -> float:
    t0 = time.perf_counter()
    st, _, text = nm.request("POST", f"/api/v1/networks/default:tbd-n{i}/", body(i))
    assert st == 200, text
    return ms(t0)


def delete(nm: NetmasterProc, i: int) -> float:
    t0 = time.perf_counter()
    st, _, text = nm.request("DELETE", f"/api/v1/networks/default:tbd-n{i}/")
    assert st == 200, text
    return ms(t0)


def run(n: int, tmp: Path, netns: str, up_only: bool = False, outage: float = 5.0) -> dict:
    res: dict = {}
    sock = str(tmp / "plugin.sock")
    srv = _S(sock, _H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    etcd = EtcdServer(tmp / "etcd")
    dh = DockerHost(netns, tmp, plugin_socket=sock)
    nm = None
    try:
        etcd.start()
        dh.start()
        nm = NetmasterProc(etcd.url, ["--mode", "docker", "--docker-host", dh.host_url], {}, tmp)
        nm.start()
        nm.wait_ready()
        rest, present = [], []
        for i in range(n):
            t0 = time.perf_counter()
            rest.append(post(nm, i))
            wait(lambda i=i: f"tbd-n{i}" in dh.networks())
            present.append(ms(t0))
        res["create, Docker up: REST answer p50 / max (ms)"] = (round(statistics.median(rest), 1), max(rest))
        res["create, Docker up: -> Docker network present p50 / max (ms)"] = (
            round(statistics.median(present), 1),
            max(present),
        )
        if not up_only:
            dh.halt()
            res["create, Docker down: REST answer (ms)"] = post(nm, n)
            time.sleep(outage)
            t0 = time.perf_counter()
            dh.start()
            res["dockerd start (s)"] = round((time.perf_counter() - t0), 2)
            t0 = time.perf_counter()
            wait(lambda: f"tbd-n{n}" in dh.networks())
            res[f"Docker down {outage:g} s: dockerd answering -> network present (ms)"] = ms(t0)
        rest, gone = [], []
        for i in range(n if up_only else n + 1):
            t0 = time.perf_counter()
            rest.append(delete(nm, i))
            wait(lambda i=i: f"tbd-n{i}" not in dh.networks())
            gone.append(ms(t0))
        res["delete, Docker up: REST answer p50 / max (ms)"] = (round(statistics.median(rest), 1), max(rest))
        res["delete, Docker up: -> Docker network gone p50 / max (ms)"] = (
            round(statistics.median(gone), 1),
            max(gone),
        )
    finally:
        if nm is not None:
            nm.stop()
        dh.stop()
        etcd.stop()
        srv.shutdown()
        srv.server_close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--outage", type=float, default=5.0, help="seconds Docker stays down")
    ap.add_argument("--up-only", action="store_true", help="skip the Docker-down part (old code: 500)")
    ap.add_argument("--json")
    args = ap.parse_args()
    netns = f"tdk{os.urandom(3).hex()}"
    tmp = Path(tempfile.mkdtemp(prefix="tbd-", dir="/tmp"))
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    try:
        res = run(args.n, tmp, netns, args.up_only, args.outage)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print("| metric | value |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {' / '.join(map(str, v)) if isinstance(v, tuple) else v} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
