"""Address-holder index in etcd: "who else holds this address?" in one read of that address's keys.

Layout (ours, not the original's; docs/decisions.md "address-holder index")::

    /contiv.io/index/addr/<net id>/v4/<ipAddress>/<endpoint state id>     -> <endpoint state id>
    /contiv.io/index/addr/<net id>/v6/<ipv6Address>/<endpoint state id>   -> <endpoint state id>
    /contiv.io/index/addr/built                                           -> "1"

``<net id>`` is the endpoint state's ``netID`` (``<net>.<tenant>``, never ``built``: it has a dot),
``<endpoint state id>`` the key of the state under ``/contiv.io/state/eps/`` (its value repeats it,
so nothing has to split a key). The address is the text stored in the endpoint state.

Why: an endpoint delete (and releaseAddress, the reclaimer) frees an address only if no other
endpoint of the network holds it (state written before the address rule, or imported from the
original, may hold duplicates). Reading every endpoint state of the network for that costs
O(endpoints) per delete (about 6 MB with 10,000 endpoints); reading the prefix
``<net id>/<family>/<address>/`` costs O(holders of that address), normally one key.

Invariant: every parseable endpoint state with a ``netID`` and an address has exactly its entries,
and no other entry exists. Kept by writing them in the SAME txn as the state: ``createEndpoint``
puts them, ``deleteEndpoint`` deletes them (endpoints.py); an endpoint's addresses never change
after its create (``updateEndpoint`` writes names, labels and aliases only). A network delete
leaves them: an infra network may be deleted with endpoint states still present, and the entries
mirror the states, not the networks.

``ensure_built`` (leader start, before ``built`` exists) reconciles the index with the stored
endpoint states once: the missing entries are put, entries without their state deleted, in txns of
at most ``CHUNK`` operations, each comparing the mod revision of the endpoint states it indexes
(as read; absent: ``version == 0``), so an endpoint created or deleted meanwhile fails the chunk and
the pass starts over. Then it writes ``built``. Until a process has seen ``built``, its readers
(``Allocator.holders``) scan the network's endpoint states as before. ``netmaster migrate`` deletes
``built`` when it imports endpoint states, and a netmaster of an older version (which does not
keep the index) leaves it stale: deleting ``built`` makes the next leader rebuild it.
"""

from __future__ import annotations

import logging
from typing import Any

from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.model import keys
from contivpy.model.state import EndpointState

log = logging.getLogger("netmaster.addridx")

INDEX = keys.ROOT + "index/addr/"
BUILT = INDEX + "built"
CHUNK = 100
MAX_PASSES = 5


def prefix(net_id: str, ip: str, v6: bool = False) -> str:
    """The keys of every holder of ``ip`` in network ``net_id``."""
    return f"{INDEX}{net_id}/{'v6' if v6 else 'v4'}/{ip}/"


def entries(ep: EndpointState, ep_id: str) -> list[str]:
    """The index keys of endpoint state ``ep`` stored under ``/contiv.io/state/eps/<ep_id>``."""
    if not ep.netID or not ep_id:
        return []
    out = []
    if ep.ipAddress:
        out.append(prefix(ep.netID, ep.ipAddress) + ep_id)
    if ep.ipv6Address:
        out.append(prefix(ep.netID, ep.ipv6Address, v6=True) + ep_id)
    return out


def put_ops(ep: EndpointState, ep_id: str) -> list[Put]:
    """The entries of a new endpoint state (for its create txn)."""
    return [Put(k, ep_id) for k in entries(ep, ep_id)]


def delete_ops(ep: EndpointState, ep_id: str) -> list[Delete]:
    """Removal of an endpoint state's entries (for its delete txn)."""
    return [Delete(k) for k in entries(ep, ep_id)]


async def holders(kv: KVStore, net_id: str, ip: str, v6: bool = False, skip: str = "") -> list[str]:
    """Endpoint state ids holding ``ip`` in ``net_id`` (but ``skip``): one prefix read."""
    items, _ = await kv.get_prefix(prefix(net_id, ip, v6))
    return [i.value for i in items if i.value != skip]


async def _pass(crud: Any) -> bool:
    """One reconcile pass; False when a chunk lost a race (start over)."""
    eps, _ = await crud.kv.get_prefix(keys.EPS)
    want: dict[str, str] = {}  # entry key -> endpoint state id
    rev: dict[str, int] = {}  # endpoint state id -> mod revision as read
    for item in eps:
        ep_id = item.key[len(keys.EPS) :]
        rev[ep_id] = item.mod_revision
        ep = EndpointState.parse(item.value)
        if ep is not None:
            want.update((k, ep_id) for k in entries(ep, ep_id))
    have, _ = await crud.kv.get_prefix(INDEX)
    todo: list[tuple[str, Put | Delete]] = [(ep_id, Put(k, ep_id)) for k, ep_id in want.items()]
    held = {i.key for i in have}
    todo = [t for t in todo if t[1].key not in held]
    todo += [(i.value, Delete(i.key)) for i in have if i.key != BUILT and i.key not in want]
    for n in range(0, len(todo), CHUNK):
        chunk = todo[n : n + CHUNK]
        compares = []
        for ep_id in dict.fromkeys(e for e, _ in chunk):
            key = keys.ep_state(ep_id)
            r = rev.get(ep_id, 0)
            compares.append(Compare(key, "mod", "==", r) if r else Compare(key, "version", "==", 0))
        if not await crud.commit_ops(compares, [op for _, op in chunk]):
            return False
    if todo:
        log.info("address index: %d entries written or removed", len(todo))
    return True


async def ensure_built(crud: Any) -> None:
    """Reconcile the index with the endpoint states once (``built`` absent); call as the leader
    (``crud.commit_ops`` adds the fence). Readers fall back to a scan while it is not built."""
    if await crud.kv.get(BUILT) is not None:
        return
    for _ in range(MAX_PASSES):
        if await _pass(crud):
            await crud.commit_ops([], [Put(BUILT, "1")])
            return
    log.warning(
        "address index: endpoints kept changing during %d passes; retried at the next leader start",
        MAX_PASSES,
    )


__all__ = ["INDEX", "BUILT", "CHUNK", "prefix", "entries", "put_ops", "delete_ops", "holders", "ensure_built"]
