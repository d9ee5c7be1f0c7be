"""NetworkManager: ``/contiv.io/state/nets/<net>.<tenant>`` -> ofnet networks (VLAN <-> VNI mapping).

Desired = every network state in etcd. A network is added to the bridge of its encap (vxlan -> local VLAN
``pktTag`` + VNI ``extPktTag`` on contivVxlanBridge; vlan -> VLAN ``pktTag`` on contivVlanBridge). Network
*modify* events are ignored like the original (netmaster never changes the tags of a live network).

Per key (``reconcile``): desired and not applied -> allocate (or read back) the tenant's persisted VRF id
(``vrf.VrfAllocator``, committed before any flow uses it), add, then wake the endpoints waiting for it;
applied and not desired -> remove once ``in_use(net_id)`` is false (the last user leaving re-enqueues the
key), and release the tenant's VRF id when it was the tenant's last network on this host.
Bad data (ValidationError/ConflictError from the datapath) is a permanent failure of that key: shown in
the status, retried only when the key changes. Datapath errors propagate and are retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from contivpy.common.errors import ConflictError, ValidationError
from contivpy.common.reconcile import Reconciler
from contivpy.model.state import NetworkState
from contivpy.netplugin.datapath import NetSpec
from contivpy.netplugin.dpapi import Datapath
from contivpy.netplugin.vrf import VrfAllocator

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
            name=st.networkName or st.id.rsplit(".", 1)[0],
            nw_type=st.nwType or "data",
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("ignoring malformed network state: %s", e)
        return None


def tenant_of(spec: NetSpec) -> str:
    return spec.tenant or "default"


class NetworkManager:
    def __init__(self, dp: Datapath, vrfs: VrfAllocator | None = None) -> None:
        self.dp = dp
        self.vrfs = vrfs  # None: VRF ids are left to the datapath (manager unit tests)
        self.desired: dict[str, NetSpec] = {}
        self.applied: dict[str, NetSpec] = {}
        self.in_use: Callable[[str], bool] = lambda _nid: False
        self.dependents: list[Callable[[str], None]] = []  # called with a net id once it is applied
        self.rec: Reconciler[str] = Reconciler(
            "networks",
            self.reconcile,
            permanent=(ValidationError, ConflictError),
            desired=lambda nid: nid in self.desired or nid in self.applied,
        )

    def on_update(self, net_id: str, value: str | None) -> None:
        if value is None:
            self.desired.pop(net_id, None)
        else:
            spec = net_spec(value)
            if spec is None:
                return
            self.desired.setdefault(net_id, spec)  # a modify keeps the tags (see above), but retries
        self.rec.enqueue(net_id)

    def get(self, net_id: str) -> NetSpec | None:
        return self.applied.get(net_id)

    async def reconcile(self, nid: str) -> None:
        spec, cur = self.desired.get(nid), self.applied.get(nid)
        if spec is not None and cur is None:
            if self.vrfs is not None:
                spec = replace(spec, vrf_id=await self.vrfs.ensure(tenant_of(spec)))
            try:
                await self.dp.add_network(spec)
            except (ValidationError, ConflictError) as e:
                log.error("network %s not programmed: %s", nid, e)
                raise
            self.applied[nid] = spec
            log.info("network %s added (%s vlan %d vni %d)", nid, spec.encap, spec.vlan, spec.vni)
            for wake in self.dependents:
                wake(nid)
        elif spec is None and cur is not None and not self.in_use(nid):
            del self.applied[nid]  # gone for the endpoint managers before the removal is awaited
            try:
                await self.dp.remove_network(cur)
            except BaseException:
                self.applied.setdefault(nid, cur)
                raise
            log.info("network %s removed", nid)
            if self.vrfs is not None and tenant_of(cur) not in self.tenants():
                # (a network of the tenant still wanted, even one being added now, keeps the id)
                await self.vrfs.release(tenant_of(cur))

    def has_tenant(self, tenant: str) -> bool:
        """A network of ``tenant`` is programmed (so the tenant has its VRF id)."""
        return any(tenant_of(n) == tenant for n in self.applied.values())

    def tenant_of_applied(self, nid: str) -> str:
        spec = self.applied.get(nid)
        return tenant_of(spec) if spec is not None else ""

    def tenants(self) -> set[str]:
        """Tenants with a desired or programmed network on this host (their VRF ids are kept)."""
        return {tenant_of(n) for n in (*self.desired.values(), *self.applied.values())}

    async def apply(self) -> None:
        for nid in sorted(set(self.desired) | set(self.applied)):
            try:
                await self.reconcile(nid)
            except (ValidationError, ConflictError):
                continue
