"""Write a converted plan into the target etcd (v3): intent record, bounded txns, resumable.

Protocol (all through the ``KVStore`` interface)
1. Read the target's ``/contiv.io/`` keys. Refused: a held leader lock (a netmaster runs against
   the target); an intent record of another source; contivpy state without an intent record
   unless ``merge``; with ``merge``, any planned key the target holds with another value (merge
   never overwrites; the conflicting keys are listed).
2. Create (or, resuming, take over with a CAS) the intent record ``/contiv.io/master/migrate``
   ``{"source","state":"writing","keys","written","merge","started"}``. ``source`` is the digest
   of the converted plan, so a re-run of the same import is recognised.
3. Write the keys the target does not already hold with the planned value, sorted, in txns of at
   most ``MAX_OPS`` puts and ``MAX_BYTES`` of keys+values (etcd refuses more than 128 operations
   and, by default, requests over 1.5 MiB). Each txn compares the intent record's mod revision
   and updates its ``written`` count, so two importers never interleave and a crash leaves a
   record saying how far it got.
   The first txn also deletes the ``built`` markers of the indexes that the imported keys
   belong in (the address index when endpoint states are imported, the subnet index when
   networks are: netmaster/addridx.py, subnetidx.py), so the next leader indexes them; a
   rollback deletes the address index's marker (its next build drops the entries of the
   endpoint states it removed).
4. Set ``state`` to ``done``. A re-run finds every key equal and writes nothing (idempotent); a
   re-run after a crash writes only what is missing (resume). ``rollback`` deletes the planned
   keys that still hold the planned value, then the record (only for an import without merge).

The record lives under ``/contiv.io/master/`` so netplugin's state watchers never see it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.model import keys
from contivpy.netmaster import addridx, subnetidx
from contivpy.netmaster.migrate.convert import INTENT_KEY, MigrateError

MAX_OPS = 96
MAX_BYTES = 512 * 1024


def source_digest(src: dict[str, str], repair: bool) -> str:
    """Identity of an import: the source's keys and values (live TTL keys excluded) and --repair."""
    h = hashlib.sha256(b"repair\0" if repair else b"as-is\0")
    for k in sorted(src):
        if k.startswith((keys.LOCK, keys.SERVICE)):
            continue
        h.update(k.encode())
        h.update(b"\0")
        h.update(src[k].encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class WriteResult:
    written: int = 0
    unchanged: int = 0
    txns: int = 0
    resumed: bool = False
    already_done: bool = False
    deleted: int = 0


def batches(items: list[tuple[str, str]], max_ops: int = MAX_OPS, max_bytes: int = MAX_BYTES):
    cur: list[tuple[str, str]] = []
    size = 0
    for k, v in items:
        n = len(k.encode()) + len(v.encode())
        if cur and (len(cur) >= max_ops or size + n > max_bytes):
            yield cur
            cur, size = [], 0
        cur.append((k, v))
        size += n
    if cur:
        yield cur


async def _read_target(kv: KVStore) -> dict[str, tuple[str, int]]:
    items, _ = await kv.get_prefix(keys.ROOT)
    return {i.key: (i.value, i.mod_revision) for i in items}


def _check_no_netmaster(have: dict[str, tuple[str, int]]) -> None:
    lock = have.get(keys.LEADER_LOCK)
    if lock is not None:
        raise MigrateError(
            f"a netmaster is running against the target etcd (leader lock held by {lock[0]}): stop every "
            "contivpy netmaster before importing"
        )


async def write(
    kv: KVStore,
    target: dict[str, str],
    digest: str,
    *,
    merge: bool = False,
    now: float | None = None,
    progress=None,
) -> WriteResult:
    """Write ``target`` into ``kv`` (see the module docstring). Raises MigrateError when refused."""
    have = await _read_target(kv)
    _check_no_netmaster(have)
    res = WriteResult()
    intent_raw = have.pop(INTENT_KEY, None)
    intent = None
    if intent_raw is not None:
        try:
            intent = json.loads(intent_raw[0])
        except ValueError:
            intent = {}
        if not isinstance(intent, dict) or intent.get("source") != digest:
            raise MigrateError(
                "the target etcd holds an import of another source (intent record "
                f"{INTENT_KEY}, state {intent.get('state', '?') if isinstance(intent, dict) else '?'}): "
                "roll it back with --rollback and the same source, or use an empty etcd"
            )
        if intent.get("state") == "done":
            # Idempotent: an import that finished is never written again (the cluster may have
            # changed since; rewriting the imported values would undo those changes).
            res.already_done = True
            res.unchanged = sum(1 for k, v in target.items() if have.get(k, (None,))[0] == v)
            return res
        res.resumed = True
    # Resuming: allocation records already written keep their creation time (and expiry).
    todo = [
        (k, v)
        for k, v in sorted(target.items())
        if have.get(k, (None,))[0] != v and not (res.resumed and k.startswith(keys.ADDR_ALLOC) and k in have)
    ]
    res.unchanged = len(target) - len(todo)
    if intent is None:
        if have and not merge:
            raise MigrateError(
                f"the target etcd already holds contivpy state ({len(have)} keys under {keys.ROOT}, for example "
                f"{sorted(have)[0]}): use --merge to add the import to it, or an empty etcd"
            )
        conflicts = sorted(k for k, _ in todo if k in have)
        if conflicts:
            shown = "\n  ".join(conflicts[:20]) + (
                f"\n  ... ({len(conflicts)} in all)" if len(conflicts) > 20 else ""
            )
            raise MigrateError(
                f"--merge: the target holds these keys with other values (never overwritten):\n  {shown}"
            )
    t = time.time() if now is None else now
    record = {
        "source": digest,
        "state": "writing",
        "keys": len(target),
        "written": res.unchanged,
        "merge": bool(merge if intent is None else intent.get("merge")),
        "started": intent.get("started", t) if intent else t,
    }
    cmp = (
        Compare(INTENT_KEY, "version", "==", 0)
        if intent_raw is None
        else Compare(INTENT_KEY, "mod", "==", intent_raw[1])
    )
    first: list[Put | Delete] = [Put(INTENT_KEY, json.dumps(record))]
    if any(k.startswith(keys.EPS) for k, _ in todo):  # rebuilt by the next leader (addridx.py)
        first.append(Delete(addridx.BUILT))
    if any(k.startswith(keys.obj_prefix("network")) for k, _ in todo):
        first.append(Delete(subnetidx.BUILT))
    r = await kv.txn([cmp], first)
    if not r.succeeded:
        raise MigrateError("another import is writing to the target etcd at the same time")
    res.txns += 1
    rev = r.revision  # the intent record's mod revision: it is the txn's only put
    for batch in batches(todo):
        record["written"] += len(batch)
        ops = [Put(k, v) for k, v in batch] + [Put(INTENT_KEY, json.dumps(record))]
        r = await kv.txn([Compare(INTENT_KEY, "mod", "==", rev)], ops)
        if not r.succeeded:
            raise MigrateError("the intent record changed under the import: another import is running")
        rev = r.revision
        res.txns += 1
        res.written += len(batch)
        if progress is not None:
            progress(record["written"], len(target))
    record["state"] = "done"
    record["finished"] = time.time() if now is None else now
    r = await kv.txn([Compare(INTENT_KEY, "mod", "==", rev)], [Put(INTENT_KEY, json.dumps(record))])
    if not r.succeeded:
        raise MigrateError("the intent record changed under the import: another import is running")
    res.txns += 1
    return res


async def rollback(kv: KVStore, target: dict[str, str], digest: str) -> WriteResult:
    """Undo an import of ``target`` (finished or cut short): delete the planned keys that still
    hold the planned value (allocation records: that still exist), then the intent record."""
    have = await _read_target(kv)
    _check_no_netmaster(have)
    intent_raw = have.get(INTENT_KEY)
    if intent_raw is None:
        raise MigrateError(f"no import to roll back: the target has no intent record {INTENT_KEY}")
    try:
        intent = json.loads(intent_raw[0])
    except ValueError:
        intent = {}
    if intent.get("source") != digest:
        raise MigrateError(
            "the target's import was made from another source: give the same source to roll it back"
        )
    if intent.get("merge"):
        raise MigrateError(
            "an import made with --merge cannot be rolled back (keys it found in place would go too)"
        )
    res = WriteResult()
    rev = intent_raw[1]
    mine = sorted(
        k
        for k, v in target.items()
        if have.get(k, (None,))[0] == v or (k.startswith(keys.ADDR_ALLOC) and k in have)
    )
    for batch in batches([(k, have[k][0]) for k in mine]):
        r = await kv.txn(
            [Compare(INTENT_KEY, "mod", "==", rev)] + [Compare(k, "mod", "==", have[k][1]) for k, _ in batch],
            [Delete(k) for k, _ in batch] + [Put(INTENT_KEY, json.dumps(dict(intent, state="rolling-back")))],
        )
        if not r.succeeded:
            raise MigrateError("the target changed during the rollback: run it again")
        rev = r.revision
        res.txns += 1
        res.deleted += len(batch)
    r = await kv.txn([Compare(INTENT_KEY, "mod", "==", rev)], [Delete(INTENT_KEY), Delete(addridx.BUILT)])
    res.txns += 1
    return res


__all__ = ["write", "rollback", "source_digest", "batches", "WriteResult", "MAX_OPS", "MAX_BYTES"]
