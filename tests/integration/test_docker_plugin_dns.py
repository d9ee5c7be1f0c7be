"""The agent's DNS answers (names.py) over a name table built from real etcd state."""

from __future__ import annotations

import json
import uuid

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from contivpy.model import keys
from contivpy.netplugin.docker.names import NameTable, answer

pytestmark = pytest.mark.etcd


@pytest.fixture
async def table(etcd_kv):
    t = f"tdk{uuid.uuid4().hex[:6]}"
    recs = {
        f"n.{t}-e1": {
            "netID": f"n.{t}",
            "ipAddress": "10.5.0.1",
            "epCommonName": "Web1",
            "serviceName": "web",
        },
        f"n.{t}-e2": {
            "netID": f"n.{t}",
            "ipAddress": "10.5.0.2",
            "epCommonName": "web2",
            "serviceName": "web",
        },
        f"n.{t}x-e3": {"netID": f"n.{t}x", "ipAddress": "10.5.0.3", "epCommonName": "secret"},
    }
    for k, v in recs.items():
        await etcd_kv.put(keys.ep_state(k), json.dumps(v))
    await etcd_kv.put(
        keys.SERVICE_LB + f"svc1:{t}",
        json.dumps({"servicename": "svc1", "tenantname": t, "ipaddress": "10.5.0.200"}),
    )
    nt = NameTable(etcd_kv)
    await nt.rebuild()
    yield nt, t
    for k in recs:
        await etcd_kv.delete(keys.ep_state(k))
    await etcd_kv.delete(keys.SERVICE_LB + f"svc1:{t}")


def ask(nt, tenant, name, rdtype="A"):
    q = dns.message.make_query(name, rdtype)
    return dns.message.from_wire(answer(nt, tenant, q.to_wire()))


def ips(r):
    return sorted(rd.address for rr in r.answer for rd in rr)


async def test_names_groups_services_in_tenant(table):
    nt, t = table
    r = ask(nt, t, "web1")  # case-insensitive
    assert r.rcode() == dns.rcode.NOERROR and ips(r) == ["10.5.0.1"] and r.flags & dns.flags.AA
    assert r.answer[0].ttl == 120
    assert ips(ask(nt, t, "web.")) == ["10.5.0.1", "10.5.0.2"]
    assert ips(ask(nt, t, "svc1")) == ["10.5.0.200"]
    r = ask(nt, t, "web1", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


async def test_other_tenant_and_unknown_names_refused(table):
    nt, t = table
    assert ask(nt, t, "secret").rcode() == dns.rcode.REFUSED
    assert ips(ask(nt, f"{t}x", "secret")) == ["10.5.0.3"]
    assert ask(nt, t, "example.com").rcode() == dns.rcode.REFUSED


async def test_garbage_is_dropped(table):
    nt, t = table
    assert answer(nt, t, b"\x00\x01garbage") is None
