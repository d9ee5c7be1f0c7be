"""Follow-up jobs: derived state whose size grows with a collection, written after the commit.

Why
    etcd refuses a txn with more than 128 compares or 128 ops (``--max-txn-ops``). Records
    derived from the model whose count grows with a collection (a policy's ofnet rules for every
    group that uses it, the EPG states of every group of a netprofile, the ``links.AppProfile`` of
    every group of an app profile, the ``MatchRules`` links left on groups by a deleted policy's
    rules) cannot ride in the request's txn.

Invariant ("a failed request leaves nothing half-written")
    The request's txn (crud: model objects + bounded state records) also puts an *intent* key
    ``/contiv.io/master/pending/<kind>/<id>`` naming the derived state to rebuild. Either that
    whole txn commits or nothing does: a refused or conflicting request writes nothing at all.
    After the commit (still under the crud lock) the job runs: it recomputes the derived state
    from the committed model (a pure function of it), diffs it against what is stored, and writes
    the difference in txns of at most ``MAX_TXN_OPS`` ops / ``MAX_TXN_BYTES`` bytes, each fenced on
    the leader lock; then it deletes the intent key. Every job is idempotent (recompute + diff),
    so it can run again at any time: if the leader dies or etcd fails part-way, the intent key
    stays and the next leader runs every pending job before it serves (``resume``, called from
    ``Crud.ensure_defaults``); a later request on the same object schedules (and so repairs) it
    too. Readers thus see, at worst, the old derived state or a mix converging to the new one,
    never a model change that is lost.

Metrics (docs/rest-api.md): ``contiv_netmaster_followup_jobs_total{kind,result=ok|retried|failed}``
counted here; the backlog, ``contiv_netmaster_followup_pending`` (intent keys in etcd), is read at
scrape time by netmaster/api/observe.py.

Jobs are registered with ``@job("<kind>")`` on ``async def f(crud, job_id) -> None``. Hooks call
``schedule(ctx, plan, kind, job_id)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from contivpy.common import metrics
from contivpy.common.errors import ConflictError, NotLeaderError, StoreError
from contivpy.common.kv.base import Compare, Delete, Put
from contivpy.model import keys

log = logging.getLogger("netmaster.followup")

PENDING_PREFIX = keys.ROOT + "master/pending/"
MAX_TXN_OPS = 96  # ops + compares per follow-up txn (etcd default --max-txn-ops is 128)
MAX_TXN_BYTES = 512 * 1024  # etcd default --max-request-bytes is 1.5 MiB
ATTEMPTS = 3

JobFn = Callable[[Any, str], Awaitable[None]]
_JOBS: dict[str, JobFn] = {}


def _import_job_modules() -> None:
    """Import the modules that register jobs (lazily: resume runs at leader start only)."""
    from contivpy.netmaster.hooks import app_profile, group, netprofile, policy, policy_state  # noqa: F401


def job(kind: str) -> Callable[[JobFn], JobFn]:
    def deco(fn: JobFn) -> JobFn:
        _JOBS[kind] = fn
        return fn

    return deco


def pending_key(kind: str, job_id: str) -> str:
    return f"{PENDING_PREFIX}{kind}/{job_id}"


def schedule(ctx: Any, plan: Any, kind: str, job_id: str) -> None:
    """Put the intent key into the request's txn and run the job after the commit (once per plan)."""
    key = pending_key(kind, job_id)
    if any(isinstance(op, Put) and op.key == key for op in plan.ops):
        return
    plan.ops.append(Put(key, json.dumps({"kind": kind, "id": job_id})))
    crud = ctx.crud

    async def run() -> None:
        await run_job(crud, kind, job_id)

    plan.after_commit.append(run)


async def run_job(crud: Any, kind: str, job_id: str) -> None:
    """Run one job (caller holds ``crud.lock``) and clear its intent key when it succeeded."""
    fn = _JOBS[kind]
    try:
        for attempt in range(ATTEMPTS):
            try:
                await fn(crud, job_id)
                break
            except NotLeaderError:
                raise
            except (StoreError, ConflictError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise StoreError(f"{kind} {job_id}: state left pending ({exc})") from exc
                log.warning("follow-up %s %s failed (%s); retrying", kind, job_id, exc)
                metrics.FOLLOWUP_JOBS.inc(kind, "retried")
                await asyncio.sleep(0.2 * (attempt + 1))
        await crud.commit_ops([], [Delete(pending_key(kind, job_id))])
    except Exception:  # a cancelled job (leader stepping down) is not counted
        metrics.FOLLOWUP_JOBS.inc(kind, "failed")
        raise
    metrics.FOLLOWUP_JOBS.inc(kind, "ok")


async def resume(crud: Any) -> int:
    """Leader start: run every pending job (caller holds ``crud.lock``). Returns how many ran."""
    items, _ = await crud.kv.get_prefix(PENDING_PREFIX)
    if items:  # the job modules (hooks) load only when there is a job to run
        _import_job_modules()
    done = 0
    for item in items:
        kind, _, job_id = item.key[len(PENDING_PREFIX) :].partition("/")
        if kind not in _JOBS:
            log.warning("unknown follow-up job %s", item.key)
            continue
        try:
            await run_job(crud, kind, job_id)
            done += 1
        except NotLeaderError:
            raise
        except Exception as exc:  # one broken job must not stop the leader from serving
            log.error("follow-up %s %s failed: %s", kind, job_id, exc)
    return done


def _size(op: Put | Delete) -> int:
    return len(op.key) + (len(op.value) if isinstance(op, Put) else 0) + 32


def chunks(ops: Iterable[Put | Delete], reserve: int = 1) -> list[list[Put | Delete]]:
    """Split ``ops`` into lists that fit one txn (``reserve`` = compares added per txn)."""
    out: list[list[Put | Delete]] = []
    cur: list[Put | Delete] = []
    size = 0
    for op in ops:
        s = _size(op)
        if cur and (len(cur) + reserve >= MAX_TXN_OPS or size + s > MAX_TXN_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(op)
        size += s
    if cur:
        out.append(cur)
    return out


async def write_ops(crud: Any, ops: list[Put | Delete]) -> int:
    """Blind idempotent writes (keys owned by the leader alone) in bounded, fenced txns."""
    n = 0
    for chunk in chunks(ops):
        if not await crud.commit_ops([], chunk):
            raise ConflictError("concurrent update, please retry")
        n += 1
    return n


async def cas_update(
    crud: Any, keys_: list[str], change: Callable[[str, str], str | None], batch: int = 40
) -> None:
    """Read-modify-write of existing keys in batches, each batch one txn fenced on the mod
    revision of every key it read (for records other writers touch, e.g. EPG states updated by
    /plugin/* allocations). ``change(key, value)`` returns the new value or None (no change)."""
    for i in range(0, len(keys_), batch):
        part = keys_[i : i + batch]
        for _ in range(8):
            compares: list[Compare] = []
            ops: list[Put | Delete] = []
            for k in part:
                kv = await crud.kv.get(k)
                if kv is None:
                    continue
                new = change(k, kv.value)
                if new is None or new == kv.value:
                    continue
                compares.append(Compare(k, "mod", "==", kv.mod_revision))
                ops.append(Put(k, new))
            if not ops or await crud.commit_ops(compares, ops):
                break
        else:
            raise ConflictError("concurrent update, please retry")


__all__ = [
    "PENDING_PREFIX",
    "MAX_TXN_OPS",
    "MAX_TXN_BYTES",
    "job",
    "schedule",
    "run_job",
    "resume",
    "chunks",
    "write_ops",
    "cas_update",
    "pending_key",
]
