"""What a CRUD hook sees and returns: the txn context and the plan (contract in netmaster/crud.py).

Hooks (``contivpy.netmaster.hooks.*``) import only this module, never ``crud``: the write path
reads one way, route -> ``Crud`` -> hook, and a hook's whole interface is here.

- ``TxnContext``: one attempt's view of the store. Point reads are recorded and become compares
  that fence the commit; model-object writes are staged and seen by later reads of the same
  attempt. It holds no state of its own beyond the attempt.
- ``Plan``: the hook's answer, extra compares, ops and idempotent after-commit callables, merged
  by ``Crud`` into ONE etcd txn with the recorded compares, the staged writes and the leader fence.
- ``link_set_add`` / ``link_set_remove`` / ``set_link``: the many-to-many link helpers hooks use
  on the objects they stage. Indexed link sets (``registry.INDEXED``: a network's groups, a
  policy's rules and groups, ...) are not edited in the owner's record: ``ctx.link_add`` /
  ``ctx.link_remove`` stage one link key each, and ``ctx.members`` / ``read_members`` build the
  set on read (link keys + what the stored record still holds + staged changes).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contivpy.common.kv.base import Compare, Delete, KeyValue, KVStore, Put
from contivpy.model import codec, keys
from contivpy.netmaster import registry as reg

if TYPE_CHECKING:  # type-only: crud imports this module, not the reverse
    from contivpy.netmaster.crud import Crud

AfterCommit = Callable[[], Awaitable[None]]


@dataclass
class Plan:
    compares: list[Compare] = field(default_factory=list)
    ops: list[Put | Delete] = field(default_factory=list)
    after_commit: list[AfterCommit] = field(default_factory=list)

    def extend(self, other: Plan | None) -> Plan:
        if other is not None:
            self.compares += other.compares
            self.ops += other.ops
            self.after_commit += other.after_commit
        return self


def link_set_add(obj: dict, set_name: str, target_type: str, target_key: str) -> None:
    """Add ``{type,key}`` to ``obj["link-sets"][set_name]`` (sorted on output)."""
    obj.setdefault("link-sets", {}).setdefault(set_name, {})[target_key] = {
        "type": target_type,
        "key": target_key,
    }


def link_set_remove(obj: dict, set_name: str, target_key: str) -> None:
    sets = obj.get("link-sets", {})
    members = sets.get(set_name)
    if members and target_key in members:
        del members[target_key]
        if not members:
            del sets[set_name]


def set_link(obj: dict, link_name: str, target_type: str, target_key: str) -> None:
    obj.setdefault("links", {})[link_name] = {"type": target_type, "key": target_key} if target_key else {}


def merge_links(sets: dict, set_name: str, found: dict[str, str]) -> None:
    """Add link-key members ``{member key: member type}`` to ``sets[set_name]`` (kept: stored ones)."""
    if found:
        members = sets.setdefault(set_name, {})
        for k, typ in found.items():
            members[k] = {"type": typ, "key": k}


async def read_members(
    kv: KVStore, owner_type: str, owner_key: str, set_name: str, stored: dict | None
) -> list[str]:
    """Sorted member keys of an indexed set, read now (plain read, not compare-fenced): the link
    keys plus the members ``stored`` (the owner's record, if any) still holds."""
    prefix = keys.link_prefix(owner_type, owner_key, set_name)
    kvs, _ = await kv.get_prefix(prefix)
    found = {i.key[len(prefix) :] for i in kvs}
    found.update(((stored or {}).get("link-sets") or {}).get(set_name) or {})
    return sorted(found)


class TxnContext:
    """One attempt's view of the store: records what was read, stages model-object writes."""

    def __init__(self, crud: Crud) -> None:
        self._crud = crud
        self.kv: KVStore = crud.kv
        self.config = crud.config
        self.registry = reg
        self.extras = crud.extras
        self._reads: dict[str, KeyValue | None] = {}
        self._prefetched: dict[str, KeyValue | None] = {}  # read ahead, not yet a compare
        self._staged: dict[str, dict | None] = {}  # etcd key -> obj (None = delete)
        self._links: dict[str, str | None] = {}  # link key -> member type (None = delete)

    @property
    def crud(self) -> Crud:
        """The Crud running this txn (follow-up jobs commit through ``crud.commit_ops``)."""
        return self._crud

    @property
    def docker(self) -> Any:
        """The Docker client shared by every txn of this Crud (set lazily by its first user)."""
        return self._crud.docker

    @docker.setter
    def docker(self, value: Any) -> None:
        self._crud.docker = value

    # --- reads (recorded) ---------------------------------------------------------------
    async def prefetch(self, keys: list[str]) -> None:
        """Read ``keys`` ahead in ONE store request (``KVStore.get_many``), so the attempt's later
        ``read`` / ``get_obj`` calls cost no round trip. A prefetched key becomes a compare only
        once it is actually read."""
        todo = [k for k in dict.fromkeys(keys) if k and k not in self._reads and k not in self._prefetched]
        if todo:
            self._prefetched.update(zip(todo, await self.kv.get_many(todo[:100]), strict=False))

    async def read(self, key: str) -> KeyValue | None:
        if key not in self._reads:
            if key in self._prefetched:
                self._reads[key] = self._prefetched.pop(key)
            else:
                self._reads[key] = await self.kv.get(key)
        return self._reads[key]

    async def read_json(self, key: str) -> Any | None:
        kv = await self.read(key)
        return None if kv is None else json.loads(kv.value)

    async def get_obj(self, obj_type: str, key: str) -> dict | None:
        ek = keys.obj_key(obj_type, key)
        if ek in self._staged:
            staged = self._staged[ek]
            return staged
        kv = await self.read(ek)
        if kv is None:
            return None
        obj = json.loads(kv.value)
        # Work on a private copy: a hook mutating it must call put_obj to persist.
        return obj

    async def list_objs(self, obj_type: str) -> list[dict]:
        """All objects of a type, sorted by key, staged writes applied (not compare-fenced:
        the CRUD lock and the leader fence serialise model writers)."""
        prefix = keys.obj_prefix(obj_type)
        kvs, _rev = await self.kv.get_prefix(prefix)
        out: dict[str, dict] = {k.key: json.loads(k.value) for k in kvs}
        for ek, obj in self._staged.items():
            if ek.startswith(prefix):
                if obj is None:
                    out.pop(ek, None)
                else:
                    out[ek] = obj
        return [out[k] for k in sorted(out)]

    async def members(self, owner_type: str, owner_key: str, set_name: str) -> list[str]:
        """Sorted member keys of an owner's link set. Indexed sets: link keys + stored members +
        this attempt's staged link changes (the owner's record is read, so compare-fenced);
        other sets: the stored record's."""
        owner = await self.get_obj(owner_type, owner_key)
        if (owner_type, set_name) not in reg.INDEXED:
            return sorted(((owner or {}).get("link-sets") or {}).get(set_name) or {})
        found = set(await read_members(self.kv, owner_type, owner_key, set_name, owner))
        prefix = keys.link_prefix(owner_type, owner_key, set_name)
        for lk, typ in self._links.items():
            if lk.startswith(prefix):
                (found.add if typ is not None else found.discard)(lk[len(prefix) :])
        return sorted(found)

    # --- staged writes -------------------------------------------------------------------
    def link_add(
        self, owner_type: str, owner_key: str, set_name: str, member_type: str, member_key: str
    ) -> None:
        """Stage the link key making ``member_key`` a member of an indexed set (no owner rewrite)."""
        self._links[keys.link_key(owner_type, owner_key, set_name, member_key)] = member_type

    def link_remove(self, owner_type: str, owner_key: str, set_name: str, member_key: str) -> None:
        self._links[keys.link_key(owner_type, owner_key, set_name, member_key)] = None

    def put_obj(self, obj_type: str, obj: dict) -> None:
        self._staged[keys.obj_key(obj_type, obj["key"])] = obj

    def delete_obj(self, obj_type: str, key: str) -> None:
        self._staged[keys.obj_key(obj_type, key)] = None

    # --- commit helpers (crud only) -------------------------------------------------------
    def _read_compares(self) -> list[Compare]:
        out = []
        for k, kv in self._reads.items():
            if kv is None:
                out.append(Compare(k, "version", "==", 0))
            else:
                out.append(Compare(k, "mod", "==", kv.mod_revision))
        return out

    def _staged_ops(self) -> list[Put | Delete]:
        ops: list[Put | Delete] = []
        for ek, obj in self._staged.items():
            if obj is None:
                ops.append(Delete(ek))
            else:
                obj_type = ek[len(keys.OBJ) :].split("/", 1)[0]
                ops.append(Put(ek, codec.dumps(obj_type, obj)))
        for lk, typ in self._links.items():
            ops.append(Delete(lk) if typ is None else Put(lk, typ))
        return ops
