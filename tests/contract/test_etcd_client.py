"""EtcdKV's own etcd client (common/kv/etcdhttp.py: etcd's JSON gateway over HTTP/1.1) against a
real etcd: what the gRPC client did for us and ours must do itself.

- a watch whose HTTP stream drops (a TCP proxy in the test cuts every connection) resumes from
  the next revision it owes: nothing lost, nothing twice;
- pooled keep-alive connections that etcd closed (restart) are not used for a write;
- etcd's limits (request size, operations per txn) come back as StoreError messages saying what
  to change, never etcd's raw text;
- the first endpoint of a list being down costs nothing; large and non-ASCII keys/values and many
  concurrent calls go through.
Keys live under /tkvc/; the fixtures wipe the keyspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest

from contivpy.common.errors import StoreError
from contivpy.common.kv import Compare, Put
from contivpy.common.kv.etcd import EtcdKV

pytestmark = pytest.mark.etcd
P = "/tkvc/"


class CutProxy:
    """A TCP proxy on 127.0.0.1 to ``port``; ``cut()`` closes every connection it carries."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            w.close()
            return
        self.writers |= {w, uw}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        self.writers -= {w, uw}

    def cut(self) -> None:
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def proxied(etcd_server):
    await etcd_server.aetcdctl("del", "", "--from-key")
    proxy = CutProxy(etcd_server.port)
    await proxy.start()
    store = EtcdKV("127.0.0.1", proxy.port)
    try:
        yield proxy, store
    finally:
        await store.close()
        await proxy.stop()
        await etcd_server.aetcdctl("del", "", "--from-key")


async def take(it, n: int, timeout: float = 10.0) -> list[tuple]:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            ev = await anext(it)
            out.append((ev.type, ev.key, ev.value))
    return out


