"""VtepManager: ``/contiv.io/service/netplugin.vtep/<ip>:<port>`` -> one VXLAN port ``vxif<ip>`` per peer.

Desired = every registered VTEP except our own. Per key (the peer IP): desired and not applied -> VXLAN
port + flows, then wake the remote endpoints behind it; applied and not desired -> leave ``applied``
first (endpoint installs stop using it), remove it, then wake its endpoints so their flows go too. A
peer whose add failed half-way (port created, OVS refused it) is ``partial``: its removal still runs.
After the initial sync, VXLAN ports left in OVS by an earlier run for peers that are neither desired nor
applied are removed (``prune_stale``); a peer still being retried keeps its port.

Grace period: a peer's key goes when its registration lease expires, which also happens when its agent
is down for a few seconds (killed, restarting) while its data plane runs on. Removing the tunnel then and
re-adding it when the agent re-registers costs that peer's traffic about a second (a new port, its flows,
its endpoints' flows). So a working tunnel (``applied``) outlives its key by ``remove_grace`` seconds
(default ``REMOVE_GRACE``); a key that comes back within that time leaves it untouched. A port whose add
failed half-way (``partial``, not working anyway) goes at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from contivpy.common.reconcile import Reconciler
from contivpy.netplugin.datapath import VXLAN_BRIDGE, vtep_port_name
from contivpy.netplugin.dpapi import Datapath

log = logging.getLogger(__name__)

#: seconds a working tunnel outlives its peer's registration key (lease TTL 10 s: outages of the peer's
#: agent up to about 27 s then cost no tunnel rebuild; a host that left for good loses its tunnel after
#: lease expiry + this)
REMOVE_GRACE = 20.0


class VtepManager:
    def __init__(self, dp: Datapath, own_ip: str, remove_grace: float = REMOVE_GRACE) -> None:
        self.dp = dp
        self.own_ip = own_ip
        self.remove_grace = remove_grace
        self.desired: set[str] = set()
        self.applied: dict[str, int] = {}
        self.partial: set[str] = set()  # an add failed half-way: a port may be left to remove
        self.gone_at: dict[str, float] = {}  # peer -> monotonic time its key went (removal after the grace)
        self.dependents: list[Callable[[str], None]] = []  # called with a peer IP when it comes or goes
        self.rec: Reconciler[str] = Reconciler(
            "vteps", self.reconcile, desired=lambda ip: ip in self.desired or ip in self.applied
        )

    def on_update(self, key_tail: str, value: str | None) -> None:
        ip = key_tail.rsplit(":", 1)[0]
        if ip == self.own_ip:
            return
        if value is None:
            if ip in self.desired:
                self.gone_at[ip] = time.monotonic()
            self.desired.discard(ip)
        else:
            self.desired.add(ip)
            self.gone_at.pop(ip, None)
        self.rec.enqueue(ip)

    def grace_left(self, ip: str) -> float:
        """Seconds until the tunnel to a departed peer ``ip`` may go (0: now)."""
        if ip not in self.applied or ip in self.partial or ip not in self.gone_at:
            return 0.0
        return max(0.0, self.gone_at[ip] + self.remove_grace - time.monotonic())

    async def reconcile(self, ip: str) -> None:
        if ip in self.desired and ip not in self.applied:
            self.partial.add(ip)
            self.applied[ip] = await self.dp.add_vtep(ip)
            self.partial.discard(ip)
        elif ip not in self.desired and (ip in self.applied or ip in self.partial):
            left = self.grace_left(ip)
            if left > 0:
                log.info(
                    "peer %s deregistered: keeping its tunnel for %.1f s in case it comes back", ip, left
                )
                asyncio.get_running_loop().call_later(left + 0.01, self.rec.enqueue, ip)
                return
            self.gone_at.pop(ip, None)
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
