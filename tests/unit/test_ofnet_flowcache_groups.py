"""FlowCache's diff of groups during a restart's replay (before the first full sync).

A restarted agent reads the switch's groups back and re-adds its endpoints one by one; a flood
group (type ALL) rebuilt from them holds the same buckets as the installed one, possibly in another
order. It must not be rewritten for that (100 local endpoints used to cost 100 group rewrites of
up to 100 buckets each), while a group whose buckets really differ still is.
"""

from __future__ import annotations

import asyncio

from contivpy.ofnet import codec
from contivpy.ofnet.flowcache import FlowCache
from contivpy.ofnet.flows import Flow, Group, Match, Output, PopVlan
from contivpy.ofnet.pipeline import MAC_DEST


class _Ctl:
    def __init__(self) -> None:
        self.on_connect: list = []
        self.switch = None


class _Sw:
    def __init__(self) -> None:
        self.xid = 0

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid


def _bucket(port: int) -> tuple:
    return (PopVlan(), Output(port))


def _diff(cache: FlowCache, want_group: Group) -> list[tuple[int, bytes]]:
    flow = Flow(MAC_DEST, 100, Match.of(vlan_vid=5))
    return asyncio.run(
        cache._diff_owner(_Sw(), "net:5", 1, {flow.key: flow}, {want_group.group_id: want_group}, {})
    )


def _group_mods(msgs: list[tuple[int, bytes]]) -> int:
    return sum(1 for _, m in msgs if m[1] == codec.T_GROUP_MOD)


def _restarted(installed: Group) -> FlowCache:
    cache = FlowCache(_Ctl())
    cache._installed_groups[installed.group_id] = installed
    cache._adopted_buckets[installed.group_id] = set(installed.buckets)
    return cache


def test_replayed_all_group_with_the_same_buckets_in_another_order_is_not_rewritten():
    cache = _restarted(Group(7, (_bucket(3), _bucket(1), _bucket(2))))
    assert _group_mods(_diff(cache, Group(7, (_bucket(1),)))) == 0  # the others still inherited
    assert _group_mods(_diff(cache, Group(7, (_bucket(1), _bucket(2))))) == 0
    # the last one completes the group: written once, in the builder's order
    assert _group_mods(_diff(cache, Group(7, (_bucket(1), _bucket(2), _bucket(3))))) <= 1
    assert cache._installed_groups[7].buckets == (_bucket(1), _bucket(2), _bucket(3))


def test_replayed_group_with_a_new_bucket_is_rewritten():
    cache = _restarted(Group(7, (_bucket(3), _bucket(1))))
    assert _group_mods(_diff(cache, Group(7, (_bucket(1), _bucket(4))))) == 1
    assert set(cache._installed_groups[7].buckets) == {_bucket(1), _bucket(3), _bucket(4)}
