"""Benchmark of the netplugin reconcilers over the FakeDatapath (no root, no OVS): pure control logic.

Measures, in one process:
1. converge N remote endpoints (network + VTEP first): keys per second from enqueue to idle;
2. the same with one endpoint that the datapath keeps refusing: the time until all the others are
   programmed (the old whole-apply loop never got there);
3. delete latency of that failing key while it sits in a 30 s backoff: enqueue -> key gone.

Run: ``python3 bench/bench_reconcile.py [N]`` (default 5000). Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contivpy.common.reconcile import Reconciler  # noqa: E402
from tests.unit.test_netplugin_managers import PEER, Agent, net, oper, running  # noqa: E402


async def converge(n: int, failing: bool) -> tuple[float, float | None]:
    a = Agent()
    if failing:
        a.remote.rec = Reconciler(
            "remoteEndpoints", a.remote.reconcile, base_delay=30, max_delay=30,
            desired=lambda k: k in a.remote.desired or k in a.remote.applied,
        )  # fmt: skip
        a.dp.fail("add_remote_endpoint", "e0")
    a.nets.on_update("n1.default", net("n1", 1))
    a.vteps.on_update(f"{PEER}:4789", "{}")
    for i in range(n):
        a.remote.on_update(f"e{i}", oper(f"e{i}", "n1.default", f"10.1.{1 + i // 250}.{1 + i % 250}"))
    async with running(a):
        t0 = time.perf_counter()
        want = n - 1 if failing else n
        while len(a.dp.remote) < want:
            await asyncio.sleep(0.001)
        took = time.perf_counter() - t0
        delete = None
        if failing:
            while not all(r.settled() for r in a.recs):  # re-runs (woken by their network) done
                await asyncio.sleep(0.001)
            t1 = time.perf_counter()
            a.remote.on_update("e0", None)
            while not a.remote.rec.idle():  # its timer is cancelled, it runs, nothing waits
                await asyncio.sleep(0.0005)
            delete = time.perf_counter() - t1
    return took, delete


async def main(n: int) -> None:
    logging.disable(logging.WARNING)
    took, _ = await converge(n, failing=False)
    print(f"{n} remote endpoints converged in {took * 1000:.0f} ms ({n / took:.0f} keys/s)")
    took, delete = await converge(n, failing=True)
    print(f"with one key failing: the other {n - 1} in {took * 1000:.0f} ms")
    print(f"delete of the failing key (in a 30 s backoff) processed in {delete * 1000:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
