"""The list+watch loop of common/k8sapi.py against the STAND-IN Kubernetes API server (no etcd).

Covers what the netmaster tests do not reach directly: ``410 Gone`` as an HTTP status (the
netmaster tests use the ERROR-event form), a handler that fails on one object, and the order of
list/replace, events and resume.
"""

from __future__ import annotations

import asyncio

from contivpy.common import k8sapi
from tests.support.k8s_standin import K8sStandIn, namespace


class Recorder:
    def __init__(self) -> None:
        self.replaced: list[list[str]] = []
        self.events: list[tuple[str, str]] = []

    async def replace(self, kind, items):
        self.replaced.append(sorted(i["metadata"]["name"] for i in items))

    async def event(self, kind, typ, obj):
        name = obj["metadata"]["name"]
        if name.startswith("bad"):
            raise ValueError("cannot translate this one")
        self.events.append((typ, name))


async def _until(cond, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def _run(standin: K8sStandIn, rec: Recorder, body):
    client = k8sapi.KubeClient(k8sapi.K8sConfig(server=standin.url), watch_timeout=30)
    inf = k8sapi.Informer(client, "Namespace", rec)
    task = asyncio.create_task(inf.run())
    try:
        await _until(lambda: inf.synced.is_set() and standin.watch_count() == 1)
        await body(inf)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def test_k8s_standin_informer_http_410_relist_and_bad_object(caplog):
    standin = await asyncio.to_thread(lambda: K8sStandIn(gone_as_http=True).start())
    rec = Recorder()
    try:
        await asyncio.to_thread(standin.apply, "Namespace", namespace("tki-a"))

        async def body(inf):
            assert rec.replaced == [["tki-a"]] and inf.lists == 1
            for name in ("bad-1", "tki-b"):  # the bad one is logged and skipped, the next one arrives
                await asyncio.to_thread(standin.apply, "Namespace", namespace(name))
            await _until(lambda: ("ADDED", "tki-b") in rec.events)
            assert "Namespace /bad-1 skipped: cannot translate this one" in caplog.text
            # disconnect: resumed at the last version, no LIST
            await asyncio.to_thread(standin.drop_watches)
            await asyncio.to_thread(standin.delete, "Namespace", "", "tki-a")
            await _until(lambda: ("DELETED", "tki-a") in rec.events)
            assert inf.lists == 1
            # expired history answered with HTTP 410: LIST again, the gap's change is in it
            await _until(lambda: standin.watch_count() == 1)
            await asyncio.to_thread(standin.expire)
            await asyncio.to_thread(standin.drop_watches)
            await asyncio.to_thread(standin.apply, "Namespace", namespace("tki-c"))
            await _until(lambda: inf.lists == 2)
            assert rec.replaced[-1] == ["bad-1", "tki-b", "tki-c"]
            assert ("ADDED", "tki-c") not in rec.events  # seen through the LIST, not replayed

        await _run(standin, rec, body)
    finally:
        await asyncio.to_thread(standin.stop)


async def test_k8s_standin_informer_retries_an_unreachable_server(caplog):
    client = k8sapi.KubeClient(k8sapi.K8sConfig(server="http://127.0.0.1:9"), watch_timeout=5)
    inf = k8sapi.Informer(client, "Pod", Recorder())
    task = asyncio.create_task(inf.run())
    try:
        await _until(lambda: caplog.text.count("Pod list failed") >= 2)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
