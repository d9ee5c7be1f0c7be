"""A partitioned etcd member is detected: the client leaves it instead of serving from it.

Three real etcd members run in a private network namespace (its loopback only). Member 0 runs
under its own group id so that iptables' owner match, inside that namespace, can cut all of its
raft traffic (its peer port closed; the connections it opens marked and dropped both ways) while
its client port keeps answering: a network partition with the client on the minority side. A client process in the
namespace (contivpy's EtcdKV, every member given, member 0 first) watches a prefix and prints
each event; then it reads a key. Before the partition it is served by member 0.

What must hold: once member 0 is cut off, a write made on the majority reaches the watcher, and a
linearizable read through the client returns it. Without the leader requirement on each request
(common/kv/etcdhttp.py) the watch stays open on member 0, which never sees the write, and the
read waits on member 0 until it times out.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.etcd import ETCD_BIN, ETCDCTL_BIN

pytestmark = [pytest.mark.etcd, pytest.mark.root, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
GID = 64123  # member 0's group: the owner match of the partition rules
CLIENT_PORTS = (23790, 23791, 23792)
PEER_PORTS = (23800, 23801, 23802)

CLIENT = """
import asyncio, sys
from contivpy.common.kv.etcd import EtcdKV

async def main():
    kv = EtcdKV(endpoints=[("127.0.0.1", p) for p in (%s)])
    await kv.connect()
    w = kv.watch_prefix("/tpart/")
    print("ready", flush=True)
    async for ev in w:
        print("event", ev.key, ev.value, flush=True)
        if ev.key == "/tpart/b":
            got = await kv.get("/tpart/b")
            print("read", got.value if got else None, flush=True)
            break
    await kv.close()

asyncio.run(main())
"""


def _ns(ns: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, **kw)


def _etcdctl(ns: str, endpoints: list[int], *args: str) -> str:
    eps = ",".join(f"http://127.0.0.1:{p}" for p in endpoints)
    r = _ns(ns, ETCDCTL_BIN, f"--endpoints={eps}", "--command-timeout=3s", *args, timeout=15,
            env=dict(os.environ, ETCDCTL_API="3"))  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return r.stdout


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except RuntimeError as e:
            last = str(e)
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def _lines(proc: subprocess.Popen, until: str, timeout: float) -> list[str]:
    """The client's lines up to (and with) the first one that starts with ``until``."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line.strip())
            if line.startswith(until):
                return out
    err = ""
    if not out or proc.poll() is not None or not select.select([proc.stdout], [], [], 0)[0]:
        try:
            proc.wait(timeout=5)
            err = proc.stderr.read()
        except subprocess.TimeoutExpired:
            pass
    raise AssertionError(f"client printed no {until!r} line within {timeout} s: {out} {err[-2000:]}")


@pytest.fixture
def netns():
    if not os.access(ETCD_BIN, os.X_OK):
        pytest.skip("etcd not installed")
    name = f"tkvp{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)  # its iptables rules go with it


def test_partitioned_member_is_left_for_the_majority(netns, tmp_path):
    initial = ",".join(f"tkvp{i}=http://127.0.0.1:{PEER_PORTS[i]}" for i in range(3))
    procs: list[subprocess.Popen] = []
    try:
        for i in range(3):
            cmd = [
                "ip", "netns", "exec", netns, ETCD_BIN, f"--name=tkvp{i}", f"--data-dir={tmp_path}/m{i}",
                f"--listen-client-urls=http://127.0.0.1:{CLIENT_PORTS[i]}",
                f"--advertise-client-urls=http://127.0.0.1:{CLIENT_PORTS[i]}",
                f"--listen-peer-urls=http://127.0.0.1:{PEER_PORTS[i]}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{PEER_PORTS[i]}",
                f"--initial-cluster={initial}", "--initial-cluster-state=new", "--initial-cluster-token=tkvp",
            ]  # fmt: skip
            log = open(tmp_path / f"m{i}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, group=GID if i == 0 else None)
            )
        _wait(
            lambda: _etcdctl(netns, list(CLIENT_PORTS), "endpoint", "health") is not None,
            30,
            "a healthy cluster",
        )
        _etcdctl(netns, list(CLIENT_PORTS), "put", "/tpart/a", "1")

        client = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", CLIENT % ",".join(map(str, CLIENT_PORTS))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        procs.append(client)
        _lines(client, "ready", 20)
        _etcdctl(netns, list(CLIENT_PORTS), "put", "/tpart/x", "before")
        assert _lines(client, "event", 10)[-1] == "event /tpart/x before"

        # cut member 0 off: nothing reaches its peer port, nothing it sends leaves except answers
        # from its client port (the client keeps talking to it)
        for rule in (
            ["-A", "INPUT", "-p", "tcp", "--dport", str(PEER_PORTS[0]), "-j", "DROP"],
            # connections member 0 opens (to its peers), except those of its client port (its own
            # gateway dials it too): marked, then dropped both ways
            ["-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "--sport", str(CLIENT_PORTS[0]), "-j", "RETURN"],
            ["-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "--dport", str(CLIENT_PORTS[0]), "-j", "RETURN"],
            ["-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "--gid-owner", str(GID),
             "-j", "CONNMARK", "--set-mark", "0x7e"],
            ["-A", "OUTPUT", "-m", "connmark", "--mark", "0x7e", "-j", "DROP"],
            ["-A", "INPUT", "-m", "connmark", "--mark", "0x7e", "-j", "DROP"],
        ):  # fmt: skip
            r = _ns(netns, "iptables", *rule)
            assert r.returncode == 0, r.stderr
        # the majority elects (or keeps) a leader and takes a write member 0 never sees
        _wait(
            lambda: _etcdctl(netns, list(CLIENT_PORTS[1:]), "endpoint", "health") is not None,
            30,
            "majority health",
        )
        _wait(
            lambda: _etcdctl(netns, list(CLIENT_PORTS[1:]), "put", "/tpart/b", "after") is not None,
            30,
            "write",
        )
        t0 = time.monotonic()
        lines = _lines(client, "read", 40)
        took = time.monotonic() - t0
        assert "event /tpart/b after" in lines, lines
        assert lines[-1] == "read after", lines
        print(f"partition noticed and served by the majority after {took:.1f} s")
        client.wait(timeout=10)
        assert client.returncode == 0, client.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
