"""VtepManager: ``/contiv.io/service/netplugin.vtep/<ip>:<port>`` -> one VXLAN port ``vxif<ip>`` per peer.

Desired = every registered VTEP except our own. Per key (the peer IP): desired and not applied -> VXLAN
port + flows, then wake the remote endpoints behind it; applied and not desired -> leave ``applied``
first (endpoint installs stop using it), remove it, then wake its endpoints so their flows go too. A
peer whose add failed half-way (port created, OVS refused it) is ``partial``: its removal still runs.
After the initial sync, VXLAN ports left in OVS by an earlier run for peers that are neither desired nor
applied are removed (``prune_stale``); a peer still being retried keeps its port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from contivpy.common.reconcile import Reconciler
from contivpy.netplugin.datapath import VXLAN_BRIDGE, vtep_port_name
from contivpy.netplugin.dpapi import Datapath

log = logging.getLogger(__name__)


class VtepManager:
    def __init__(self, dp: Datapath, own_ip: str) -> None:
        self.dp = dp
        self.own_ip = own_ip
        self.desired: set[str] = set()
        self.applied: dict[str, int] = {}
        self.partial: set[str] = set()  # an add failed half-way: a port may be left to remove
        self.dependents: list[Callable[[str], None]] = []  # called with a peer IP when it comes or goes
        self.rec: Reconciler[str] = Reconciler(
            "vteps", self.reconcile, desired=lambda ip: ip in self.desired or ip in self.applied
        )

    def on_update(self, key_tail: str, value: str | None) -> None:
        ip = key_tail.rsplit(":", 1)[0]
        if ip == self.own_ip:
            return
        if value is None:
            self.desired.discard(ip)
        else:
            self.desired.add(ip)
        self.rec.enqueue(ip)

    async def reconcile(self, ip: str) -> None:
        if ip in self.desired and ip not in self.applied:
            self.partial.add(ip)
            self.applied[ip] = await self.dp.add_vtep(ip)
            self.partial.discard(ip)
        elif ip not in self.desired and (ip in self.applied or ip in self.partial):
            ofport = self.applied.pop(ip, None)
            try:
                await self.dp.remove_vtep(ip)
            except BaseException:
                if ofport is not None:
                    self.applied.setdefault(ip, ofport)
                raise
            self.partial.discard(ip)
        else:
            return
        for wake in self.dependents:
            wake(ip)

    async def apply(self) -> None:
        for ip in sorted(self.desired ^ set(self.applied) | self.partial):
            await self.reconcile(ip)

    async def prune_stale(self) -> None:
        keep = {vtep_port_name(ip) for ip in self.desired | set(self.applied)}
        for name in await self.dp.vtep_ports():
            if name not in keep:
                await self.dp.remove_port(VXLAN_BRIDGE, name)
                log.info("removed stale VXLAN port %s", name)
