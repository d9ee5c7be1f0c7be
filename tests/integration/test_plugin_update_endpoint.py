"""netmaster /plugin/updateEndpoint records a container's name and id in the endpoint state (the
Docker plugin calls it after Join; every agent's name server answers from that state)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contivpy.common.kv.base import Compare, Put
from contivpy.model import keys
from contivpy.netmaster.api.errors import error_middleware
from contivpy.netmaster.api.plugin_routes import add_plugin_routes
from contivpy.netmaster.config import Config
from contivpy.netmaster.crud import Crud
from contivpy.netmaster.endpoints import Allocator

SID = "tdn-n.default-ep0123456789abcdef"


@pytest.fixture
async def cli(kv):
    crud = Crud(kv, Config(cluster_mode="test"))
    await crud.ensure_defaults("bridge")
    await crud.create_or_update(
        "network",
        "default:tdn-n",
        {"tenantName": "default", "networkName": "tdn-n", "encap": "vxlan", "subnet": "20.7.1.0/24"},
    )
    app = web.Application(middlewares=[error_middleware])  # netmaster's one error mapping
    add_plugin_routes(app, Allocator(kv))
    async with TestClient(TestServer(app)) as c:
        r = await c.post(
            "/plugin/createEndpoint",
            json={"TenantName": "default", "NetworkName": "tdn-n", "EndpointID": "ep0123456789abcdef",
                  "ConfigEP": {"Container": "ep0123456789abcdef", "Host": "h1", "IPAddress": ""}},
        )  # fmt: skip
        assert r.status == 200, await r.text()
        yield c


async def state(kv) -> dict:
    return json.loads((await kv.get(keys.ep_state(SID))).value)


async def test_update_endpoint_sets_name_and_container(cli, kv):
    before = await state(kv)
    r = await cli.post(
        "/plugin/updateEndpoint",
        json={
            "EndpointID": SID,
            "EPCommonName": "cbox1",
            "ContainerID": "c0ffee",
            "IPAddress": before["ipAddress"],
        },
    )
    assert r.status == 200 and await r.json() == {"IPAddress": before["ipAddress"]}
    after = await state(kv)
    assert (after["epCommonName"], after["containerId"]) == ("cbox1", "c0ffee")
    assert {k: v for k, v in after.items() if k not in ("epCommonName", "containerId")} == {
        k: v for k, v in before.items() if k not in ("epCommonName", "containerId")
    }
    rev = (await kv.get(keys.ep_state(SID))).mod_revision
    r = await cli.post("/plugin/updateEndpoint", json={"EndpointID": SID, "EPCommonName": "cbox1"})
    assert r.status == 200
    assert (await kv.get(keys.ep_state(SID))).mod_revision == rev  # unchanged: no write


async def test_concurrent_updates_and_other_writers_lose_nothing(cli, kv):
    # a name update racing with another writer of the same record: CAS keeps both changes
    ok = 0

    async def other_writer():
        nonlocal ok
        for _ in range(10):
            kvp = await kv.get(keys.ep_state(SID))
            st = json.loads(kvp.value)
            st["labels"] = {"n": str(int((st.get("labels") or {}).get("n", "0")) + 1)}
            res = await kv.txn(
                [Compare(kvp.key, "mod", "==", kvp.mod_revision)], [Put(kvp.key, json.dumps(st))]
            )
            ok += res.succeeded
            await asyncio.sleep(0)

    rs = await asyncio.gather(
        other_writer(),
        *(
            cli.post("/plugin/updateEndpoint", json={"EndpointID": SID, "EPCommonName": f"n{i}"})
            for i in range(5)
        ),
    )
    assert all(r.status == 200 for r in rs[1:])
    st = await state(kv)
    assert st["epCommonName"] in {f"n{i}" for i in range(5)}
    assert ok and st["labels"] == {"n": str(ok)}  # every successful write of the other writer kept


async def test_update_endpoint_errors_leave_state_untouched(cli, kv):
    before = await state(kv)
    r = await cli.post("/plugin/updateEndpoint", json={"EndpointID": "nosuch.default-x", "EPCommonName": "a"})
    assert r.status == 500 and "endpoint nosuch.default-x not found" in await r.text()
    r = await cli.post("/plugin/updateEndpoint", json={"EndpointID": SID, "EPCommonName": 5})
    assert r.status == 500 and await r.text() == (
        "json: cannot unmarshal number into Go struct field UpdateEndpointRequest.EPCommonName of type string\n"
    )
    # without EndpointID (service-provider events only): nothing is written
    r = await cli.post("/plugin/updateEndpoint", json={"IPAddress": "20.7.1.1", "Event": "start"})
    assert r.status == 200
    assert await state(kv) == before


async def test_update_endpoint_stores_aliases_and_refuses_bad_ones(cli, kv):
    """contivpy's ``Aliases`` (docker run --network-alias) go into the endpoint state (so every
    host's name server answers them); bad ones are refused before any write; a record without
    aliases keeps the original's fields only."""
    before = await state(kv)
    assert "aliases" not in before
    body = {
        "EndpointID": SID,
        "EPCommonName": "cbox1",
        "Aliases": ["db", "db.primary", "db"],
        "Event": "start",
    }
    r = await cli.post("/plugin/updateEndpoint", json=body)
    assert r.status == 200, await r.text()
    after = await state(kv)
    assert after["aliases"] == ["db", "db.primary"] and after["epCommonName"] == "cbox1"
    rev = (await kv.get(keys.ep_state(SID))).mod_revision
    for bad, msg in (
        (["ok", "white space"], "invalid alias 'white space': a DNS name is expected"),
        (["-lead"], "invalid alias '-lead'"),
        (["a" * 254], "a DNS name is expected"),
        ([f"a{i}" for i in range(65)], "too many Aliases (65): at most 64"),
        (
            "db",
            "json: cannot unmarshal string into Go struct field UpdateEndpointRequest.Aliases of type []string",
        ),
        (
            [1],
            "json: cannot unmarshal number into Go struct field UpdateEndpointRequest.Aliases of type string",
        ),
    ):
        r = await cli.post(
            "/plugin/updateEndpoint", json={"EndpointID": SID, "EPCommonName": "x", "Aliases": bad}
        )
        text = await r.text()
        assert r.status == 500 and msg in text and "Traceback" not in text, (bad, text)
    assert (await kv.get(keys.ep_state(SID))).mod_revision == rev
