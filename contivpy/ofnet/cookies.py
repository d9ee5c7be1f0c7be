"""Flow cookies: who owns a flow, readable back from the switch.

Layout (64 bits)::

    63..56  MAGIC     0xc0  marks a flow as programmed by contivpy ofnet
    55..48  category  Category (base, network, local endpoint, remote endpoint, vtep, rule, ...)
    47..0   owner     48-bit BLAKE2b hash of the owner key (e.g. "lep:5", "rep:10.1.1.3:default")

All flows of one owner carry the same cookie, so the flow cache can read back "what is
installed for owner X" with one cookie/mask filter, and prune every MAGIC flow whose
cookie no current owner maps to.  Cookies are deterministic (no counters), hence equal
across controller restarts: a restarted agent computes the same cookies and its diff
against the switch is empty.  There is no "round" field: convergence after a restart is
by read-back diff, and stale flows are pruned explicitly after the first full sync.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

__all__ = [
    "MAGIC",
    "MAGIC_MASK",
    "OWNER_MASK",
    "Category",
    "cookie_for",
    "category_of",
    "is_ours",
    "owner_of",
]

MAGIC = 0xC0 << 56
MAGIC_MASK = 0xFF << 56
CATEGORY_SHIFT = 48
CATEGORY_MASK = 0xFF << CATEGORY_SHIFT
OWNER_MASK = (1 << 48) - 1
#: mask selecting one owner exactly (magic | category | owner hash)
FULL_MASK = (1 << 64) - 1


class Category(IntEnum):
    BASE = 1
    NETWORK = 2
    LOCAL_EP = 3
    REMOTE_EP = 4
    VTEP = 5
    RULE = 6
    ARP = 7
    UPLINK = 8
    SERVICE = 9  # service LB: watch flows of one VIP ("svc:<vip>:<vrf>")
    SVC_CLIENT = 10  # service LB: NAT flows of one client of one VIP ("svcc:<vip>:<vrf>:<client>")
    HOST_PORT = 20  # host access: the contivh0 port's fixed flows ("hostport")
    HOST_EP = 21  # host access: one local endpoint's private-address NAT flows ("hep:<ofport>")
    OTHER = 15


_PREFIX = {
    "base": Category.BASE,
    "net": Category.NETWORK,
    "lep": Category.LOCAL_EP,
    "rep": Category.REMOTE_EP,
    "vtep": Category.VTEP,
    "rule": Category.RULE,
    "arp": Category.ARP,
    "uplink": Category.UPLINK,
    "svc": Category.SERVICE,
    "svcc": Category.SVC_CLIENT,
    "hostport": Category.HOST_PORT,
    "hep": Category.HOST_EP,
}


def category_for_owner(owner: str) -> Category:
    return _PREFIX.get(owner.split(":", 1)[0], Category.OTHER)


def cookie_for(owner: str) -> int:
    """Deterministic cookie of an owner key ("<kind>:<id>")."""
    h = int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=6).digest(), "big")
    return MAGIC | (int(category_for_owner(owner)) << CATEGORY_SHIFT) | h


def category_of(cookie: int) -> Category | None:
    if not is_ours(cookie):
        return None
    try:
        return Category((cookie & CATEGORY_MASK) >> CATEGORY_SHIFT)
    except ValueError:
        return None


def is_ours(cookie: int) -> bool:
    return cookie & MAGIC_MASK == MAGIC


def owner_of(cookie: int, owners) -> str | None:
    """The owner key among ``owners`` whose cookie is ``cookie`` (the hash is one-way, so the
    candidates are the owners the agent currently programs); None for a foreign or unknown cookie."""
    if not is_ours(cookie):
        return None
    return next((o for o in owners if cookie_for(o) == cookie), None)
