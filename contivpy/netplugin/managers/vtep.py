"""VtepManager: ``/contiv.io/service/netplugin.vtep/<ip>:<port>`` -> one VXLAN port ``vxif<ip>`` per peer.

Desired = every registered VTEP except our own. After the initial snapshot, VXLAN ports left in OVS by an
earlier run for peers that are gone are removed (``prune_stale``).
"""

from __future__ import annotations

import logging

from contivpy.netplugin.datapath import VXLAN_BRIDGE, Datapath, vtep_port_name

log = logging.getLogger(__name__)


class VtepManager:
    def __init__(self, dp: Datapath, own_ip: str) -> None:
        self.dp = dp
        self.own_ip = own_ip
        self.desired: set[str] = set()
        self.applied: dict[str, int] = {}

    def on_update(self, key_tail: str, value: str | None) -> None:
        ip = key_tail.rsplit(":", 1)[0]
        if ip == self.own_ip:
            return
        if value is None:
            self.desired.discard(ip)
        else:
            self.desired.add(ip)

    async def apply_adds(self) -> None:
        existing = None
        for ip in sorted(self.desired - set(self.applied)):
            if existing is None:
                existing = await self.dp.ovs.list_ports(VXLAN_BRIDGE)
            self.applied[ip] = await self.dp.add_vtep(ip, existing=existing)

    async def apply_removes(self) -> None:
        for ip in sorted(set(self.applied) - self.desired):
            await self.dp.remove_vtep(ip)
            del self.applied[ip]

    async def prune_stale(self) -> None:
        for name in await self.dp.ovs.list_ports(VXLAN_BRIDGE):
            if name.startswith("vxif") and name not in {vtep_port_name(ip) for ip in self.applied}:
                await self.dp.ovs.remove_port(VXLAN_BRIDGE, name)
                log.info("removed stale VXLAN port %s", name)
