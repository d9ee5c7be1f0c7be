"""The host step of an upgrade (docs/upgrade.md): replace a host's agent, measured in the test bed.

    sudo python bench/bench_upgrade_host.py [--runs 3] [--eps 4]

The original netplugin is not available here, so the step is measured with contivpy's own agent
on both sides, which is the lower bound of the real step: on a two-host test bed
(tests/fixtures/testbed.py: real etcd, netmaster, userspace OVS per host) with ``--eps``
endpoints per host on one VXLAN network, host h1's agent is stopped with SIGTERM (what a
service manager does to the old agent) and a new agent is started in its place. Measured per run:

- stop: SIGTERM until the old process is gone;
- ready: new process started until its endpoint API answers with OVS connected;
- flows: new process started until h1's flow tables, groups and ports equal those before the stop;
- traffic: a ping every 20 ms from an endpoint on h1 to one on h2 runs through the whole step;
  replies lost are counted (OVS keeps forwarding with the installed flows while no agent runs).

Prints each run and the medians. Takes the test bed lock (/tmp/tnp-testbed.lock) like the tests.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.testbed import Testbed, wait_for  # noqa: E402
from tests.integration.test_dataplane_basic import make_ep  # noqa: E402
from tests.integration.test_dataplane_restart import snapshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--eps", type=int, default=4)
    a = ap.parse_args()
    rows = []
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("unet", "10.112.1.0/24")
        c1 = [make_ep(h1, "unet", f"u1-{i}")[1] for i in range(a.eps)]
        c2 = [make_ep(h2, "unet", f"u2-{i}")[1] for i in range(a.eps)]
        assert c1[0].ping(c2[0].ip)
        wait_for(lambda: c1[0].ping(c2[0].ip, budget=1), 10, what="traffic")
        for _ in range(a.runs):
            before = snapshot(h1)
            pinger = subprocess.Popen(
                ["ip", "netns", "exec", c1[0].name, "busybox", "ping", "-i", "0.02", "-W", "1", c2[0].ip],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            time.sleep(1.0)
            t0 = time.monotonic()
            h1.stop_netplugin(signal.SIGTERM)
            t_stop = time.monotonic() - t0
            t1 = time.monotonic()
            h1.start_netplugin(wait=False)
            h1.wait_ready(timeout=60)
            t_ready = time.monotonic() - t1
            wait_for(lambda before=before: snapshot(h1) == before, 60, 0.02, "flows identical")
            t_flows = time.monotonic() - t1
            time.sleep(1.0)
            pinger.send_signal(signal.SIGINT)
            out, _ = pinger.communicate(timeout=10)
            m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
            sent, recv = (int(m[1]), int(m[2])) if m else (0, 0)
            rows.append((t_stop, t_ready, t_flows, sent, sent - recv))
            print(
                f"stop {t_stop:.2f} s, ready {t_ready:.2f} s, flows identical {t_flows:.2f} s, "
                f"pings {sent} sent / {sent - recv} lost"
            )
    med = [statistics.median(r[i] for r in rows) for i in range(3)]
    lost = sum(r[4] for r in rows)
    sent = sum(r[3] for r in rows)
    print(
        f"median over {len(rows)} runs: stop {med[0]:.2f} s, ready {med[1]:.2f} s, flows identical {med[2]:.2f} s; "
        f"pings lost {lost} of {sent}"
    )


if __name__ == "__main__":
    main()
