"""ServiceManager: service load balancers from etcd -> the vxlan bridge's service proxy (ofnet svcproxy).

Inputs (written by netmaster, docs/SVC_CONTRACT): ``/contiv.io/state/serviceLB/<service>:<tenant>``
(``ServiceLBState``: VIP ``ipaddress``, ``ports`` ``"<svcPort>:<provPort>:<TCP|UDP>"``, tenant) and
``/contiv.io/state/provider/<service>:<tenant>`` (``ProviderState``: provider IPs).  Both are keyed by
the same id; a service is programmed once its serviceLB record has a VIP and ports (no provider yet
= the VIP is answered and punted, packets are dropped until a provider is known).  The VRF is the
tenant.  Provider IPs are resolved to MACs by the ofnet agent from the endpoints it knows (local
and remote of the tenant); an unknown provider is skipped until its endpoint appears.

Desired vs applied (like the other managers): ``on_lb``/``on_provider`` only record; ``apply``
removes services whose desired value went or changed VIP/tenant, then (re-)adds every desired
service not applied with its current value (ofnet's ``add_service`` is an update for a known VIP).
A malformed record is logged once and skipped (it never blocks the other services); datapath
errors propagate so the reconcile loop retries.  vxlan bridge only (docs/ovs-pipeline.md).
"""

from __future__ import annotations

import logging

from contivpy.common.errors import ValidationError
from contivpy.model.state import ProviderState, ServiceLBState
from contivpy.netplugin.datapath import Datapath
from contivpy.ofnet.types import Service

log = logging.getLogger(__name__)


class ServiceManager:
    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.lbs: dict[str, ServiceLBState] = {}
        self.providers: dict[str, list[str]] = {}
        self.applied: dict[str, Service] = {}
        self.failed: dict[str, str] = {}

    def on_lb(self, sid: str, value: str | None) -> None:
        if value is None:
            self.lbs.pop(sid, None)
            return
        rec = ServiceLBState.parse(value)
        if rec is None:
            self._fail(sid, "malformed serviceLB record")
            return
        self.lbs[sid] = rec

    def on_provider(self, sid: str, value: str | None) -> None:
        if value is None:
            self.providers.pop(sid, None)
            return
        rec = ProviderState.parse(value)
        if rec is None:
            self._fail(sid, "malformed provider record")
            return
        self.providers[sid] = list(rec.Providers)

    def _fail(self, sid: str, err: str) -> None:
        if self.failed.get(sid) != err:
            log.error("service %s not programmed: %s", sid, err)
        self.failed[sid] = err

    def desired(self) -> dict[str, Service]:
        out = {}
        for sid, lb in self.lbs.items():
            if not lb.ipaddress or not lb.ports:
                continue  # netmaster has not allocated the VIP yet
            tenant = lb.tenantname or sid.rpartition(":")[2] or "default"
            try:
                out[sid] = Service(lb.ipaddress, tenant, list(lb.ports), self.providers.get(sid, []))
            except ValidationError as e:
                self._fail(sid, str(e))
                continue
            self.failed.pop(sid, None)
        return out

    async def apply(self) -> None:
        want = self.desired()
        for sid in list(self.applied):
            old, new = self.applied[sid], want.get(sid)
            if new is None or new.key != old.key:
                await self.dp.remove_service(old.vip, old.vrf)
                del self.applied[sid]
        for sid, svc in want.items():
            if self.applied.get(sid) == svc:
                continue
            await self.dp.add_service(svc)
            self.applied[sid] = svc

    def stats(self) -> list[dict]:
        return self.dp.service_stats()
