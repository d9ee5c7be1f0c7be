"""Per-tenant subnet index in etcd: the network create's overlap check in one bounded read.

Layout (ours, not the original's; docs/decisions.md "subnet index")::

    /contiv.io/index/subnet/v4/<tenant>/<LAST address, 8 hex>/<network key>    -> JSON
    /contiv.io/index/subnet/v6/<tenant>/<LAST address, 32 hex>/<network key>   -> JSON
    /contiv.io/index/subnet/built                                               -> "1"

The JSON is ``{"first": <first address, int>, "name": <networkName>}``. A v4 entry covers the
network's address span (the whole CIDR, or ``a-b/len``'s range); v6 the whole CIDR.

Invariant: the spans of one tenant and family in the index are pairwise disjoint (a create that
overlaps is refused, and the entry is written in the network's own txn, removed in its delete's),
so ordering them by last address also orders them by first address. A new span ``[first, last]``
then overlaps an indexed one iff the indexed span with the smallest last address >= ``first``
starts at or before ``last``: every span ending before ``first`` is disjoint from it, and every
other span ending at or after ``first`` starts after that one ends. ONE ascending range read of
one key (``KVStore.get_range``, which etcd bounds by its limit), whatever the number of networks,
instead of reading every network of the tenant.

``ensure_built`` (leader start) indexes networks written before the index existed, once, in txns
of at most ``CHUNK`` puts, then writes the ``built`` marker.
"""

from __future__ import annotations

import json
from typing import Any

from contivpy.common import netaddr
from contivpy.common.errors import ContivError
from contivpy.common.kv.base import Delete, KVStore, Put
from contivpy.model import keys

INDEX = keys.ROOT + "index/subnet/"
BUILT = INDEX + "built"
CHUNK = 100
_WIDTH = {"v4": 8, "v6": 32}


def spans(obj: dict) -> list[tuple[str, int, int]]:
    """``(family, first, last)`` of a network object's subnets (v4 always, v6 if set)."""
    out = []
    if obj.get("subnet"):
        sn = netaddr.parse_subnet(obj["subnet"])
        out.append(("v4", *((sn.range_start, sn.range_end) if sn.is_range else (sn.subnet_ip, sn.last))))
    if obj.get("ipv6Subnet"):
        net6 = netaddr.parse_subnet_v6(obj["ipv6Subnet"])
        out.append(("v6", int(net6.network_address), int(net6.broadcast_address)))
    return out


def _base(family: str, tenant: str) -> str:
    return f"{INDEX}{family}/{tenant}/"


def _hex(family: str, addr: int) -> str:
    return format(addr, f"0{_WIDTH[family]}x")


def entry_key(family: str, tenant: str, last: int, net_key: str) -> str:
    return f"{_base(family, tenant)}{_hex(family, last)}/{net_key}"


def put_ops(obj: dict) -> list[Put]:
    """The index entries of a network object (for its create txn)."""
    tenant, name = obj.get("tenantName", ""), obj.get("networkName", "")
    return [
        Put(entry_key(fam, tenant, last, obj["key"]), json.dumps({"first": first, "name": name}))
        for fam, first, last in spans(obj)
    ]


def delete_ops(obj: dict) -> list[Delete]:
    """Removal of a network object's index entries (for its delete txn)."""
    tenant = obj.get("tenantName", "")
    return [Delete(entry_key(fam, tenant, last, obj["key"])) for fam, _, last in spans(obj)]


async def find_overlap(kv: KVStore, tenant: str, family: str, first: int, last: int, own_key: str) -> str:
    """networkName of an indexed network of ``tenant`` whose span overlaps ``[first, last]``
    ("" if none): one range read returning at most two keys (the second only matters when the
    first is this network's own entry, left by an interrupted create)."""
    base = _base(family, tenant)
    for item in await kv.get_range(base + _hex(family, first), base + "g", limit=2):  # "g" > any hex
        entry = json.loads(item.value)
        if item.key.endswith("/" + own_key):
            continue
        return entry["name"] if entry["first"] <= last else ""
    return ""


async def ensure_built(crud: Any) -> None:
    """Index every stored network once (stores written before the index); call with
    ``crud.lock`` held, as the leader."""
    if await crud.kv.get(BUILT) is not None:
        return
    items, _ = await crud.kv.get_prefix(keys.obj_prefix("network"))
    ops: list[Put] = []
    for item in items:
        try:
            ops += put_ops(json.loads(item.value))
        except (
            ValueError,
            KeyError,
            ContivError,
        ):  # a record we cannot parse is not indexed (it cannot be re-created either)
            continue
    for i in range(0, len(ops), CHUNK):
        await crud.commit_ops([], ops[i : i + CHUNK])
    await crud.commit_ops([], [Put(BUILT, "1")])


__all__ = ["INDEX", "BUILT", "spans", "entry_key", "put_ops", "delete_ops", "find_overlap", "ensure_built"]
