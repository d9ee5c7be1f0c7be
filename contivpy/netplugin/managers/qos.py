"""QoS of local endpoints from their group's netprofile (docs/original.md §5.3, §7.2 TestNetprofile*).

Desired: every ``/contiv.io/state/endpointGroups/<group>:<tenant>`` record (netmaster copies the attached
netprofile's ``DSCP``, ``Bandwidth`` and ``Burst`` into it; all zero/empty once detached). For a local
endpoint of that group (its ``endpointGroupKey``):
- DSCP -> ofnet ``LocalEndpoint.dscp``: the endpoint's table-1 port flow for IP sets ``ip_dscp``
  (the endpoint's flows are one ofnet owner, so re-adding it diffs just that owner's flows);
- Bandwidth -> Interface ``ingress_policing_rate`` in kbps, the original's way: value * 1024^k / 1000
  (k = 1, 2, 3 for k/m/g, integer division); Burst -> ``ingress_policing_burst`` as is. 0/0 = no policing.

One reconciler key per group: a change of the group's QoS re-applies it to the group's bound endpoints.

Invariants: an endpoint is *bound* here once its port and flows exist (``bind``) and unbound before they
go (``unbind``). Every application, the first one included, runs under the endpoint's own lock and reads
the group's desired QoS inside it, so a netprofile change racing an endpoint create is never lost: either
``bind`` sees the new value, or the endpoint is already bound when ``apply`` runs for that change.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace

from contivpy.common.errors import ContivError
from contivpy.common.reconcile import Reconciler
from contivpy.model.state import EndpointGroupState
from contivpy.netplugin.datapath import EpSpec
from contivpy.netplugin.dpapi import Datapath

log = logging.getLogger(__name__)

_BW = re.compile(r"^\s*(\d+)\s*([kmgKMG]?)")


def bandwidth_kbps(bandwidth: str) -> int:
    """``10mbps`` -> 10485 (10 * 1024^2 / 1000); ``""`` or unparsable -> 0 (no policing)."""
    m = _BW.match(bandwidth or "")
    if not m:
        return 0
    exp = {"": 0, "k": 1, "m": 2, "g": 3}[m.group(2).lower()]
    return int(m.group(1)) * 1024**exp // 1000


@dataclass(frozen=True)
class Qos:
    dscp: int = 0
    rate_kbps: int = 0
    burst: int = 0


@dataclass
class _Bound:
    spec: EpSpec  # dscp field ignored: the applied one is in ``applied``
    ovs_port: str
    epg_key: str  # "<group>:<tenant>"
    applied: Qos | None = None


class QosManager:
    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.desired: dict[str, Qos] = {}  # epg state id -> QoS
        self.bound: dict[str, _Bound] = {}  # endpoint state id -> binding
        self._locks: dict[str, asyncio.Lock] = {}
        self.rec: Reconciler[str] = Reconciler(
            "groupQos", self.reconcile, desired=lambda k: k in self.desired
        )

    def on_update(self, epg_key: str, value: str | None) -> None:
        if value is None:
            self.desired.pop(epg_key, None)
            self.rec.enqueue(epg_key)
            return
        try:
            st = EndpointGroupState.from_json(value)
            q = Qos(int(st.dscp or 0), bandwidth_kbps(st.bandwidth), int(st.burst or 0))
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring malformed endpoint group state %s", epg_key)
            return
        if not 0 <= q.dscp <= 63:
            log.error("group %s: DSCP %d out of range, ignored", epg_key, q.dscp)
            q = replace(q, dscp=0)
        self.desired[epg_key] = q
        self.rec.enqueue(epg_key)

    def qos(self, epg_key: str) -> Qos:
        return self.desired.get(epg_key, Qos())

    def _lock(self, ep_id: str) -> asyncio.Lock:
        return self._locks.setdefault(ep_id, asyncio.Lock())

    async def _apply_one(
        self, b: _Bound, fresh_port: bool = False, policing: tuple[int, int] | None = None
    ) -> None:
        q = self.qos(b.epg_key)
        if q == b.applied:
            return
        if b.applied is None or q.dscp != b.applied.dscp:
            await self.dp.add_local_endpoint(replace(b.spec, dscp=q.dscp))
        if b.applied is not None:
            policing = (b.applied.rate_kbps, b.applied.burst)
        elif fresh_port:  # just created: OVS's default 0/0
            policing = (0, 0)
        # else: what the caller read from OVSDB (a restart's port listing), or None = unknown
        if policing != (q.rate_kbps, q.burst):
            await self.dp.set_port_policing(b.ovs_port, q.rate_kbps, q.burst)
        if q != Qos() or b.applied is not None:
            log.info("endpoint %s: qos %s", b.spec.id, q)
        b.applied = q

    async def bind(
        self,
        spec: EpSpec,
        ovs_port: str,
        epg_key: str,
        fresh_port: bool = False,
        policing: tuple[int, int] | None = None,
    ) -> None:
        """Install the local endpoint's flows with its group's DSCP and set its port's policing
        (skipped when it is already right: a ``fresh_port`` is 0/0, ``policing`` is the port's
        current (rate, burst) when the caller read it from OVSDB)."""
        async with self._lock(spec.id):
            b = _Bound(spec, ovs_port, epg_key)
            await self._apply_one(b, fresh_port, policing)
            self.bound[spec.id] = b

    async def bind_many(self, binds: list[tuple[EpSpec, str, str, bool, tuple[int, int] | None]]) -> None:
        """``bind`` for several endpoints (``(spec, ovs_port, epg_key, fresh_port, policing)`` each):
        their flows are installed together (a restart re-binds all its local endpoints so), then
        each port's policing is set where it differs."""
        bound = [(_Bound(spec, port, epg), fresh, pol) for spec, port, epg, fresh, pol in binds]
        specs = [replace(b.spec, dscp=self.qos(b.epg_key).dscp) for b, _, _ in bound]
        await self.dp.add_local_endpoints(specs)
        for (b, fresh, policing), spec in zip(bound, specs, strict=True):
            async with self._lock(b.spec.id):
                q = self.qos(b.epg_key)
                if q.dscp != spec.dscp:  # the group's qos changed meanwhile
                    await self.dp.add_local_endpoint(replace(b.spec, dscp=q.dscp))
                if fresh:
                    policing = (0, 0)
                if policing != (q.rate_kbps, q.burst):
                    await self.dp.set_port_policing(b.ovs_port, q.rate_kbps, q.burst)
                if q != Qos():
                    log.info("endpoint %s: qos %s", b.spec.id, q)
                b.applied = q
                self.bound[b.spec.id] = b

    async def unbind(self, ep_id: str) -> None:
        """Forget the endpoint (before its flows and port go): a running ``apply`` finishes first."""
        lock = self._lock(ep_id)
        async with lock:
            self.bound.pop(ep_id, None)
        if self._locks.get(ep_id) is lock and not lock.locked():
            del self._locks[ep_id]

    async def reconcile(self, epg_key: str) -> None:
        """Re-apply the group's QoS to its bound endpoints whose applied QoS differs. Every endpoint is
        tried; the first failure is raised afterwards (the group key is retried, done ones are no-ops)."""
        err: BaseException | None = None
        for ep_id, b in list(self.bound.items()):
            if b.epg_key != epg_key:
                continue
            async with self._lock(ep_id):
                if self.bound.get(ep_id) is b:
                    try:
                        await self._apply_one(b)
                    except ContivError as e:
                        err = err or e
        if err is not None:
            raise err

    async def apply(self) -> None:
        """Re-apply QoS to bound endpoints whose group's QoS changed (flows diffed, OVSDB set)."""
        for key in sorted({b.epg_key for b in self.bound.values()}):
            await self.reconcile(key)