async def test_watch_resumes_after_the_http_stream_drops(etcd_server, proxied):
    proxy, store = proxied
    _, rev = await store.get_prefix(P)
    it = store.watch_prefix(P, rev + 1)
    try:
        await store.put(P + "a", "1")
        assert await take(it, 1) == [("put", P + "a", "1")]
        for round_ in range(3):
            proxy.cut()  # the watch stream and every pooled connection drop
            # written by another client while ours has no stream: must still be delivered, once
            await etcd_server.aetcdctl("put", P + f"during{round_}", str(round_))
            assert await take(it, 1) == [("put", P + f"during{round_}", str(round_))]
        await store.delete(P + "a")
        assert await take(it, 1) == [("delete", P + "a", "")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                raise AssertionError(f"unexpected event {await anext(it)}")
        assert proxy.accepted >= 4  # the watch really reconnected each time
    finally:
        await it.aclose()


async def test_calls_after_the_connections_were_cut(proxied):
    proxy, store = proxied
    await store.put(P + "k", "1")
    proxy.cut()
    await asyncio.sleep(0.1)
    # the pooled connection is dead: a write must not be sent on it (and must not fail)
    assert await store.put(P + "k", "2") > 0
    proxy.cut()
    await asyncio.sleep(0.1)
    assert (await store.get(P + "k")).value == "2"


async def test_first_write_after_an_etcd_restart_succeeds(etcd_server, etcd_kv):
    await etcd_kv.put(P + "k", "1")
    assert (await etcd_kv.get(P + "k")).value == "1"  # a pooled keep-alive connection
    await asyncio.to_thread(etcd_server.stop)
    await asyncio.to_thread(etcd_server.start)
    res = await etcd_kv.txn([Compare(P + "k", "value", "==", "1")], [Put(P + "k", "2")])
    assert res.succeeded
    assert (await etcd_kv.get(P + "k")).value == "2"


async def test_request_too_large_is_a_clear_error(etcd_server, etcd_kv):
    # over etcd's --max-request-bytes (1.5 MiB by default), and over its gRPC message limit (2 MiB)
    for size in (1_600_000, 2_200_000):
        with pytest.raises(StoreError) as exc:
            await etcd_kv.put(P + "big", "x" * size)
        text = str(exc.value)
        assert text.startswith("etcd put failed: request too large for etcd ("), text
        assert text.endswith("start etcd with a larger --max-request-bytes"), text
    assert await etcd_kv.get(P + "big") is None
    assert await etcd_kv.put(P + "small", "x") > 0  # the connection pool is still usable


async def test_too_many_txn_operations_is_a_clear_error(etcd_kv):
    ops = [Put(P + f"k{i}", "v") for i in range(129)]  # etcd's default --max-txn-ops is 128
    with pytest.raises(StoreError) as exc:
        await etcd_kv.txn([], ops)
    text = str(exc.value)
    assert text.startswith("etcd txn failed: too many operations in one etcd transaction ("), text
    assert text.endswith("start etcd with a larger --max-txn-ops"), text
    kvs, _ = await etcd_kv.get_prefix(P)
    assert kvs == []


async def test_dead_first_endpoint_fails_over(etcd_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens once the socket is closed
    store = EtcdKV(endpoints=[("127.0.0.1", dead), (etcd_server.host, etcd_server.port)], timeout=3)
    try:
        await store.put(P + "x", "1")
        assert (await store.get(P + "x")).value == "1"
        lease = await store.grant_lease(5)
        await store.keepalive(lease)
        await store.revoke_lease(lease)
    finally:
        await store.delete_prefix(P)
        await store.close()


async def test_large_and_non_ascii_values_and_watch(etcd_kv):
    big = json.dumps({"bitmap": "ab" * 400_000})  # 800 kB: larger than any read buffer
    key = P + "ünï/κλειδί"
    _, rev = await etcd_kv.get_prefix(P)
    it = etcd_kv.watch_prefix(P, rev + 1)
    try:
        await etcd_kv.put(key, big)
        await etcd_kv.put(P + "emoji", '🙂 \n\t"quoted"')
        assert (await etcd_kv.get(key)).value == big
        assert (await etcd_kv.get(P + "emoji")).value == '🙂 \n\t"quoted"'
        evs = await take(it, 2)
        assert evs == [("put", key, big), ("put", P + "emoji", '🙂 \n\t"quoted"')]
        await etcd_kv.put(P + "empty", "")
        got = await etcd_kv.get(P + "empty")
        assert got is not None and got.value == ""
    finally:
        await it.aclose()


async def test_many_concurrent_calls(etcd_kv):
    await asyncio.gather(*(etcd_kv.put(P + f"c{i:03}", str(i)) for i in range(300)))
    got = await asyncio.gather(*(etcd_kv.get(P + f"c{i:03}") for i in range(300)))
    assert [g.value for g in got] == [str(i) for i in range(300)]
    kvs, _ = await etcd_kv.get_prefix(P)
    assert len(kvs) == 300
    assert len(etcd_kv._http._idle) <= 32  # the pool keeps a bounded number of idle connections


async def test_status(etcd_kv):
    st = await etcd_kv.status()
    assert st["version"].startswith("3.")


def test_client_switch(monkeypatch):
    """CONTIVPY_ETCD_CLIENT picks the client: http (default) or grpc (aetcd, optional); anything
    else, or grpc without aetcd, is refused with a message (both daemons check it at start)."""
    import importlib.util

    from contivpy.common.errors import ValidationError
    from contivpy.common.kv import etcd_client_problem, open_store
    from contivpy.netmaster import config as nm_config
    from contivpy.netplugin import config as np_config

    monkeypatch.delenv("CONTIVPY_ETCD_CLIENT", raising=False)
    assert type(open_store("http://127.0.0.1:2379")).__name__ == "EtcdKV"
    assert etcd_client_problem({"CONTIVPY_ETCD_CLIENT": "grpc"}) == (
        ""
        if importlib.util.find_spec("aetcd")
        else "CONTIVPY_ETCD_CLIENT=grpc needs the aetcd package (pip install 'contivpy[etcd-grpc]')"
    )
    bad = {"CONTIVPY_ETCD_CLIENT": "carrier-pigeon"}
    assert etcd_client_problem(bad) == "invalid CONTIVPY_ETCD_CLIENT 'carrier-pigeon' (use http or grpc)"
    base = ["--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge"]
    with pytest.raises(nm_config.ConfigError, match="invalid CONTIVPY_ETCD_CLIENT"):
        nm_config.build(nm_config.parse_args(base), env=bad)
    with pytest.raises(np_config.ConfigError, match="invalid CONTIVPY_ETCD_CLIENT"):
        np_config.parse([*base, "--host", "h1"], env=bad)
    monkeypatch.setenv("CONTIVPY_ETCD_CLIENT", "carrier-pigeon")
    with pytest.raises(ValidationError):
        open_store("http://127.0.0.1:2379")


async def test_grpc_fallback_client(etcd_server, monkeypatch):
    """The aetcd fallback (CONTIVPY_ETCD_CLIENT=grpc) still works and maps etcd's limits the same
    way (the whole contract suite: ``CONTIVPY_ETCD_CLIENT=grpc pytest tests/contract``)."""
    pytest.importorskip("aetcd")
    from contivpy.common.kv import open_store

    monkeypatch.setenv("CONTIVPY_ETCD_CLIENT", "grpc")
    kv = open_store(etcd_server.url)
    try:
        assert type(kv).__name__ == "EtcdGrpcKV"
        _, rev = await kv.get_prefix(P)
        it = kv.watch_prefix(P, rev + 1)
        res = await kv.txn([Compare(P + "a", "version", "==", 0)], [Put(P + "a", "1")])
        assert res.succeeded
        assert await take(it, 1) == [("put", P + "a", "1")]
        await it.aclose()
        lease = await kv.grant_lease(5)
        await kv.keepalive(lease)
        await kv.revoke_lease(lease)
        with pytest.raises(StoreError, match="too many operations in one etcd transaction"):
            await kv.txn([], [Put(P + f"k{i}", "v") for i in range(129)])
        with pytest.raises(StoreError, match="request too large for etcd"):
            await kv.put(P + "big", "x" * 1_600_000)
        assert (await kv.status())["version"].startswith("3.")
    finally:
        await kv.delete_prefix(P)
        await kv.close()
