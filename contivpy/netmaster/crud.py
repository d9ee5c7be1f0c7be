"""Generic CRUD over the object registry: validate -> hook -> ONE etcd txn -> follow-up jobs.

Objects
    A model object is a plain ``dict`` in canonical REST form (``contivpy.model.objects``): exact
    JSON field names, only non-empty fields present (Go ``omitempty``), ``key`` always set, and
    ``link-sets`` / ``links`` present for the types that have them. ``codec.dumps(type, obj)``
    renders it byte-for-byte like the original (field order included).

HOOK CONTRACT (per type, module ``contivpy.netmaster.hooks.<name>``, loaded by ``hooks.load``;
types in ``netmaster/txn.py``)
    Every function is optional; a missing module means "no hooks".

        async def on_create(ctx: TxnContext, obj: dict) -> Plan | None
        async def on_update(ctx: TxnContext, old: dict, new: dict) -> Plan | None
        async def on_delete(ctx: TxnContext, obj: dict) -> Plan | None
        async def oper(ctx: TxnContext, obj: dict) -> dict          # inspect "Oper" (read only):
                                                 # model.oper.OPER[type](...).to_dict(), in order
        def prefetch(obj: dict) -> list[str]                          # keys a create/update reads
        def prefetch_delete(obj: dict) -> list[str]                   # keys a delete reads

    - ``prefetch`` (optional) names the etcd keys the hook (and crud's link maintenance) will
      read for the validated request object; crud reads them with the object's own key in ONE
      request (``TxnContext.prefetch``), so the attempt makes one round trip instead of one per
      record. Naming a key that is not read costs nothing else (no compare is added).
      ``prefetch_delete`` does the same for a delete, given the stored object (read first).

    - ``obj``/``new`` are validated (key, regexes, ranges, defaults) before the hook runs. A hook
      may mutate ``obj``/``new`` (e.g. set a link); what it leaves there is what gets stored.
      ``on_update`` receives the stored ``old`` (with its link-sets/links) and the request ``new``
      whose link-sets/links were copied from ``old``.
    - A hook refuses by raising a ``contivpy.common.errors.ContivError`` subclass; ``str(err)`` is
      the HTTP 500 body (the original's message).
    - A hook must be PURE over what it reads through ``ctx``: crud may run it several times.
      All reads go through ``ctx.get_obj / ctx.list_objs / ctx.read / ctx.read_json``; each point
      read records a compare (mod_revision == seen, or version == 0 if absent) that fences the
      commit. If the txn fails on any compare, crud discards the attempt, re-reads and re-runs
      the hook (``MAX_ATTEMPTS``), then fails with "concurrent update, please retry".
    - Writes: the hook returns ``Plan(compares=[...], ops=[Put|Delete...], after_commit=[...])``.
      crud merges ``plan.compares`` + recorded read compares + the leader fence, and
      ``plan.ops`` + staged model-object writes + the object write itself into ONE ``kv.txn``.
      Model objects other than the one being written are changed with ``ctx.put_obj`` /
      ``ctx.delete_obj`` (staged; later ``ctx.get_obj`` calls see the staged version).
    - ``after_commit`` callables (``async def f() -> None``) run after a successful commit, in
      order; they must be idempotent (follow-up jobs, ``netmaster/followup.py``). Their failure
      is logged and turned into the response error, but the commit stays. External side
      effects (Docker networks) are NOT done here: a reconciler acts on the committed state
      (``netmaster/dockerrec.py``), so a commit never waits for, or is undone by, Docker.
    - Link maintenance: crud itself keeps the declared single links (registry ``ObjType.links``,
      e.g. network ``links.Tenant``, EPG ``links.Network`` and network ``link-sets.EndpointGroups``)
      in the same txn; a tenant's link sets are derived on read, and the indexed sets (a network's
      or netprofile's groups, a policy's rules, registry ``ObjType.indexed_sets``) are one link key
      per member, built on read (``Crud.materialize``): adding a member never rewrites the owner. Hooks
      handle many-to-many links (EPG policies, app-profile groups, ...) with ``link_set_add`` /
      ``link_set_remove`` on the objects they stage.

``TxnContext`` attributes: ``kv`` (KVStore), ``config`` (netmaster Config: ``cluster_mode``,
``docker_host``, ``plugin_name``, ``fwd_mode``, ``net_mode``, ``infra``), ``docker`` (Docker
client or None; no hook calls Docker), ``registry`` (type table),
``extras`` (dict shared per Crud instance for other helpers' services, e.g. ``extras["ipam"]``).

Leader start: ``Crud.ensure_defaults(fwd_mode)`` creates tenant ``default`` if missing and calls
``contivpy.netmaster.hooks.global_.ensure_global_defaults(ctx, fwd_mode) -> Plan`` (owned by the
network/IPAM helper) inside a txn (same retry rules).

Concurrency: one ``asyncio.Lock`` per Crud serialises the write path in this process (single
leader); etcd compares guard against anything else (a deposed leader, /plugin/* allocations).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from contivpy.common.errors import (
    ConflictError,
    ContivError,
    NotFoundError,
    NotLeaderError,
    StoreError,
)
from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.model import codec, keys
from contivpy.netmaster import hooks
from contivpy.netmaster import registry as reg
from contivpy.netmaster.txn import (  # re-exported for callers that predate netmaster/txn.py
    AfterCommit,
    Plan,
    TxnContext,
    link_set_add,
    link_set_remove,
    merge_links,
    set_link,
)

log = logging.getLogger("netmaster.crud")

MAX_ATTEMPTS = 8


def _hooks(t: reg.ObjType) -> Any | None:
    return hooks.load(t.hooks) if t.hooks else None


async def _call(mod: Any, name: str, *args: Any) -> Plan | None:
    fn = getattr(mod, name, None) if mod is not None else None
    if fn is None:
        return None
    return await fn(*args)


class Crud:
    """Create/update/delete/get/list/inspect of model objects, one txn per write."""

    def __init__(
        self,
        kv: KVStore,
        config: Any = None,
        docker: Any = None,
        fence: Callable[[], Compare | None] | None = None,
    ) -> None:
        self.kv = kv
        self.config = config
        self.docker = docker
        self.fence = fence or (lambda: None)
        self.extras: dict[str, Any] = {}
        self.lock = asyncio.Lock()
        self.cache: Any = None  # objcache.ObjCache, set by the daemon
        self.obj_rev = 0  # revision of this process's last txn that touched model objects

    async def _cached(self) -> Any:
        c = self.cache
        # wait (briefly) only for a synced mirror lagging behind our own last write; before its
        # first listing (start-up) read etcd at once rather than wait for it
        if c is not None and (c.fresh(self.obj_rev) or (c.synced and await c.wait_fresh(self.obj_rev))):
            return c
        return None

    # --- reads ---------------------------------------------------------------------------
    async def get(self, obj_type: str, key: str) -> dict:
        cache = await self._cached()
        if cache is not None:
            raw = cache.get_raw(obj_type, key)
        else:
            kv = await self.kv.get(keys.obj_key(obj_type, key))
            raw = None if kv is None else kv.value
        if raw is None:
            raise NotFoundError(f"{obj_type} not found")
        return await self.materialize(obj_type, json.loads(raw), cache)

    async def list(self, obj_type: str) -> list[dict]:
        kvs, _ = await self.kv.get_prefix(keys.obj_prefix(obj_type))
        objs = [json.loads(k.value) for k in kvs]  # get_prefix is sorted by key
        t = reg.TYPES.get(obj_type)
        links = await self._links_of_type(obj_type) if t is not None and t.indexed_sets else {}
        return [await self.materialize(obj_type, o, None, links.get(o.get("key"), {})) for o in objs]

    async def _links_of_type(self, obj_type: str) -> dict[str, dict[str, dict[str, str]]]:
        """Every link key of the owners of ``obj_type`` in one read: owner key -> set -> members."""
        kvs, _ = await self.kv.get_prefix(f"{keys.LINKS}{obj_type}/")
        out: dict[str, dict[str, dict[str, str]]] = {}
        for kv in kvs:
            parts = keys.parse_link_key(kv.key)
            if parts is not None:
                out.setdefault(parts[1], {}).setdefault(parts[2], {})[parts[3]] = kv.value
        return out

    async def list_raw(self, obj_type: str) -> list[str]:
        """Stored JSON texts sorted by key (fast path for GET list: no re-encoding); objects with
        derived link sets (tenants, few) and owners with link keys are completed and re-encoded."""
        t = reg.TYPES[obj_type]
        cache = await self._cached()
        if cache is not None:
            bucket = cache.by_type.get(obj_type, {})
            pairs = [(k, bucket[k]) for k in sorted(bucket)]
            links = cache.links.get(obj_type, {}) if t.indexed_sets else {}
        else:
            base = keys.obj_prefix(obj_type)
            kvs, _ = await self.kv.get_prefix(base)
            pairs = [(k.key[len(base) :], k.value) for k in kvs]
            links = await self._links_of_type(obj_type) if t.indexed_sets else {}
        if t.derived_sets:
            return [
                codec.dumps(obj_type, await self.materialize(obj_type, json.loads(r), cache))
                for _, r in pairs
            ]
        if not links:
            return [r for _, r in pairs]
        out = []
        for k, r in pairs:
            own = links.get(k)
            if own:  # only owners that have link keys are decoded and re-encoded
                out.append(codec.dumps(obj_type, await self.materialize(obj_type, json.loads(r), cache, own)))
            else:
                out.append(r)
        return out

    async def materialize(
        self, obj_type: str, obj: dict, cache: Any = None, links: dict[str, dict[str, str]] | None = None
    ) -> dict:
        """Fill ``obj``'s computed link sets in place, from ``cache`` (fresh) or from etcd:
        derived sets (``registry.ObjType.derived_sets``) are the keys of the member type starting
        with ``<obj key>:``; indexed sets (``indexed_sets``) add the owner's link keys (``links``:
        already read, set -> {member: type}) to the members the record stores. Costs O(members)
        for the read; writes never rewrite these sets."""
        t = reg.TYPES.get(obj_type)
        if t is None or not (t.derived_sets or t.indexed_sets):
            return obj
        sets = obj.get("link-sets") or {}
        obj["link-sets"] = sets
        if t.indexed_sets:
            if links is None:
                if cache is not None:
                    links = cache.links_of(obj_type, obj["key"])
                else:
                    links = await self._links_of(obj_type, obj["key"])
            for name in t.indexed_sets:
                merge_links(sets, name, links.get(name) or {})
        prefix = f"{obj['key']}:"
        for name, member in t.derived_sets:
            if cache is not None:
                found = sorted(cache.keys_with_prefix(member, prefix))
            else:
                base = keys.obj_prefix(member)
                kvs, _ = await self.kv.get_prefix(base + prefix)
                found = [kv.key[len(base) :] for kv in kvs]
            if found:
                sets[name] = {k: {"type": member, "key": k} for k in found}
            else:
                sets.pop(name, None)
        return obj

    async def _links_of(self, obj_type: str, key: str) -> dict[str, dict[str, str]]:
        kvs, _ = await self.kv.get_prefix(keys.link_prefix(obj_type, key))
        out: dict[str, dict[str, str]] = {}
        for kv in kvs:
            parts = keys.parse_link_key(kv.key)
            if parts is not None:
                out.setdefault(parts[2], {})[parts[3]] = kv.value
        return out

    @staticmethod
    def _strip_derived(t: reg.ObjType, obj: dict) -> None:
        """Never store a derived set (records written before they were derived may hold one)."""
        sets = obj.get("link-sets")
        if sets:
            for name, _ in t.derived_sets:
                sets.pop(name, None)

    @staticmethod
    def _keep_stored(t: reg.ObjType, new: dict, old: dict | None) -> None:
        """Indexed sets in ``new`` = what the stored ``old`` holds (hooks edit them through link keys)."""
        stored = (old or {}).get("link-sets") or {}
        sets = new.get("link-sets")
        if sets is None:
            return
        for name in t.indexed_sets:
            if stored.get(name):
                sets[name] = copy.deepcopy(stored[name])
            else:
                sets.pop(name, None)

    async def inspect(self, obj_type: str, key: str) -> dict:
        t = reg.TYPES[obj_type]
        obj = await self.get(obj_type, key)
        out: dict[str, Any] = {"Config": obj}
        if t.has_oper:
            ctx = TxnContext(self)
            mod = _hooks(t)
            fn = getattr(mod, "oper", None) if mod is not None else None
            out["Oper"] = (await fn(ctx, obj)) if fn is not None else {}
        return out

    # --- writes --------------------------------------------------------------------------
    async def create_or_update(
        self, obj_type: str, key: str, body: dict | Callable[[dict | None], dict], *, answer: bool = True
    ) -> dict:
        """``body`` is the decoded request object (codec.decode); returns the stored object.
        ``body`` may also be a function of the stored object (None if absent) returning the new
        one: it is called again on every attempt, so a read-modify-write loses no concurrent change.
        ``answer=False``: the caller ignores the result, so its link sets are not read back."""
        t = reg.TYPES[obj_type]
        async with self.lock:
            for _ in range(MAX_ATTEMPTS):
                ctx = TxnContext(self)
                mod = _hooks(t)
                ahead = getattr(mod, "prefetch", None) if mod is not None else None
                if callable(body):  # the new object depends on the stored one: read that first
                    old = await ctx.get_obj(obj_type, key)
                    new = copy.deepcopy(body(copy.deepcopy(old)))
                else:
                    new = copy.deepcopy(body)
                new["key"] = key
                codec.validate(obj_type, new)
                await ctx.prefetch([keys.obj_key(obj_type, key), *(ahead(new) if ahead else ())])
                if not callable(body):
                    old = await ctx.get_obj(obj_type, key)
                plan = Plan()
                if old is None:
                    codec.reset_links(obj_type, new)
                    await self._link_parents(ctx, t, new)
                    plan.extend(await _call(mod, "on_create", ctx, new))
                else:
                    for f in ("link-sets", "links"):
                        if f in old:
                            new[f] = copy.deepcopy(old[f])
                    await self._relink_parents(ctx, t, old, new)
                    seen = old
                    if t.indexed_sets:  # the hook sees the whole sets
                        seen = await self.materialize(obj_type, copy.deepcopy(old))
                    plan.extend(await _call(mod, "on_update", ctx, seen, new))
                if t.derived_sets:
                    self._strip_derived(t, new)
                if t.indexed_sets:  # the record keeps only the members it stored (never link keys)
                    self._keep_stored(t, new, old)
                ctx.put_obj(obj_type, new)
                if await self._commit(ctx, plan):
                    await self._after(plan)
                    # the answer shows the sets, read from etcd
                    if answer and (t.derived_sets or t.indexed_sets):
                        return await self.materialize(obj_type, copy.deepcopy(new))
                    return new
            raise ConflictError("concurrent update, please retry")

    async def delete(self, obj_type: str, key: str) -> None:
        t = reg.TYPES[obj_type]
        async with self.lock:
            for _ in range(MAX_ATTEMPTS):
                ctx = TxnContext(self)
                old = await ctx.get_obj(obj_type, key)
                if old is None:
                    raise NotFoundError(f"{obj_type} not found")
                mod = _hooks(t)
                ahead = getattr(mod, "prefetch_delete", None) if mod is not None else None
                if ahead is not None:
                    await ctx.prefetch(ahead(old))
                if t.derived_sets or t.indexed_sets:  # the hook checks the members (a tenant's networks)
                    old = await self.materialize(obj_type, copy.deepcopy(old))
                plan = Plan()
                plan.extend(await _call(mod, "on_delete", ctx, old))
                await self._unlink_parents(ctx, t, old)
                ctx.delete_obj(obj_type, key)
                if t.indexed_sets:  # its link keys go with it (one op, whatever their number)
                    plan.ops.append(Delete(keys.link_prefix(obj_type, key), prefix=True))
                if await self._commit(ctx, plan):
                    await self._after(plan)
                    return
            raise ConflictError("concurrent update, please retry")

    async def run_plan(self, build: Callable[[TxnContext], Awaitable[Plan | None]]) -> None:
        """Run ``build(ctx)`` under the write lock and commit its plan with the usual retries
        (for leader-start defaults and other non-REST writers)."""
        async with self.lock:
            for _ in range(MAX_ATTEMPTS):
                ctx = TxnContext(self)
                plan = Plan().extend(await build(ctx))
                if await self._commit(ctx, plan):
                    await self._after(plan)
                    return
            raise ConflictError("concurrent update, please retry")

    async def ensure_defaults(self, fwd_mode: str) -> None:
        """Leader start: tenant ``default`` and the global object (via the global hook owner)."""
        if await self.kv.get(keys.obj_key("tenant", "default")) is None:  # a point read: no link sets
            await self.create_or_update("tenant", "default", {"tenantName": "default"}, answer=False)
        from contivpy.netmaster.hooks import global_ as global_hooks  # lazy: leader start only

        await self.run_plan(lambda ctx: global_hooks.ensure_global_defaults(ctx, fwd_mode))
        # roll forward what a previous leader left; index what older versions stored
        from contivpy.netmaster import addridx, followup, subnetidx

        async with self.lock:
            await subnetidx.ensure_built(self)  # networks stored before the subnet index existed
            await addridx.ensure_built(self)  # endpoint states stored before the address index
            await followup.resume(self)

    async def commit_ops(self, compares: list[Compare], ops: list[Put | Delete]) -> bool:
        """One follow-up txn outside a hook (``netmaster.followup``): the leader fence is added,
        the read-your-writes revision of the object cache is bumped. Call with ``lock`` held."""
        fence = self.fence()
        res = await self.kv.txn(list(compares) + ([fence] if fence is not None else []), ops)
        if res.succeeded and any(op.key.startswith(keys.OBJ_ROOT) for op in ops):
            self.obj_rev = max(self.obj_rev, res.revision)
        if not res.succeeded and fence is not None and not await self._fence_holds(fence):
            raise NotLeaderError("netmaster is not the leader any more")
        return res.succeeded

    # --- internals -------------------------------------------------------------------------
    async def _link_parents(self, ctx: TxnContext, t: reg.ObjType, obj: dict) -> None:
        for rel in t.links:
            target_key = rel.target_key(obj)
            if not target_key:
                continue
            parent = await ctx.get_obj(rel.target_type, target_key)
            if parent is None:
                continue  # the hook decides whether a missing parent is an error
            if rel.link_name:
                set_link(obj, rel.link_name, rel.target_type, target_key)
            if rel.own_set:
                link_set_add(obj, rel.own_set, rel.target_type, target_key)
            if rel.reverse_set and (rel.target_type, rel.reverse_set) in reg.INDEXED:
                ctx.link_add(rel.target_type, target_key, rel.reverse_set, t.name, obj["key"])
            elif rel.reverse_set and (rel.target_type, rel.reverse_set) not in reg.DERIVED:
                parent = copy.deepcopy(parent)
                link_set_add(parent, rel.reverse_set, t.name, obj["key"])
                ctx.put_obj(rel.target_type, parent)

    async def _relink_parents(self, ctx: TxnContext, t: reg.ObjType, old: dict, new: dict) -> None:
        """Update: re-point relations whose target key changed (e.g. EPG netProfile)."""
        changed = [r for r in t.links if r.target_key(old) != r.target_key(new)]
        if not changed:
            return
        sub = reg.ObjType(t.name, t.plural, t.has_oper, links=tuple(changed))
        await self._unlink_parents(ctx, sub, old, new)
        await self._link_parents(ctx, sub, new)

    async def _unlink_parents(
        self, ctx: TxnContext, t: reg.ObjType, obj: dict, holder: dict | None = None
    ) -> None:
        holder = obj if holder is None else holder
        for rel in t.links:
            target_key = rel.target_key(obj)
            if rel.link_name:
                set_link(holder, rel.link_name, rel.target_type, "")
            if rel.own_set and target_key:
                link_set_remove(holder, rel.own_set, target_key)
            if not rel.reverse_set or (rel.target_type, rel.reverse_set) in reg.DERIVED:
                continue
            indexed = (rel.target_type, rel.reverse_set) in reg.INDEXED
            if indexed and target_key:
                ctx.link_remove(rel.target_type, target_key, rel.reverse_set, obj["key"])
            parent = await ctx.get_obj(rel.target_type, target_key) if target_key else None
            stored = ((parent or {}).get("link-sets") or {}).get(rel.reverse_set) or {}
            if parent is not None and (
                not indexed or obj["key"] in stored
            ):  # indexed: a stored (legacy) member
                parent = copy.deepcopy(parent)
                link_set_remove(parent, rel.reverse_set, obj["key"])
                ctx.put_obj(rel.target_type, parent)

    async def _commit(self, ctx: TxnContext, plan: Plan) -> bool:
        compares = ctx._read_compares() + plan.compares
        fence = self.fence()
        if fence is not None:
            compares.append(fence)
        ops = plan.ops + ctx._staged_ops()
        res = await self.kv.txn(compares, ops)
        if res.succeeded and any(op.key.startswith(keys.OBJ_ROOT) for op in ops):
            self.obj_rev = max(self.obj_rev, res.revision)
        if not res.succeeded and fence is not None and not await self._fence_holds(fence):
            raise NotLeaderError("netmaster is not the leader any more")
        return res.succeeded

    async def _fence_holds(self, fence: Compare) -> bool:
        kv = await self.kv.get(fence.key)
        if kv is None:
            return False
        actual = {
            "lease": kv.lease,
            "create": kv.create_revision,
            "mod": kv.mod_revision,
            "version": kv.version,
            "value": kv.value,
        }[fence.target]
        return actual == fence.value

    async def _after(self, plan: Plan) -> None:
        for fn in plan.after_commit:
            try:
                await fn()
            except ContivError:
                raise
            except Exception as exc:  # a side effect failed after the commit
                log.exception("after-commit action failed")
                raise StoreError(str(exc)) from exc


__all__ = [
    "AfterCommit",
    "Crud",
    "Plan",
    "TxnContext",
    "link_set_add",
    "link_set_remove",
    "set_link",
    "MAX_ATTEMPTS",
]
