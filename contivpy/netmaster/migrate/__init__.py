"""Import of an original Contiv cluster's etcd v2 state into contivpy's v3 layout (docs/upgrade.md).

Modules
- ``source``:  read the original's keyspace: a live etcd through the v2 HTTP API, or a JSON dump.
- ``convert``: pure functions: v2 key/values -> contivpy key/values + a ``Report`` (what was
  converted, added, skipped, and every problem found, key by key, with its repair).
- ``writer``:  write a converted plan into the target etcd (v3) in bounded txns behind an intent
  record, resumable and idempotent.
- ``cli``:     ``netmaster migrate ...`` (the command line; docs/cli.md).

Invariant: nothing is written unless the whole source converted without an unrepaired problem.
"""
