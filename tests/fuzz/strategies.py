"""Hypothesis strategies of the fuzz suite: valid-ish objects whose fields are sometimes mutated.

Names and addresses come from SMALL pools, so that random sequences hit the same objects again
(create twice, delete what another object links to, allocate an address a VIP or a pool holds,
overlapping subnets). ``mutated(valid)`` returns the valid value most of the time and otherwise a
wrong type, an empty / huge / non-ASCII / path-like string, or a value of a neighbouring field.
"""

from __future__ import annotations

from hypothesis import strategies as st

# --- mutations ---------------------------------------------------------------------------------------

WEIRD_STRINGS = [
    "",
    " ",
    "a" * 65,
    "b" * 300,
    "x" * 5000,
    "ñandú",
    "网络",
    "a/b",
    "..",
    "x:y",
    "a.b",
    "-a",
    "a-",
    "%2F",
    "\u0000",
    "\u202e",
    "default",
    "0",
    "-1",
    "10.1.0.0/33",
    "300.1.1.1",
]

wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

weird_text = st.one_of(st.sampled_from(WEIRD_STRINGS), st.text(max_size=40))


def mutated(valid: st.SearchStrategy, p_valid: int = 6) -> st.SearchStrategy:
    """``valid`` with weight ``p_valid`` against one each of weird text and wrong types."""
    return st.sampled_from([valid] * p_valid + [weird_text, wrong_types]).flatmap(lambda s: s)


# --- pools ----------------------------------------------------------------------------------------------

NET_NAMES = ["n1", "n2", "n3"]
GROUP_NAMES = ["g1", "g2", "g3"]
POLICY_NAMES = ["p1", "p2"]
PROFILE_NAMES = ["np1", "np2"]
APP_NAMES = ["ap1", "ap2"]
SERVICE_NAMES = ["s1", "s2"]
RULE_IDS = ["1", "2", "3"]
CONTAINERS = ["c1", "c2", "c3", "c4"]
HOSTS = ["h1", "h2"]


def subnets(k: int) -> list[str]:
    return [
        f"10.{k}.0.0/24",
        f"10.{k}.0.0/16",
        f"10.{k}.1.0/28",
        f"10.{k}.2.10-10.{k}.2.20/24",
        f"10.{k}.0.128/25",
        f"10.{k}.3.0/30",
    ]


BAD_SUBNETS = ["10.9.0.0/33", "10.9.0.0", "10.9.0.0/0", "300.1.1.0/24", "10.9.0.0/24/8", "::1/64",
               "10.9.0.20-10.9.0.10/24", "10.9.0.10-10.10.0.20/24", "10.9.0.0/8"]  # fmt: skip

ADDRS = [
    f"10.{k}.{c}.{d}"
    for k in (1, 2)
    for c, d in [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (0, 10),
        (0, 11),
        (0, 12),
        (0, 129),
        (0, 200),
        (0, 254),
        (0, 255),
        (1, 1),
        (1, 2),
        (1, 14),
        (1, 15),
        (2, 10),
        (2, 11),
        (2, 15),
        (2, 20),
        (2, 21),
        (3, 1),
        (3, 2),
        (3, 3),
    ]  # fmt: skip
]

_POOL_TEMPLATES = ["0.10-10.{k}.0.12", "0.1-10.{k}.0.3", "2.12-10.{k}.2.14", "0.250-10.{k}.1.5",
                   "0.11-10.{k}.0.11", "0.129-10.{k}.0.140", "1.1-10.{k}.1.3"]  # fmt: skip
POOLS = [f"10.{k}." + t.format(k=k) for k in (1, 2) for t in _POOL_TEMPLATES]


def addrs_in(subnet: str) -> list[str]:
    """The pool addresses inside ``subnet`` (``a.b.c.d/n`` or ``lo-hi/n``; its range ignored)."""
    import ipaddress

    base = subnet.split("-")[0].split("/")[0]
    try:
        net = ipaddress.ip_network(f"{base}/{subnet.rsplit('/', 1)[1]}", strict=False)
    except (ValueError, IndexError):  # a bad subnet on purpose: any address
        return ADDRS
    return [a for a in ADDRS if ipaddress.ip_address(a) in net] or ADDRS


addr = st.sampled_from(ADDRS)
subnet = st.integers(1, 2).flatmap(lambda k: st.sampled_from(subnets(k)))
pool = st.sampled_from(POOLS)


__all__ = [
    "mutated",
    "wrong_types",
    "weird_text",
    "addr",
    "addrs_in",
    "subnet",
    "pool",
    "BAD_SUBNETS",
    "NET_NAMES",
    "GROUP_NAMES",
    "POLICY_NAMES",
    "PROFILE_NAMES",
    "APP_NAMES",
    "SERVICE_NAMES",
    "RULE_IDS",
    "CONTAINERS",
    "HOSTS",
]
