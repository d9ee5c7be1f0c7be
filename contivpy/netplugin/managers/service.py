"""ServiceManager: service load balancers from etcd -> the service proxy (ofnet svcproxy) of the vxlan
bridge, and of the vlan bridge in routing mode (datapath.py ``add_service`` picks the bridges).

Inputs (written by netmaster, docs/SVC_CONTRACT): ``/contiv.io/state/serviceLB/<service>:<tenant>``
(``ServiceLBState``: VIP ``ipaddress``, ``ports`` ``"<svcPort>:<provPort>:<TCP|UDP>"``, tenant) and
``/contiv.io/state/provider/<service>:<tenant>`` (``ProviderState``: provider IPs).  Both are keyed by
the same id; a service is programmed once its serviceLB record has a VIP and ports (no provider yet
= the VIP is answered and punted, packets are dropped until a provider is known).  The VRF is the
tenant.  Provider IPs are resolved to MACs by the ofnet agent from the endpoints it knows (local
and remote of the tenant); an unknown provider is skipped until its endpoint appears.

Desired vs applied (like the other managers): ``on_lb``/``on_provider`` record and enqueue the
service id; ``reconcile(sid)`` removes the service if its desired value went or changed VIP/tenant,
then (re-)adds it if its current value is not the applied one (ofnet's ``add_service`` is an update
for a known VIP).
Node ports (contivpy addition, ``ServiceLBState.nodeports`` ``"<nodePort>:<svcPort>:<TCP|UDP>"``): reconciler
key :data:`NODEPORTS` converges the host's ``CONTIV-NODEPORT`` DNATs (``dp.set_node_ports``, iptables.py) to
``(proto, nodePort) -> VIP:svcPort`` of every service with a VIP, whatever its tenant's state on this host
(the host routes the VIP through ``contivh1``). It is queued once at start (stale rules of services deleted
while the agent was down go) and on every serviceLB change; two services claiming the same node port:
the first by service id wins, the other is logged.
A malformed record is logged once and skipped (it never blocks the other services); datapath
errors propagate so the reconcile loop retries (docs/ovs-pipeline.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from contivpy.common.errors import ValidationError
from contivpy.common.reconcile import Reconciler
from contivpy.model.state import ProviderState, ServiceLBState
from contivpy.netplugin.dpapi import Datapath
from contivpy.ofnet.types import Service

log = logging.getLogger(__name__)
NODEPORTS = ""  # reconciler key of the node port rules (no service id is empty)


class ServiceManager:
    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.lbs: dict[str, ServiceLBState] = {}
        self.providers: dict[str, list[str]] = {}
        self.applied: dict[str, Service] = {}
        self.failed: dict[str, str] = {}
        # a tenant's services wait for its first network on this host (which gives the tenant its VRF
        # id, netplugin/vrf.py): the daemon sets ``tenant_ready`` and calls ``wake_tenant`` on a network
        self.tenant_ready: Callable[[str], bool] = lambda _tenant: True
        self.node_ports: list[tuple[str, int, str, int]] | None = None  # applied (None: not yet)
        self.rec: Reconciler[str] = Reconciler(
            "services",
            self.reconcile,
            desired=lambda sid: sid == NODEPORTS or sid in self.lbs or sid in self.applied,
        )
        self.rec.enqueue(NODEPORTS)

    def on_lb(self, sid: str, value: str | None) -> None:
        if value is None:
            self.lbs.pop(sid, None)
        else:
            rec = ServiceLBState.parse(value)
            if rec is None:
                self._fail(sid, "malformed serviceLB record")
                return
            self.lbs[sid] = rec
        self.rec.enqueue(sid)
        self.rec.enqueue(NODEPORTS)

    def on_provider(self, sid: str, value: str | None) -> None:
        if value is None:
            self.providers.pop(sid, None)
        else:
            rec = ProviderState.parse(value)
            if rec is None:
                self._fail(sid, "malformed provider record")
                return
            self.providers[sid] = list(rec.Providers)
        self.rec.enqueue(sid)

    def _fail(self, sid: str, err: str) -> None:
        if self.failed.get(sid) != err:
            log.error("service %s not programmed: %s", sid, err)
        self.failed[sid] = err

    def want(self, sid: str) -> Service | None:
        """The service as it should be programmed (None: absent, no VIP yet, or bad data)."""
        lb = self.lbs.get(sid)
        if lb is None or not lb.ipaddress or not lb.ports:
            return None  # gone, or netmaster has not allocated the VIP yet
        tenant = lb.tenantname or sid.rpartition(":")[2] or "default"
        try:
            svc = Service(lb.ipaddress, tenant, list(lb.ports), self.providers.get(sid, []))
        except ValidationError as e:
            self._fail(sid, str(e))
            return None
        self.failed.pop(sid, None)
        return svc

    def desired(self) -> dict[str, Service]:
        return {sid: svc for sid in self.lbs if (svc := self.want(sid)) is not None}

    def want_node_ports(self) -> list[tuple[str, int, str, int]]:
        """``(proto, nodePort, vip, svcPort)`` of every service with a VIP (sorted; conflicts logged)."""
        out: dict[tuple[str, int], tuple[str, int, str, int]] = {}
        for sid in sorted(self.lbs):
            lb = self.lbs[sid]
            if not lb.ipaddress:
                continue
            for n in lb.nodeports:
                parts = str(n).split(":")
                if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
                    self._fail(sid, f"malformed node port {n!r}")
                    continue
                key = (parts[2].lower(), int(parts[0]))
                if key in out:
                    log.error(
                        "service %s: node port %d/%s is already used by another service", sid, *key[::-1]
                    )
                    continue
                out[key] = (key[0], key[1], lb.ipaddress, int(parts[1]))
        return sorted(out.values())

    async def reconcile(self, sid: str) -> None:
        if sid == NODEPORTS:
            want = self.want_node_ports()
            if want != self.node_ports:
                await self.dp.set_node_ports(want)
                self.node_ports = want
            return
        new, old = self.want(sid), self.applied.get(sid)
        if old is not None and (new is None or new.key != old.key):
            await self.dp.remove_service(old.vip, old.vrf)
            del self.applied[sid]
        if new is not None and self.applied.get(sid) != new and self.tenant_ready(new.vrf):
            await self.dp.add_service(new)
            self.applied[sid] = new

    def wake_tenant(self, tenant: str) -> None:
        """A network of ``tenant`` is programmed: its services waiting for the VRF id may go."""
        for sid, lb in self.lbs.items():
            if (lb.tenantname or sid.rpartition(":")[2] or "default") == tenant and sid not in self.applied:
                self.rec.enqueue(sid)

    async def apply(self) -> None:
        for sid in sorted(set(self.lbs) | set(self.applied)):
            await self.reconcile(sid)
        await self.reconcile(NODEPORTS)

    def stats(self) -> list[dict]:
        return self.dp.service_stats()
