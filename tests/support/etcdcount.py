"""Count the etcd requests of the daemons from their /metrics (bench and tests share this).

Design
- ``snapshot(url)`` reads one daemon's ``/metrics`` and keeps the etcd counters of
  common/metrics.py: ``contiv_etcd_requests_total{kind}``, ``contiv_etcd_bytes_total{kind,direction}``
  and ``contiv_etcd_watch_events_total{prefix}``, as a flat ``{name: value}`` dict
  (``req:<kind>``, ``sent:<kind>``, ``recv:<kind>``, ``events:<prefix>``).
- ``delta(after, before)`` subtracts two snapshots; ``writes(d)`` sums the write requests
  (txn, put, deleterange) of a delta.
- netmaster's ``/metrics`` (on the leader) reads etcd before it answers (3 range_prefix + 1
  txn_read per scrape, api/observe.py): ``SCRAPE_COST`` lists them. Every snapshot carries the
  number of scrapes of its URL so far (``scrape#``), and ``delta(after, before, cost)`` takes
  ``cost`` off once per scrape in between (the one of ``after`` included): pass ``SCRAPE_COST``
  for netmaster. The agent's scrape reads nothing.
- ``settle(urls)`` waits until the counters of every daemon stop moving (watch events and the
  remote hosts' reconcilers are asynchronous), so a delta covers the whole effect of the actions.

Invariants: standard library only (the bench runs it outside pytest); counts are exact, never timed.
"""

from __future__ import annotations

import time
import urllib.request

REQ = "contiv_etcd_requests_total"
BYTES = "contiv_etcd_bytes_total"
EVENTS = "contiv_etcd_watch_events_total"
WRITE_KINDS = ("txn", "put", "deleterange")
#: Requests made on a timer, not by the operations measured: watch streams opened, lease
#: keep-alives (leader lock, registrations) and the registry's check of its keys (txn_check).
BACKGROUND = ("req:watch", "req:lease_keepalive", "req:txn_check", "req:lease_grant")
#: What one scrape of netmaster's (leader's) /metrics reads before answering.
SCRAPE_COST = {"req:range_prefix": 3, "req:txn_read": 1}


def _labels(text: str) -> dict[str, str]:
    out = {}
    for part in text.split('",'):
        if "=" in part:
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


def parse(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("contiv_etcd_") or "{" not in line:
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = _labels(rest.rstrip("}"))
        if name == REQ:
            key = "req:" + labels.get("kind", "")
        elif name == BYTES:
            key = ("sent:" if labels.get("direction") == "sent" else "recv:") + labels.get("kind", "")
        elif name == EVENTS:
            key = "events:" + labels.get("prefix", "")
        else:
            continue
        out[key] = out.get(key, 0.0) + float(value)
    return out


_SCRAPES: dict[str, int] = {}


def snapshot(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as r:
        out = parse(r.read().decode())
    _SCRAPES[url] = out["scrape#"] = _SCRAPES.get(url, 0) + 1
    return out


def delta(
    after: dict[str, float], before: dict[str, float], cost: dict[str, int] | None = None
) -> dict[str, float]:
    """``after - before`` (keys that did not move left out); ``cost``: what each scrape in between
    reads itself (netmaster: ``SCRAPE_COST``), taken off."""
    scrapes = int(after.get("scrape#", 0) - before.get("scrape#", 0))
    out = {}
    for k in set(after) | set(before):
        if k == "scrape#":
            continue
        v = after.get(k, 0.0) - before.get(k, 0.0) - scrapes * (cost or {}).get(k, 0)
        if v:
            out[k] = v
    return out


def requests(d: dict[str, float]) -> float:
    """Requests of a delta, the timer-driven ones (``BACKGROUND``) left out."""
    return sum(v for k, v in d.items() if k.startswith("req:") and k not in BACKGROUND)


def writes(d: dict[str, float]) -> float:
    return sum(d.get("req:" + k, 0.0) for k in WRITE_KINDS)


def settle(
    urls: dict[str, str],
    costs: dict[str, dict[str, int]] | None = None,
    quiet: float = 0.6,
    limit: float = 30.0,
) -> dict[str, dict[str, float]]:
    """Snapshots of every daemon once none of their request and event counters (leases left out)
    moved for ``quiet`` seconds; ``costs``: per daemon name, its scrape's own reads."""
    deadline = time.monotonic() + limit
    prev = {n: snapshot(u) for n, u in urls.items()}
    still = time.monotonic()
    while True:
        time.sleep(0.2)
        cur = {n: snapshot(u) for n, u in urls.items()}
        moved = any(
            {k: v for k, v in delta(cur[n], prev[n], (costs or {}).get(n)).items()
             if k.startswith(("req:", "events:")) and k not in BACKGROUND}
            for n in urls
        )  # fmt: skip
        if moved:
            still = time.monotonic()
        elif time.monotonic() - still >= quiet:
            return cur
        if time.monotonic() > deadline:
            return cur
        prev = cur


def table(per_proc: dict[str, dict[str, float]], n: int) -> str:
    """A Markdown table: one row per counter, one column per process, values per operation."""
    keys = sorted({k for d in per_proc.values() for k in d})
    procs = list(per_proc)
    lines = ["| counter | " + " | ".join(procs) + " |", "|---" * (len(procs) + 1) + "|"]
    for k in keys:
        row = [f"{per_proc[p].get(k, 0.0) / n:.2f}".rstrip("0").rstrip(".") for p in procs]
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    return "\n".join(lines)


__all__ = ["snapshot", "delta", "requests", "writes", "settle", "table", "SCRAPE_COST", "parse"]
