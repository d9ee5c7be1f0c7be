"""netplugin start-up survives a busy etcd (daemon.retry_store).

Found by bench/bench_mesh.py: with 100 agents starting at once on 2 cores, etcd answered one agent's
read of its CNI records after the client's 10 s timeout, the StoreError left the start-up TaskGroup
and the agent exited. The restore steps now retry on a StoreError; other errors still propagate.
"""

from __future__ import annotations

import pytest

from contivpy.common.errors import StoreError, ValidationError
from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.netplugin.cni.pods import PodService
from contivpy.netplugin.daemon import retry_store


class FlakyKV(MemoryKV):
    """A MemoryKV whose first ``fail`` prefix reads time out, as a starved etcd does."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.reads = 0

    async def get_prefix(self, prefix, *a, **kw):
        self.reads += 1
        if self.reads <= self.fail:
            raise StoreError("etcd get failed: UNAVAILABLE: etcd at 127.0.0.1:2379: TimeoutError")
        return await super().get_prefix(prefix, *a, **kw)


async def test_restore_step_retried_until_etcd_answers():
    kv = FlakyKV(fail=2)
    await kv.put(
        keys.cni_pod("h1", "c1", "eth0"), '{"containerId": "c1", "ifName": "eth0", "state": "ready"}'
    )
    pods = PodService(kv, "h1", backend=None)
    await retry_store("restoring CNI attachments", pods.restore, interval=0.01)
    assert kv.reads == 3  # two timeouts, then the listing that the restore needed


async def test_retry_returns_the_result_and_other_errors_propagate():
    calls = []

    async def step():
        calls.append(1)
        if len(calls) < 3:
            raise StoreError("etcd busy")
        return "done"

    assert await retry_store("x", step, interval=0.001) == "done"
    assert len(calls) == 3

    async def bad():
        raise ValidationError("bad record")

    with pytest.raises(ValidationError):
        await retry_store("x", bad, interval=0.001)
