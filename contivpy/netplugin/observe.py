"""netplugin's probes and metrics on the debug REST server (docs/rest-api.md, "Health and metrics").

``install(app, agent)`` adds
- ``GET /healthz``: 200 while the process runs (the debug server starts before anything else);
- ``GET /readyz``: 200 once etcd answers a read within 2 s and the first sync is done (every
  listed key tried once, local endpoints re-bound, stale state pruned: ``agent.ready``), else 503;
  until the sync is done the etcd check's answer is reused for 1 s (a start-up probed every few ms
  costs no store read per probe), afterwards every probe reads;
- ``GET /metrics`` with the state read at scrape time from the agent:
  ``contiv_netplugin_endpoints{kind=local|remote}``, ``contiv_netplugin_flows{bridge,table}``
  (flows installed, by OpenFlow table name), ``contiv_netplugin_openflow_connected{bridge}``,
  ``contiv_netplugin_ovsdb_connected``,
  ``contiv_netplugin_ready``, ``contiv_netplugin_served_networks`` (networks whose endpoints it
  watches, netplugin/served.py), ``contiv_netplugin_reconcile_queue_depth{reconciler}``,
  ``contiv_netplugin_reconcile_backoff_keys{reconciler}``,
  ``contiv_netplugin_reconcile_failures_total{reconciler}`` and
  ``contiv_netplugin_reconcile_retries_total{reconciler}``; plus the event metrics of
  common/metrics.py (etcd requests, Docker plugin and CNI calls, requests to netmaster).
The collector is unregistered when the application is cleaned up.
"""

from __future__ import annotations

import time
from collections import Counter

from aiohttp import web

from contivpy.common import health, metrics
from contivpy.common.metrics import Family


def _collect(agent) -> list[Family]:
    eps = Family("gauge", "contiv_netplugin_endpoints", "Endpoints known to this agent", ("kind",))
    eps.add(len(agent.endpoints.local), "local").add(len(agent.remote.applied), "remote")
    flows = Family(
        "gauge",
        "contiv_netplugin_flows",
        "OpenFlow flows installed, by bridge and table",
        ("bridge", "table"),
    )
    conn = Family(
        "gauge",
        "contiv_netplugin_openflow_connected",
        "1 while the bridge's switch is connected",
        ("bridge",),
    )
    for br, fp in sorted(agent.dp.flows.items()):
        conn.add(1 if fp.connected() else 0, br)
        per_table = Counter(getattr(f.table, "name", str(f.table)) for f in fp.agent.cache.installed_flows())
        for table, n in sorted(per_table.items()):
            flows.add(n, br, table)
    ovsdb = Family("gauge", "contiv_netplugin_ovsdb_connected", "1 while the OVSDB session is open").add(
        1 if agent.dp.ovs.connected else 0
    )
    lab = ("reconciler",)
    depth = Family(
        "gauge", "contiv_netplugin_reconcile_queue_depth", "Keys waiting for a reconcile worker", lab
    )
    backoff = Family("gauge", "contiv_netplugin_reconcile_backoff_keys", "Keys waiting to be retried", lab)
    failures = Family("counter", "contiv_netplugin_reconcile_failures", "Failed reconcile runs", lab)
    retries = Family(
        "counter", "contiv_netplugin_reconcile_retries", "Reconcile retries after a backoff", lab
    )
    for r in agent.reconcilers:
        depth.add(r.queue_depth(), r.name)
        backoff.add(r.backing_off(), r.name)
        failures.add(r.failures, r.name)
        retries.add(r.retries, r.name)
    ready = Family("gauge", "contiv_netplugin_ready", "1 once the first sync is done").add(
        1 if agent.ready.is_set() else 0
    )
    served = Family(
        "gauge",
        "contiv_netplugin_served_networks",
        "Networks whose endpoints this agent watches (netplugin/served.py)",
    ).add(len(agent.ep_watches.networks()))
    gcb = Family(
        "counter", "contiv_netplugin_group_commit_batches", "Batches written by a group commit", ("writer",)
    )
    gci = Family(
        "counter", "contiv_netplugin_group_commit_items", "Requests written by a group commit", ("writer",)
    )
    writers = [agent.dp.ovs._adds, *agent.dp._ep_adds.values(), agent.endpoints._commits]
    for w in writers:
        gcb.add(w.batches, w.name)
        gci.add(w.items, w.name)
    return [eps, flows, conn, ovsdb, depth, backoff, failures, retries, ready, served, gcb, gci]


def install(app: web.Application, agent) -> None:
    last: list = [0.0, None]  # (monotonic time, result) of the last etcd check during the start

    async def checks() -> dict[str, tuple[bool, str]]:
        synced = agent.ready.is_set()
        now = time.monotonic()
        if not synced and last[1] is not None and now - last[0] < 1.0:
            etcd = last[1]  # probes polled fast during the start: at most one store read a second
        else:
            etcd = await health.etcd_check(agent.kv)
            last[:] = [now, etcd]
        return {"etcd": etcd, "sync": (synced, "first sync done" if synced else "first sync in progress")}

    health.add_routes(app, checks)
    metrics.add_route(app)
    unregister = metrics.register(lambda: _collect(agent))

    async def _cleanup(_app: web.Application) -> None:
        unregister()

    app.on_cleanup.append(_cleanup)


__all__ = ["install"]
