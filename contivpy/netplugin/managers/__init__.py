"""Level-triggered managers of the netplugin agent, one key-based reconciler each (common/reconcile.py).

Each manager keeps the desired state from etcd events in ``on_update`` (synchronous, no I/O) and enqueues
the key it touched; its ``reconcile(key)`` reads the desired and applied state of that one key and
converges the datapath (add, change or remove). A failing key is retried with its own backoff and never
holds up another key, so a delete that would clear a bad key is processed at once.

Dependency order without a global pass:
- a remote endpoint is installed only once its network (and, for VXLAN, its VTEP) is applied; until
  then its reconcile leaves it pending, and the network/VTEP manager re-enqueues the endpoints that
  wait for it when it applies (``dependents`` callbacks);
- a network is removed only when no remote or local endpoint uses it any more; the last user going
  re-enqueues the network key;
- a VTEP or network leaves ``applied`` *before* its removal is awaited, and a remote endpoint enters
  ``applied`` before its install is awaited, so two managers working concurrently never program an
  endpoint onto a network or VTEP that is being torn down.
``apply()`` on every manager converges every known key once, in order (tests, and a full resync).
The daemon lists every prefix before the workers start (``Reconciler.mark_synced``), so nothing is
programmed from a partial view and a restarted agent converges to the same datapath.
"""
