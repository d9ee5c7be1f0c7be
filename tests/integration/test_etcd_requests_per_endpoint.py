"""etcd requests per endpoint create and delete, counted, on the two-host test bed (real etcd,
netmaster, OVS, agents): the budget docs/benchmarks.md ("etcd requests per endpoint") reports.

Endpoints are created and deleted through the agent's endpoint API (the Docker plugin's path),
sequentially, after a warm-up endpoint (the first create of a network reads its records; later
ones trust the records this process wrote, which their txns compare). The counts come from the
``contiv_etcd_*`` counters of the daemons' /metrics (tests/support/etcdcount.py) and are exact:

- per create: netmaster ONE txn and no read (its leader beat, a lease keep-alive and a read of
  the lock every 2 s, is timer-driven and allowed for); the creating agent ONE txn (port record + oper
  record), no range read, and at most one route read per second (the netmaster route);
- per delete: netmaster ONE txn, the agent ONE txn;
- the other host receives at most 3 watch events per create and per delete, without the previous
  values (a /16 network's state record is ~11 kB: with etcd's prev_kv every create would deliver
  it twice);
- flows are installed when the create returns (checked on the creating host).
A regression that adds an etcd request to either path fails here.
"""

from __future__ import annotations

import math
import time

import pytest

from tests.fixtures.testbed import Testbed
from tests.integration.test_dataplane_basic import create_ep, delete_ep
from tests.support import etcdcount as ec

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

N = 8
NET, SUBNET = "eqnet", "10.121.0.0/16"


def _create(host, ep: str) -> dict:
    return create_ep(host, NET, ep, timeout=60)


def _delete(host, ep: str) -> None:
    delete_ep(host, NET, ep, timeout=60)


def _phase(urls, costs, fn) -> tuple[dict[str, dict[str, float]], float]:
    before = ec.settle(urls, costs)
    t0 = time.monotonic()
    fn()
    took = time.monotonic() - t0
    after = ec.settle(urls, costs)
    return {p: ec.delta(after[p], before[p], costs.get(p)) for p in urls}, took


def test_etcd_requests_per_endpoint_create_and_delete():
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network(NET, SUBNET)
        urls = {"netmaster": bed.netmaster_url, "h1": h1.debug_url, "h2": h2.debug_url}
        costs = {"netmaster": ec.SCRAPE_COST}
        _create(h1, "eqwarm")  # the network's records read once; the agent's port record too
        netrec = bed.etcdctl("get", f"/contiv.io/state/nets/{NET}.default", "--print-value-only")
        assert len(netrec) > 8000  # the /16 bitmap: prev_kv would show in the byte counts

        ips: list[str] = []

        def creates():
            for i in range(N):
                ips.append(_create(h1, f"eq{i}")["ip_address"])

        per, took = _phase(urls, costs, creates)
        flows = "\n".join(h1.flows())
        for ip in ips:  # installed when the call returned (nothing was waited for but the counters)
            assert f"nw_dst={ip}" in flows
        nm, a1, a2 = per["netmaster"], per["h1"], per["h2"]
        route_reads = math.ceil(took) + 1  # the agent reads the netmaster route at most once a second
        assert nm.get("req:txn", 0) == N and ec.writes(nm) == N, nm
        # no read: the only ranges are the leader's beat (a lease keep-alive + a read of its lock)
        assert nm.get("req:txn_read", 0) == 0 and nm.get("req:range_prefix", 0) == 0, nm
        assert nm.get("req:range", 0) <= nm.get("req:lease_keepalive", 0), nm
        assert a1.get("req:txn", 0) == N and ec.writes(a1) == N, a1
        assert a1.get("req:range", 0) == 0 and a1.get("req:range_prefix", 0) == 0, a1
        assert a1.get("req:txn_read", 0) <= min(N, route_reads), a1
        events = sum(v for k, v in a2.items() if k.startswith("events:"))
        assert events <= 3 * N, a2
        # every event once: the network record (~11 kB, base64 in JSON) per create, not twice
        assert a2.get("recv:watch", 0) < N * (len(netrec) * 4 / 3 + 3000), a2

        per, took = _phase(urls, costs, lambda: [_delete(h1, f"eq{i}") for i in range(N)])
        nm, a1, a2 = per["netmaster"], per["h1"], per["h2"]
        assert nm.get("req:txn", 0) == N and ec.writes(nm) == N, nm
        assert a1.get("req:txn", 0) == N and ec.writes(a1) == N, a1
        assert a1.get("req:range", 0) == 0 and a1.get("req:range_prefix", 0) == 0, a1
        assert a1.get("req:txn_read", 0) <= min(N, math.ceil(took) + 1), a1
        assert sum(v for k, v in a2.items() if k.startswith("events:")) <= 3 * N, a2
        flows = "\n".join(h1.flows())
        for ip in ips:
            assert f"nw_dst={ip}" not in flows
        _delete(h1, "eqwarm")
