#!/usr/bin/env python3
"""`make demo`: etcd + netmaster + two simulated hosts (own netns, OVS, dockerd, netplugin each)
running the seed scenario, printed the way a user would type and see it. netmaster
(``--mode docker --docker-host`` = host 1's dockerd) and each netplugin run with the issue's plain
command lines, printed first.

Everything runs on this machine in network namespaces (test-bed layout of tests/fixtures/testbed.py
and tests/fixtures/docker.py); nothing leaves the machine. Each dockerd runs with
``--dns 192.168.213.253`` (tests/fixtures/docker.py DNS_UPSTREAM: a test-bed address nobody holds),
so the containers never get a real resolver. All of it is torn down on exit, on
failure and on Ctrl-C / SIGTERM. Needs root, etcd, openvswitch, docker.io and busybox-static
(`make deps`).
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def show(where: str, argv: list[str], out: str) -> None:
    print(f"\n[{where}]$ {' '.join(shlex.quote(a) for a in argv)}")
    if out.strip():
        print(out.rstrip())


def daemon_args(pid: int) -> list[str]:
    """The arguments after ``python -m contivpy.<daemon>`` of a running daemon."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[3:-1]]


def main() -> int:
    import _pytest.outcomes

    from tests.fixtures.docker import start_docker_bed

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print("starting etcd, netmaster and two hosts (OVS + dockerd + netplugin each) ...", flush=True)
    t0 = time.monotonic()
    try:
        dbed = start_docker_bed(2)
    except _pytest.outcomes.Skipped as e:
        print(f"cannot run the demo here: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # start_docker_bed has already removed what it started
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"up in {time.monotonic() - t0:.1f} s")
    try:
        bed = dbed.bed
        print("\nthe daemons run with these command lines (each netplugin in its host's netns):")
        show("control", ["netmaster", *daemon_args(bed.netmaster_proc.pid)], "")
        for i, h in bed.hosts.items():
            show(f"host{i}", ["netplugin", *daemon_args(h.netplugin.pid)], "")

        def netctl(host: int, *args: str) -> None:
            cmd = ["netctl", *args]
            full = [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, *args]
            ns = bed.hosts[host].netns
            r = subprocess.run(["ip", "netns", "exec", ns, *full], capture_output=True, text=True, timeout=60)
            show(f"host{host}", cmd, r.stdout + r.stderr)
            if r.returncode != 0:
                raise RuntimeError(f"netctl {' '.join(args)} failed")

        def docker(host: int, *args: str, check: bool = True) -> str:
            d = dbed.dockers[host]
            r = d.docker_rc(*args)
            show(f"host{host}", ["docker", *args], r.stdout + r.stderr)
            if check and r.returncode != 0:
                raise RuntimeError(f"docker {' '.join(args)} failed")
            return r.stdout

        netctl(1, "network", "create", "--subnet", "10.103.1.0/24", "test-net")  # the seed, verbatim
        for h in (1, 2):
            netctl(h, "network", "ls")
        deadline = time.monotonic() + 30
        while not all("test-net" in d.networks() for d in dbed.dockers.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("docker network test-net did not appear on both hosts")
            time.sleep(0.1)
        for h in (1, 2):
            docker(h, "network", "ls")
            dbed.dockers[h].docker("tag", "tdkbusybox:1", "busybox")  # the hosts' private image stores
        # the seed's plain commands: names are answered by netplugin (docs/docker.md "DNS by container name")
        docker(1, "run", "-itd", "--net", "test-net", "--name", "cbox1", "busybox")
        docker(2, "run", "-itd", "--net", "test-net", "--name", "cbox2", "busybox")
        docker(1, "exec", "cbox1", "ifconfig", "eth0")
        docker(2, "exec", "cbox2", "ifconfig", "eth0")
        for h, src, dst in ((1, "cbox1", "cbox2"), (2, "cbox2", "cbox1")):
            d = dbed.dockers[h]
            d.ping(src, dst, budget=10)  # names are recorded right after start: wait for them
            docker(h, "exec", src, "ping", "-c", "4", dst)
        netctl(1, "network", "inspect", "test-net")
        print("\ndemo finished: cleaning up")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - any failure: report and clean up
        print(f"\ndemo failed: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        dbed.close()


if __name__ == "__main__":
    sys.exit(main())
