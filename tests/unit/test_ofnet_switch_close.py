"""A request cut short by the connection's end leaves no unretrieved future (ofnet/switch.py).

Found by bench/bench_mesh.py: when vswitchd dropped a busy agent's OpenFlow connection while a
request was still in ``drain()``, ``close()`` failed the reply future and nobody read it, so asyncio
logged "Future exception was never retrieved" at error level, thousands of times per run.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from contivpy.ofnet import codec, switch
from contivpy.ofnet.switch import OfSwitch


class _Writer:
    """A transport whose ``drain()`` blocks until the switch is closed, then fails like a reset."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closing.set()

    async def drain(self) -> None:
        await self.closing.wait()
        raise ConnectionResetError("Connection lost")


async def _cut_request() -> list[dict]:
    seen: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        sw = OfSwitch(None, _Writer(), None)  # type: ignore[arg-type]
        task = asyncio.create_task(sw.request(codec.echo_request(b"tpc")))
        await asyncio.sleep(0)
        sw.close()
        with pytest.raises(ConnectionResetError):
            await task
        del task
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    return [c for c in seen if "never retrieved" in str(c.get("message", ""))]


async def test_request_cut_by_close_during_drain_leaves_no_unretrieved_future():
    assert await _cut_request() == []


async def test_the_check_sees_the_problem_without_the_fix(monkeypatch):
    monkeypatch.setattr(switch, "_consume", lambda fut: None)
    assert len(await _cut_request()) == 1
