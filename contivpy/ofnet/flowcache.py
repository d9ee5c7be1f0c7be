"""Per-owner desired flows and groups, converged onto the switch by diff.

``apply(owner, flows, groups)`` replaces the owner's desired set, diffs it against what is
installed for that owner (keyed by ``Flow.key``), and sends only the difference: ADD for
new keys, MODIFY_STRICT for changed actions, DELETE_STRICT for keys no longer wanted;
groups are ADD/MODIFY/DELETE by group id (group adds/modifies go first, group deletes
last, so a flow never points at a missing group).  Re-applying the same set sends nothing.

Concurrent ``apply`` calls are coalesced: messages queue up and one flusher sends them with
a single barrier; each caller awaits its own result, and errors are mapped back to the
owner whose message failed (the owner's installed state then becomes "unknown" and is
read back from the switch on its next apply).

Connection events: on every (re)connect the cache reads back all flows carrying our cookie
MAGIC and all groups, adopts that as "installed", and converges every desired owner by
diff (replay without wipe); while the replay adds an owner's parts one by one, a group of type
ALL whose buckets (the wanted ones plus those read back and not yet claimed) are the installed ones
in another order is left as it is.  Flows/groups present in the switch that no owner wants are
*not* touched until :meth:`prune` -- the agent calls it once it has re-applied its full
state after a start (first full sync); after that, reconnects prune immediately.
While disconnected, ``apply`` only records desired state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable

from . import codec
from .cookies import MAGIC, MAGIC_MASK, cookie_for, is_ours
from .flows import Flow, Group
from .switch import OfController, OfSwitch, OpenFlowError, SwitchDisconnected

__all__ = ["FlowCache"]

log = logging.getLogger(__name__)

_UNKNOWN = None  # installed state of an owner is unknown -> read back before diffing


class FlowCache:
    def __init__(self, controller: OfController) -> None:
        self._ctl = controller
        self._desired: dict[str, dict[tuple, Flow]] = {}
        self._desired_groups: dict[str, dict[int, Group]] = {}
        self._installed: dict[int, dict[tuple, Flow] | None] = {}  # by cookie
        self._installed_groups: dict[int, Group] = {}
        self._lock = asyncio.Lock()  # serialises diff computation with (re)sync
        self._queue: list[tuple[str, list[tuple[int, bytes]], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._synced = False
        # read back at connect and not yet claimed by this instance (kept until prune())
        self._adopted: dict[int, set[tuple]] = {}
        self._adopted_buckets: dict[int, set[tuple]] = {}
        self.stats = defaultdict(int)
        controller.on_connect.append(self._on_connect)

    # ---- public ------------------------------------------------------------------------------
    def owners(self) -> list[str]:
        return sorted(self._desired)

    def desired_flows(self, owner: str | None = None) -> list[Flow]:
        src = [self._desired.get(owner, {})] if owner else self._desired.values()
        return [f for d in src for f in d.values()]

    def installed_flows(self, cookie_filter=None) -> list[Flow]:
        """Flows believed installed (read back at connect, then tracked), optionally only those whose
        cookie passes ``cookie_filter`` (the service proxy re-adopts its per-client flows this way)."""
        return [
            f
            for c, d in self._installed.items()
            if d and (cookie_filter is None or cookie_filter(c))
            for f in d.values()
        ]

    def desired_groups(self) -> list[Group]:
        return [g for d in self._desired_groups.values() for g in d.values()]

    async def apply(self, owner: str, flows: Iterable[Flow], groups: Iterable[Group] = ()) -> None:
        """Make the switch hold exactly ``flows``/``groups`` for ``owner``; raise on switch errors."""
        cookie = cookie_for(owner)
        want = {}
        for f in flows:
            f = f.with_cookie(cookie)
            want[f.key] = f
        want_groups = {g.group_id: g for g in groups}
        async with self._lock:
            if want:
                self._desired[owner] = want
            else:
                self._desired.pop(owner, None)
            old_groups = self._desired_groups.get(owner, {})
            if want_groups:
                self._desired_groups[owner] = want_groups
            else:
                self._desired_groups.pop(owner, None)
            sw = self._ctl.switch
            if sw is None or sw.closed:
                return
            msgs = await self._diff_owner(sw, owner, cookie, want, want_groups, old_groups)
            if not msgs:
                return
            fut = asyncio.get_running_loop().create_future()
            self._queue.append((owner, msgs, fut))
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await fut

    async def remove(self, owner: str) -> None:
        await self.apply(owner, (), ())

    async def prune(self) -> int:
        """Delete our flows/groups that no owner wants (call after the first full sync)."""
        async with self._lock:
            self._synced = True
            self._adopted.clear()
            self._adopted_buckets.clear()
            sw = self._ctl.switch
            if sw is None or sw.closed:
                return 0
            msgs = self._prune_msgs(sw)
        if msgs:
            await self._send_now(sw, "prune", msgs)
        return len(msgs)

    # ---- diff --------------------------------------------------------------------------------
    async def _diff_owner(self, sw, owner, cookie, want, want_groups, old_groups) -> list[tuple[int, bytes]]:
        have = self._installed.get(cookie, {})
        if have is _UNKNOWN:
            read = [codec.flow_from_stats(s) for s in await sw.flow_stats(cookie, (1 << 64) - 1)]
            have = {f.key: f for f in read}
        # Before the first full sync (fresh start) the agent replays its state piecewise;
        # removing what is "not wanted yet" would disrupt traffic, so only adds/modifies are
        # sent and leftovers wait for prune().  An owner emptied on purpose is still removed.
        lenient = not self._synced and bool(want)
        adopted = self._adopted.get(cookie, set())
        adopted -= want.keys()
        pre, mid, post = [], [], []
        for gid, g in want_groups.items():
            cur = self._installed_groups.get(gid)
            target = g
            inherited = self._adopted_buckets.get(gid, set())
            inherited -= set(g.buckets)
            if lenient and cur is not None and cur.type == g.type and inherited:
                extra = tuple(b for b in cur.buckets if b in inherited)
                target = Group(gid, g.buckets + extra, g.type)
                if (
                    g.type == "all"
                    and len(target.buckets) == len(cur.buckets)
                    and set(target.buckets) == set(cur.buckets)
                ):
                    target = cur  # same buckets in another order: an ALL group sends to each all the same
            if cur != target:
                cmd = codec.GROUP_ADD if cur is None else codec.GROUP_MODIFY
                pre.append(self._enc_group(sw, target, cmd))
                self._installed_groups[gid] = target
        keep = {}
        for key, f in have.items():
            if key not in want:
                if lenient and key in adopted:
                    keep[key] = f
                else:
                    mid.append(self._enc_flow(sw, f, codec.DELETE_STRICT))
        for key, f in want.items():
            cur = have.get(key)
            if cur is None:
                mid.append(self._enc_flow(sw, f, codec.ADD))
            elif not cur.same_effect(f):
                # cookie changes are not applied by a modify: replace the flow instead
                cmd = codec.MODIFY_STRICT if cur.cookie == f.cookie else codec.ADD
                mid.append(self._enc_flow(sw, f, cmd))
        for gid in old_groups:
            if gid not in want_groups and gid in self._installed_groups and not self._group_wanted(gid):
                post.append(self._enc_group(sw, self._installed_groups.pop(gid), codec.GROUP_DELETE))
        if want or keep:
            self._installed[cookie] = {**keep, **want}
        else:
            self._installed.pop(cookie, None)
        return pre + mid + post

    def _group_wanted(self, gid: int) -> bool:
        return any(gid in d for d in self._desired_groups.values())

    def _enc_flow(self, sw: OfSwitch, f: Flow, cmd: int) -> tuple[int, bytes]:
        xid = sw.next_xid()
        self.stats[
            {codec.ADD: "flow_add", codec.MODIFY_STRICT: "flow_mod", codec.DELETE_STRICT: "flow_del"}[cmd]
        ] += 1
        return xid, codec.encode_flow_mod(f, cmd, xid)

    def _enc_group(self, sw: OfSwitch, g: Group, cmd: int) -> tuple[int, bytes]:
        xid = sw.next_xid()
        self.stats["group_mods"] += 1
        return xid, codec.encode_group_mod(g, cmd, xid)

    def _prune_msgs(self, sw: OfSwitch) -> list[tuple[int, bytes]]:
        by_cookie = {cookie_for(o): d for o, d in self._desired.items()}
        flows, groups = [], []
        for cookie in list(self._installed):
            inst = self._installed[cookie] or {}
            want = by_cookie.get(cookie, {})
            for key, f in inst.items():
                if key not in want:
                    flows.append(self._enc_flow(sw, f, codec.DELETE_STRICT))
            left = {k: f for k, f in inst.items() if k in want}
            if left:
                self._installed[cookie] = left
            else:
                self._installed.pop(cookie)
        desired_groups = {gid: g for d in self._desired_groups.values() for gid, g in d.items()}
        pre = []
        for gid, cur in list(self._installed_groups.items()):
            g = desired_groups.get(gid)
            if g is None:
                groups.append(self._enc_group(sw, self._installed_groups.pop(gid), codec.GROUP_DELETE))
            elif g != cur:
                pre.append(self._enc_group(sw, g, codec.GROUP_MODIFY))
                self._installed_groups[gid] = g
        self.stats["pruned"] += len(flows) + len(groups)
        return pre + flows + groups

    # ---- sending -----------------------------------------------------------------------------
    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            sw = self._ctl.switch
            owner_of = {}
            msgs = []
            for owner, m, _ in batch:
                for xid, _data in m:
                    owner_of[xid] = owner
                msgs.extend(m)
            failed: dict[str, list] = defaultdict(list)
            fatal: Exception | None = None
            try:
                if sw is None or sw.closed:
                    raise SwitchDisconnected("OpenFlow switch disconnected")
                self.stats["batches"] += 1
                for err in await sw.batch(msgs):
                    failed[owner_of[err[0]]].append(err)
            except Exception as exc:  # disconnect: state converges on reconnect
                fatal = exc
            for owner, _, fut in batch:
                if fut.done():
                    continue
                if fatal is not None:
                    self._installed[cookie_for(owner)] = _UNKNOWN
                    fut.set_exception(SwitchDisconnected(f"flows for {owner} not confirmed: {fatal}"))
                elif failed.get(owner):
                    self._installed[cookie_for(owner)] = _UNKNOWN
                    errs = failed[owner]
                    fut.set_exception(
                        OpenFlowError(
                            f"switch rejected {len(errs)} message(s) for {owner}: {errs[0][3]}", errs
                        )
                    )
                else:
                    fut.set_result(None)

    async def _send_now(self, sw: OfSwitch, what: str, msgs) -> None:
        errs = await sw.batch(msgs)
        if errs:
            raise OpenFlowError(f"switch rejected {len(errs)} message(s) during {what}: {errs[0][3]}", errs)

    # ---- (re)connect -------------------------------------------------------------------------
    async def _on_connect(self, sw: OfSwitch) -> None:
        async with self._lock:
            stats = await sw.flow_stats(MAGIC, MAGIC_MASK)
            installed: dict[int, dict[tuple, Flow]] = defaultdict(dict)
            for s in stats:
                if is_ours(s.cookie):
                    f = codec.flow_from_stats(s)
                    installed[s.cookie][f.key] = f
            self._installed = dict(installed)
            self._installed_groups = {d.group_id: codec.group_from_desc(d) for d in await sw.group_desc()}
            if not self._synced:
                self._adopted = {c: set(d) for c, d in self._installed.items()}
                self._adopted_buckets = {gid: set(g.buckets) for gid, g in self._installed_groups.items()}
            msgs: list[tuple[int, bytes]] = []
            # groups first (flows may point at them), then every owner's flows
            all_groups = {}
            for d in self._desired_groups.values():
                all_groups.update(d)
            for owner, want in self._desired.items():
                msgs += await self._diff_owner(sw, owner, cookie_for(owner), want, {}, {})
            gmsgs = []
            for gid, g in all_groups.items():
                cur = self._installed_groups.get(gid)
                if cur != g:
                    gmsgs.append(
                        self._enc_group(sw, g, codec.GROUP_ADD if cur is None else codec.GROUP_MODIFY)
                    )
                    self._installed_groups[gid] = g
            msgs = gmsgs + msgs
            if self._synced:
                msgs += self._prune_msgs(sw)
            self.stats["resyncs"] += 1
            self.stats["resync_msgs"] += len(msgs)
            if msgs:
                errs = await sw.batch(msgs)
                if errs:
                    log.error("resync: switch rejected %d messages, first: %s", len(errs), errs[0][3])
