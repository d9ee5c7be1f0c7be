"""Failover benchmarks: time from a kill -9 to the first successful write.

Usage:  python bench/bench_failover.py [--leader] [--member] [--runs N]   (no selector = both)

- ``--leader``  two netmasters (``--mode test``, default leader lease TTL) on a private etcd; a client
                POSTs a new tenant through the follower every 50 ms (1 s HTTP timeout per try);
                the leader netmaster is killed with SIGKILL: seconds from the kill to the first
                200 (target < 10 s).
- ``--member``  a private 3-member etcd cluster on 127.0.0.1 and one netmaster given every member;
                the same writer, sending straight to netmaster; one etcd member is killed with
                SIGKILL: seconds from the kill to the first 200 after it, and how many writes
                failed (target < 2 s, at most one failed write). Two variants per run: the member
                netmaster talks to (the first of the list, moved off raft leadership first) and the
                raft leader.

Each figure is printed per run with the median of ``--runs`` (default 3). Everything runs on
loopback in a temp dir (prefix ``tbf-``); only the PIDs started here are signalled.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.etcd import EtcdCluster, EtcdServer  # noqa: E402
from tests.fixtures.netmaster import NetmasterProc  # noqa: E402


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def post_tenant(port: int, name: str, timeout: float = 1.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"tenantName": name})
        conn.request(
            "POST", f"/api/v1/tenants/{name}/", body=body, headers={"Content-Type": "application/json"}
        )
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def until_write(port: int, prefix: str, t0: float, limit: float = 60.0) -> tuple[float, int]:
    """Write every 50 ms from ``t0`` on; (seconds to the first success, failed writes before it)."""
    i, failed = 0, 0
    while time.monotonic() - t0 < limit:
        if post_tenant(port, f"{prefix}{i}"):
            return time.monotonic() - t0, failed
        failed += 1
        i += 1
        time.sleep(0.05)
    raise RuntimeError(f"no successful write within {limit}s")


def leader_run(tmp: Path, run: int) -> float:
    etcd = EtcdServer(tmp / f"l{run}" / "data")
    (tmp / f"l{run}").mkdir()
    etcd.start()
    nms: list[NetmasterProc] = []
    try:
        leader = NetmasterProc(etcd.url, [], {}, tmp)
        leader.start()
        nms.append(leader)
        leader.wait_ready()
        follower = NetmasterProc(etcd.url, [], {}, tmp)
        follower.start()
        nms.append(follower)
        follower.wait_ready()
        assert post_tenant(follower.port, "tbfwarm", timeout=5)
        time.sleep(1.0)
        leader.stop(signal.SIGKILL)
        took, _ = until_write(follower.port, "tbfl", time.monotonic())
        return took
    finally:
        for nm in nms:
            nm.stop()
        etcd.stop()


def _status(cluster: EtcdCluster) -> list[dict]:
    return json.loads(cluster.etcdctl("endpoint", "status", "--write-out=json"))


def _move_leader_off(cluster: EtcdCluster, i: int) -> None:
    sts = _status(cluster)
    leader = next(s for s in sts if s["Status"]["leader"] == s["Status"]["header"]["member_id"])
    if leader["Endpoint"] != cluster.members[i].url:
        return
    other = next(s for s in sts if s["Endpoint"] != cluster.members[i].url)
    mid = format(other["Status"]["header"]["member_id"], "x")
    cluster.etcdctl("move-leader", mid, endpoints=leader["Endpoint"])
    deadline = time.monotonic() + 10
    while cluster.leader() == i and time.monotonic() < deadline:
        time.sleep(0.1)


def member_run(tmp: Path, run: int, victim: str) -> tuple[float, int]:
    root = tmp / f"m{run}{victim}"
    root.mkdir()
    cluster = EtcdCluster(root)
    cluster.start_all()
    nm = NetmasterProc(cluster.url, [], {}, tmp)
    try:
        nm.start()
        nm.wait_ready()
        assert post_tenant(nm.port, "tbfwarm", timeout=5)
        if victim == "connected":
            _move_leader_off(cluster, 0)
            idx = 0
        else:
            idx = cluster.leader()
        time.sleep(1.0)
        cluster.kill(idx)
        return until_write(nm.port, "tbfm", time.monotonic())
    finally:
        nm.stop()
        cluster.stop_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leader", action="store_true")
    ap.add_argument("--member", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    both = not (args.leader or args.member)
    tmp = Path(tempfile.mkdtemp(prefix="tbf-"))
    try:
        if args.leader or both:
            xs = []
            for r in range(args.runs):
                xs.append(leader_run(tmp, r))
                print(f"leader kill -9 -> first write: run {r + 1}: {xs[-1]:.2f} s", flush=True)
            print(f"leader kill -9 -> first write: median {median(xs):.2f} s (target < 10 s)")
        if args.member or both:
            for victim in ("connected", "leader"):
                xs, fails = [], []
                for r in range(args.runs):
                    took, failed = member_run(tmp, r, victim)
                    xs.append(took)
                    fails.append(failed)
                    print(
                        f"etcd member ({victim}) kill -9 -> first write: run {r + 1}: {took:.2f} s, "
                        f"{failed} failed write(s)",
                        flush=True,
                    )
                print(
                    f"etcd member ({victim}) kill -9 -> first write: median {median(xs):.2f} s, "
                    f"failed writes max {max(fails)} (target < 2 s, <= 1)"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
