"""NetworkManager: ``/contiv.io/state/nets/<net>.<tenant>`` -> ofnet networks (VLAN <-> VNI mapping).

Desired = every network state in etcd. A network is added to the bridge of its encap (vxlan -> local VLAN
``pktTag`` + VNI ``extPktTag`` on contivVxlanBridge; vlan -> VLAN ``pktTag`` on contivVlanBridge). Network
*modify* events are ignored like the original (netmaster never changes the tags of a live network).
"""

from __future__ import annotations

import logging

from contivpy.common.errors import ConflictError, ValidationError
from contivpy.model.state import NetworkState
from contivpy.netplugin.datapath import Datapath, NetSpec

log = logging.getLogger(__name__)


def net_spec(value: str) -> NetSpec | None:
    """The datapath view of a ``NetworkState`` record (None, logged, if it is malformed)."""
    try:
        st = NetworkState.from_json(value)
        if not st.id:
            raise ValueError("no id")
        return NetSpec(
            id=st.id,
            tenant=st.tenant or "",
            encap=st.pktTagType or "vxlan",
            vlan=int(st.pktTag or 0),
            vni=int(st.extPktTag or 0),
            gateway=st.gateway or "",
            subnet_len=int(st.subnetLen or 0),
            subnet=f"{st.subnetIP}/{st.subnetLen}" if st.subnetIP and st.subnetLen else "",
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("ignoring malformed network state: %s", e)
        return None


class NetworkManager:
    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.desired: dict[str, NetSpec] = {}
        self.applied: dict[str, NetSpec] = {}
        self.rejected: set[str] = set()

    def on_update(self, net_id: str, value: str | None) -> None:
        self.rejected.discard(net_id)
        if value is None:
            self.desired.pop(net_id, None)
            return
        spec = net_spec(value)
        if spec is not None and net_id not in self.desired:
            self.desired[net_id] = spec

    def get(self, net_id: str) -> NetSpec | None:
        return self.applied.get(net_id)

    async def apply_adds(self) -> None:
        for nid, spec in list(self.desired.items()):
            if nid not in self.applied and nid not in self.rejected:
                try:
                    await self.dp.add_network(spec)
                except (ValidationError, ConflictError) as e:  # bad data: skip it, keep the others converging
                    log.error("network %s not programmed: %s", nid, e)
                    self.rejected.add(nid)
                    continue
                self.applied[nid] = spec
                log.info("network %s added (%s vlan %d vni %d)", nid, spec.encap, spec.vlan, spec.vni)

    async def apply_removes(self, in_use: set[str]) -> None:
        for nid, spec in list(self.applied.items()):
            if nid not in self.desired and nid not in in_use:
                await self.dp.remove_network(spec)
                del self.applied[nid]
                log.info("network %s removed", nid)
