"""Concurrent endpoint creates commit together (managers/endpoint.py, step 5 and "Concurrent
creates share their writes"): one etcd txn for the creates that come while one is in flight, with
the CAS on the host's port record kept, and one create's failure isolated from the others."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from contivpy.common.errors import StoreError
from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.model.state import OperEndpoint, OvsDriverOper
from contivpy.netplugin.managers.endpoint import EndpointService


class CountingKV(MemoryKV):
    """MemoryKV counting txns; a txn that writes the oper record of an endpoint in ``refuse``
    fails with a StoreError (as an etcd request refused whole would)."""

    def __init__(self) -> None:
        super().__init__()
        self.txns: list[list[str]] = []
        self.refuse: set[str] = set()
        self.before_txn = None

    async def txn(self, compares, success, failure=()):
        if self.before_txn is not None:
            hook, self.before_txn = self.before_txn, None
            await hook()
        written = [op.key for op in success]
        self.txns.append(written)
        if any(keys.ep_oper(e) in written for e in self.refuse):
            raise StoreError("etcd txn failed: request is too large")
        return await super().txn(compares, success, failure)


def service(kv) -> EndpointService:
    return EndpointService(SimpleNamespace(host="h1", mtu="1450"), kv, dp=None, nets=None, netmaster=None)


def oper(ep: str) -> OperEndpoint:
    return OperEndpoint(id=ep, netID="n.default", endpointID=ep, homingHost="h1", ipAddress="10.1.0.1")


async def record(kv) -> OvsDriverOper:
    return OvsDriverOper.from_json((await kv.get(keys.ovs_driver_oper("h1"))).value)


async def commit_all(svc, eps, start=1):
    ns = {}
    for i, ep in enumerate(eps, start):
        svc._reserved[ep] = ns[ep] = i
    svc._last_port = start + len(eps) - 1
    return await asyncio.gather(
        *(svc._commit(ep, ns[ep], "", "vxlan", oper(ep)) for ep in eps), return_exceptions=True
    )


async def test_concurrent_commits_share_one_txn_and_keep_every_entry():
    kv = CountingKV()
    svc = service(kv)
    eps = [f"ep{i}" for i in range(6)]
    assert await commit_all(svc, eps) == [None] * 6
    assert len(kv.txns) == 1  # all six queued before the first batch went out
    rec = await record(kv)
    assert sorted(rec.LocalEpInfo) == eps and rec.currPortNum == 6
    assert rec.LocalEpInfo["ep2"]["Ovsportname"] == "vvport3"
    for ep in eps:
        assert await kv.get(keys.ep_oper(ep)) is not None
    assert svc._reserved == {}


async def test_a_refused_commit_fails_only_its_own_create():
    kv = CountingKV()
    svc = service(kv)
    kv.refuse = {"bad"}
    res = await commit_all(svc, ["a", "bad", "b"])
    assert res[0] is None and res[2] is None
    assert isinstance(res[1], StoreError)
    assert len(kv.txns) == 4  # the batch (refused), then each alone
    rec = await record(kv)
    assert sorted(rec.LocalEpInfo) == ["a", "b"]
    assert await kv.get(keys.ep_oper("bad")) is None
    assert svc._reserved == {"bad": 2}  # still held: the create's rollback (_forget) drops it


async def test_the_port_record_cas_still_holds_for_a_batch():
    kv = CountingKV()
    svc = service(kv)
    assert await commit_all(svc, ["x"]) == [None]

    async def foreign_write():  # someone else rewrote the record after the agent's last write
        rec = await record(kv)
        rec.LocalEpInfo["other"] = {"Ovsportname": "vvport99", "EpgKey": "", "BridgeType": "vxlan"}
        await kv.put(keys.ovs_driver_oper("h1"), rec.to_json())

    kv.before_txn = foreign_write
    assert await commit_all(svc, ["y", "z"], start=2) == [None, None]
    assert len(kv.txns) == 3  # the stale compare failed once, the record was read again
    assert sorted((await record(kv)).LocalEpInfo) == ["other", "x", "y", "z"]
