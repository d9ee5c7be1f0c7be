"""Endpoints: local endpoint operations (the API the Docker plugin calls) and remote-endpoint learning.

Local endpoint create (``EndpointService.create_endpoint``), in this order, each step idempotent:
  1. the network must exist (``/contiv.io/state/nets/<net>.<tenant>``, as the agent's watch of it
     holds it; read from etcd when the watch has not shown it yet) -- else NotFoundError and nothing
     is touched (netmaster checks it again in its own txn);
  2. POST ``/plugin/createEndpoint`` to the netmaster leader (allocates/records the IP, MAC, EPG);
  3. port number reserved (in memory, under the port lock): after the last one handed out, skipping
     numbers recorded in ``LocalEpInfo`` of ``/contiv.io/oper/ovs-driver/<host>``, reserved by creates
     in flight, or named by existing links;
  4. veth ``vportN``/``vvportN`` (MAC, MTU, TX checksum offload off), OVS access port ``vvportN``
     (tag, ``external_ids:endpoint-id``), wait for its ofport, install the flows and the port policing
     with the group's netprofile (``QosManager.bind``);
  5. ONE txn: compare-and-swap of the port record (``currPortNum`` and the endpoint's ``LocalEpInfo``
     entry) and ``/contiv.io/oper/eps/<id>``: from now on every other host learns the endpoint.
Concurrent creates share their writes (common/groupcommit.py: whoever comes while one is in flight
joins the next, each caller gets its own answer, a failed batch is retried one by one): the OVSDB
port additions (one transaction: one reconfiguration of ovs-vswitchd), the flows (one switch update
per bridge: one rewrite of the network's flood group) and step 5 (one txn, one rewrite of the port
record, with every endpoint's oper record).
A failure in 3-5 undoes what was done (flows, port, veth, the reservation; the records if the
commit's answer was lost) and releases the endpoint in netmaster, so nothing is left half-created.
The port record and the oper record are always written together, so one never exists without the
other (docs/benchmarks.md, "etcd requests per endpoint": 2 etcd writes per create became 1).

Delete runs the same steps backwards (oper record and port record entry in one txn first); every
step tolerates "already gone".

Restart (``restore``): local endpoints listed in ``LocalEpInfo`` whose ``vvportN`` still exists are
re-bound (OVS port kept as is, so its ofport and flows stay identical); OVS ports with an
``endpoint-id`` that no local endpoint claims are removed.

Remote endpoints (``RemoteEndpointManager``): desired = every ``/contiv.io/oper/eps/`` record of a
served network (netplugin/served.py: one watch per network) whose ``homingHost`` is another host; a
local create waits for its network's (``wait_installed``). One reconciler key per endpoint,
installed once its network and its VTEP are applied (those managers re-enqueue the endpoints
waiting for them), removed when its record, its network or its VTEP goes, or its network stops
being served. A local endpoint leaving calls ``released(net_id)`` so that a network whose removal
waited for it is reconciled again, and the served networks are re-evaluated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from contivpy.common.errors import (
    ConflictError,
    ContivError,
    ExternalServiceError,
    NotFoundError,
    ValidationError,
)
from contivpy.common.groupcommit import GroupCommit
from contivpy.common.kv.base import Compare, Delete, KVStore, Put
from contivpy.common.netaddr import mac_from_ip
from contivpy.common.reconcile import Reconciler
from contivpy.model import keys
from contivpy.model.state import OperEndpoint, OvsDriverOper
from contivpy.netplugin import dpapi, links
from contivpy.netplugin.datapath import VLAN_BRIDGE, VXLAN_BRIDGE, Datapath, EpSpec
from contivpy.netplugin.managers.network import NetworkManager, net_spec
from contivpy.netplugin.managers.qos import QosManager
from contivpy.netplugin.netmaster_client import NetmasterClient
from contivpy.netplugin.records import EndpointInfo

log = logging.getLogger(__name__)
MAX_PORT = 0xFFFE


class RemoteEndpointManager:
    """Remote endpoints, one reconciler key per oper endpoint id (see the package docstring)."""

    def __init__(self, dp: dpapi.Datapath, nets: NetworkManager, vteps, host: str) -> None:
        self.dp, self.nets, self.vteps, self.host = dp, nets, vteps, host
        self.desired: dict[str, OperEndpoint] = {}
        self.applied: dict[str, EpSpec] = {}
        # This host's own oper records seen in the start's listing, decoded there anyway: the
        # restart re-binds its local endpoints from them (no read per endpoint); None once taken.
        self.listed_local: dict[str, OperEndpoint] | None = {}
        self.rec: Reconciler[str] = Reconciler(
            "remoteEndpoints",
            self.reconcile,
            permanent=(ValidationError, ConflictError),
            desired=lambda eid: eid in self.desired or eid in self.applied,
        )
        nets.dependents.append(self._wake_net)
        vteps.dependents.append(self._wake_vtep)

    def on_update(self, ep_id: str, value: str | None, net: str | None = None) -> None:
        """A change of ``/contiv.io/oper/eps/<ep_id>``. ``net``: the network whose stream delivered
        it (served.py); a record of another network that shares the prefix is ignored."""
        if value is None:
            cur = self.desired.get(ep_id)
            if net is not None and cur is not None and cur.netID != net:
                return
            if self.listed_local is not None:
                self.listed_local.pop(ep_id, None)
            self.desired.pop(ep_id, None)
        else:
            try:
                ep = OperEndpoint.from_json(value)
            except (ValueError, TypeError):
                log.warning("ignoring malformed oper endpoint %s", ep_id)
                return
            if net is not None and ep.netID != net:
                return
            if self.listed_local is not None:
                self.listed_local.pop(ep_id, None)
            if ep.homingHost != self.host:
                self.desired[ep_id] = ep
            else:
                self.desired.pop(ep_id, None)
                if self.listed_local is not None:
                    self.listed_local[ep_id] = ep
        self.rec.enqueue(ep_id)

    async def wait_installed(self, net_ids: set[str], timeout: float = 5.0) -> bool:
        """Until every remote endpoint of ``net_ids`` that can be programmed now (its network and VTEP
        applied) is: what a local create waits for after opening the networks' watches. False (logged
        by the caller) after ``timeout``, e.g. while a flow keeps failing (the reconciler retries)."""

        def pending() -> bool:
            for eid, ep in self.desired.items():
                if ep.netID in net_ids:
                    spec = self._spec(ep)
                    if spec is not None and self.applied.get(eid) != spec:
                        return True
            return False

        try:
            async with asyncio.timeout(timeout):
                while pending():
                    await self.rec.wait_settled()
                    if pending():
                        await asyncio.sleep(0.005)
        except TimeoutError:
            return False
        return True

    def take_listed_local(self) -> dict[str, OperEndpoint]:
        """This host's oper records as listed (and watched) so far; stops collecting them."""
        listed, self.listed_local = self.listed_local or {}, None
        return listed

    def _wake_net(self, net_id: str) -> None:
        for eid, ep in self.desired.items():
            if ep.netID == net_id:
                self.rec.enqueue(eid)
        for eid, spec in self.applied.items():
            if spec.net.id == net_id:
                self.rec.enqueue(eid)

    def _wake_vtep(self, ip: str) -> None:
        for eid, ep in self.desired.items():
            if ep.vtepIP == ip:
                self.rec.enqueue(eid)
        for eid, spec in self.applied.items():
            if spec.vtep_ip == ip:
                self.rec.enqueue(eid)

    def _spec(self, ep: OperEndpoint) -> EpSpec | None:
        """The endpoint as it should be programmed now; None while its network/VTEP is not applied."""
        net = self.nets.get(ep.netID)
        if net is None:
            return None
        if net.encap == "vxlan" and ep.vtepIP not in self.vteps.applied:
            return None
        return EpSpec(
            ep.id or ep.endpointID,
            net,
            ep.ipAddress,
            ep.macAddress,
            ep.endpointGroupId,
            ep.ipv6Address,
            vtep_ip=ep.vtepIP,
        )

    async def reconcile(self, eid: str) -> None:
        ep = self.desired.get(eid)
        spec = self._spec(ep) if ep is not None else None
        cur = self.applied.get(eid)
        if cur == spec:
            return
        if cur is not None:
            await self.dp.remove_remote_endpoint(cur)
            del self.applied[eid]
            if cur.net.id not in self.nets.desired:
                self.nets.rec.enqueue(cur.net.id)  # it may have waited for its last user
        if spec is None:
            return
        self.applied[eid] = spec  # the network counts as in use while the install is in flight
        try:
            await self.dp.add_remote_endpoint(spec)
        except BaseException as e:
            self.applied.pop(eid, None)
            if spec.net.id not in self.nets.desired:
                self.nets.rec.enqueue(spec.net.id)
            if isinstance(e, (ValidationError, ConflictError)):
                log.error("remote endpoint %s not installed: %s", eid, e)
            raise

    async def apply(self) -> None:
        for eid in sorted(set(self.desired) | set(self.applied)):
            try:
                await self.reconcile(eid)
            except (ValidationError, ConflictError):
                continue

    def uses(self, net_id: str) -> bool:
        return any(s.net.id == net_id for s in self.applied.values())

    def nets_in_use(self) -> set[str]:
        return {s.net.id for s in self.applied.values()}


class EndpointService:
    """Local endpoint operations; also the restart reconciler for local endpoints."""

    def __init__(
        self, cfg, kv: KVStore, dp: Datapath, nets: NetworkManager, netmaster: NetmasterClient, qos=None
    ) -> None:
        self.cfg, self.kv, self.dp, self.nets, self.netmaster = cfg, kv, dp, nets, netmaster
        self.qos = qos or QosManager(dp)  # flows + port policing of bound local endpoints
        self.local: dict[str, EndpointInfo] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._mtu: int | None = None
        self._port_lock = asyncio.Lock()  # port number allocation/release (one record per host)
        # the commits of concurrent creates: one txn for those that come while one is in flight
        self._commits: GroupCommit[tuple[str, int, dict, OperEndpoint], None] = GroupCommit(
            self._commit_many, max_batch=16, name="endpoint_commits"
        )
        self._port_rec: tuple[int, OvsDriverOper] | None = None  # last written (mod revision, record)
        self._reserved: dict[str, int] = {}  # endpoint -> port number held until its record is written
        self._last_port = 0  # the last port number handed out (the next search starts after it)
        self.released: Callable[[str], None] = lambda _net_id: None  # a local endpoint left this network
        # creates in flight per network (they count as local endpoints for the served set), and the
        # daemon's hook that opens a network's endpoint watch before the first create on it returns
        self.creating: dict[str, int] = {}
        self.serve: Callable[[str], Awaitable[None]] | None = None

    def local_networks(self) -> set[str]:
        """Networks with a local endpoint or a create in flight (the served set's input)."""
        return {f"{e.network}.{e.tenant}" for e in self.local.values()} | set(self.creating)

    async def mtu(self, bridge: str = VXLAN_BRIDGE) -> int:
        """The MTU of a port on ``bridge``: ``--mtu N`` on every port; ``auto`` (the original's HEAD
        rule) the lowest MTU of the host's links on the vlan bridge and 50 less on the vxlan bridge
        (VXLAN's overhead). The host's links are read once."""
        if self.cfg.mtu != "auto":
            return int(self.cfg.mtu)
        if self._mtu is None:
            self._mtu = await links.host_mtu()
        return self._mtu if bridge == VLAN_BRIDGE else self._mtu - 50

    def _lock(self, ep_id: str) -> asyncio.Lock:
        return self._locks.setdefault(ep_id, asyncio.Lock())

    # -- port numbers and the host's port record (persisted, CAS) ----------------------------------
    # The record ``/contiv.io/oper/ovs-driver/<host>`` (the original's layout: ``currPortNum`` and
    # every local endpoint in ``LocalEpInfo``) has one writer, this agent (its VRF ids too, also by
    # CAS). Creates and deletes of this agent take turns on it (``_port_lock``): concurrent ones
    # would otherwise all read the same revision and all but one lose the compare-and-swap, a retry
    # storm that grows with the number of clients. The CAS stays the guarantee.

    async def _read_port_record(self, key: str) -> tuple[int, OvsDriverOper]:
        """(mod revision or 0 if absent, record): the copy this agent wrote last if it has one (it
        is the record's only writer; a stale copy just fails the compare and is read again). The
        copy is taken: a caller that does not write puts it back (``_port_rec``)."""
        cached, self._port_rec = self._port_rec, None  # taken: a failed or interrupted write re-reads
        if cached is not None:
            return cached
        kv = await self.kv.get(key)
        if kv is None:
            return 0, OvsDriverOper(id=self.cfg.host)
        return kv.mod_revision, OvsDriverOper.from_json(kv.value)

    async def _write_port_record(
        self, key: str, rev: int, rec: OvsDriverOper, ops: list[Put | Delete]
    ) -> bool:
        """CAS of the record, with ``ops`` (the endpoint's oper record) in the same txn."""
        cmp = Compare(key, "mod", "==", rev) if rev else Compare(key, "version", "==", 0)
        res = await self.kv.txn([cmp], [Put(key, rec.to_json()), *ops])
        if res.succeeded:
            self._port_rec = (res.revision, rec)
        return res.succeeded

    async def _reserve_port(self, ep_id: str) -> int:
        """A port number for the endpoint: the one recorded for it, else the next one after the
        last handed out that no recorded or reserved endpoint uses and no link is named after.
        Held in memory until ``_commit`` records it (or ``_forget`` drops it)."""
        key = keys.ovs_driver_oper(self.cfg.host)
        async with self._port_lock:
            rev, rec = await self._read_port_record(key)
            if rev:
                self._port_rec = (rev, rec)  # (read only: put back)
            info = rec.LocalEpInfo.get(ep_id)
            if info:
                return int(info["Ovsportname"].removeprefix("vvport"))
            if ep_id in self._reserved:
                return self._reserved[ep_id]
            used = {v.get("Ovsportname") for v in rec.LocalEpInfo.values()}
            used.update(f"vvport{r}" for r in self._reserved.values())
            n = self._last_port or rec.currPortNum
            for _ in range(MAX_PORT):
                n = n + 1 if n < MAX_PORT else 1
                if f"vvport{n}" in used or await links.link_exists(f"vport{n}", f"vvport{n}"):
                    continue
                break
            else:
                raise ExternalServiceError("no free port number")
            self._reserved[ep_id] = self._last_port = n
            return n

    async def _commit(self, ep_id: str, n: int, epg_key: str, bridge_type: str, oper: OperEndpoint) -> None:
        """ONE txn: the endpoint's ``LocalEpInfo`` entry and ``currPortNum`` (CAS on the record)
        and its oper record ``/contiv.io/oper/eps/<id>`` (from now on other hosts learn it).
        Concurrent creates' commits share that txn (``_commits``: group commit)."""
        entry = {"Ovsportname": f"vvport{n}", "EpgKey": epg_key, "BridgeType": bridge_type}
        await self._commits.submit((ep_id, n, entry, oper))

    async def _commit_many(self, items: list[tuple[str, int, dict, OperEndpoint]]) -> list[None]:
        """The commits of several endpoints in ONE txn (CAS on the port record, every endpoint's
        entry and oper record); the record is read again and the txn retried when the compare fails.
        A store error fails the txn for all (the group commit then retries each alone)."""
        key = keys.ovs_driver_oper(self.cfg.host)
        async with self._port_lock:
            while True:
                rev, rec = await self._read_port_record(key)
                rec.currPortNum = self._last_port or max(n for _, n, _, _ in items)
                for ep_id, _, entry, _ in items:
                    rec.LocalEpInfo[ep_id] = entry
                ops = [Put(keys.ep_oper(ep_id), oper.to_json()) for ep_id, _, _, oper in items]
                if await self._write_port_record(key, rev, rec, ops):
                    for ep_id, *_ in items:
                        self._reserved.pop(ep_id, None)
                    return [None] * len(items)

    async def _forget(self, ep_id: str, oper_stored: bool) -> None:
        """Drop the endpoint's ``LocalEpInfo`` entry and its oper record in ONE txn (CAS on the
        record), and its reserved number. Without an entry, the oper record (if ``oper_stored``)
        is deleted alone: both are written together, so that is a record of an older version."""
        key = keys.ovs_driver_oper(self.cfg.host)
        async with self._port_lock:
            self._reserved.pop(ep_id, None)
            while True:
                rev, rec = await self._read_port_record(key)
                if not rev or ep_id not in rec.LocalEpInfo:
                    if rev:
                        self._port_rec = (rev, rec)  # (read only: put back)
                    if oper_stored:
                        await self.kv.delete(keys.ep_oper(ep_id))
                    return
                del rec.LocalEpInfo[ep_id]
                if await self._write_port_record(key, rev, rec, [Delete(keys.ep_oper(ep_id))]):
                    return

    # -- public API ----------------------------------------------------------------------------
    async def create_endpoint(
        self,
        tenant: str,
        network: str,
        group: str,
        endpoint_id: str,
        ip: str | None = None,
        *,
        ipv6: str | None = None,
        container: str = "",
        ep_common_name: str = "",
    ) -> EndpointInfo:
        if not tenant or not network or not endpoint_id:
            raise ValidationError("tenant, network and endpoint id are required")
        net_id = keys.network_id(network, tenant)
        spec = self.nets.desired.get(net_id)  # the watch's view; netmaster checks it again
        if spec is None:  # not seen yet (just created): etcd decides
            nkv = await self.kv.get(keys.net_state(net_id))
            if nkv is None:
                raise NotFoundError(f"network {net_id} not found")
            spec = net_spec(nkv.value)
            if spec is None:
                raise ExternalServiceError(f"network {net_id} has malformed state")
        ep_id = keys.endpoint_state_id(network, tenant, endpoint_id)
        async with self._lock(ep_id):
            if ep_id in self.local:
                return self.local[ep_id]
            cfg_ep = await self.netmaster.post(
                "/plugin/createEndpoint",
                {
                    "TenantName": tenant,
                    "NetworkName": network,
                    "ServiceName": group,
                    "EndpointID": endpoint_id,
                    "EPCommonName": ep_common_name,
                    "ConfigEP": {
                        "Container": container or endpoint_id,
                        "Host": self.cfg.host,
                        "IPAddress": (ip or "").split("/")[0],
                        "IPv6Address": ipv6 or "",
                        "ServiceName": group,
                    },
                },
            )
            ep = (cfg_ep or {}).get("EndpointConfig", cfg_ep) or {}
            self.creating[net_id] = self.creating.get(net_id, 0) + 1
            try:
                return await self._plug(spec, ep_id, endpoint_id, tenant, network, group, ep)
            except BaseException:
                await self._release(tenant, network, group, endpoint_id, ep.get("ipAddress", ""))
                raise
            finally:
                left = self.creating[net_id] - 1
                if left:
                    self.creating[net_id] = left
                else:
                    del self.creating[net_id]
                if ep_id not in self.local:  # failed: the network may no longer be served
                    self.released(net_id)

    async def _plug(self, spec, ep_id, endpoint_id, tenant, network, group, ep: dict) -> EndpointInfo:
        ip, mac = ep.get("ipAddress", ""), ep.get("macAddress", "")
        if not ip:
            raise ExternalServiceError(f"netmaster returned no address for endpoint {ep_id}")
        mac = mac or mac_from_ip(ip)
        epg_key = ep.get("endpointGroupKey", "")
        n = await self._reserve_port(ep_id)
        port, ovs_port = f"vport{n}", f"vvport{n}"
        done: list[str] = []
        try:
            # tx offload off only for the userspace datapath: it forwards a checksum-offloaded frame
            # unfinished (docs/decisions.md); the kernel datapath completes it, and offload saves CPU
            tx_off = self.cfg.ovs_datapath == "netdev"
            await links.ensure_veth(port, ovs_port, mac=mac, mtu=await self.mtu(spec.bridge), tx_off=tx_off)
            done.append("veth")
            await self._wait_network(spec.id)
            if self.serve is not None:  # the network's remote endpoints, before the create returns
                await self.serve(spec.id)
            ofport, fresh = await self.dp.plug_port(spec, ovs_port, ep_id)
            done.append("port")
            eps = EpSpec(
                ep_id,
                spec,
                ip,
                mac,
                int(ep.get("endpointGroupId") or 0),
                ep.get("ipv6Address", ""),
                ofport=ofport,
            )
            done.append("flows")
            await self.qos.bind(eps, ovs_port, epg_key, fresh_port=fresh)
            oper = OperEndpoint(
                id=ep_id, netID=spec.id, endpointID=endpoint_id, serviceName=group,
                endpointGroupId=eps.epg_id, endpointGroupKey=epg_key, contUUID=ep.get("containerId", ""),
                ipAddress=ip, ipv6Address=eps.ipv6, macAddress=mac, homingHost=self.cfg.host,
                intfName=ep.get("intfName", ""), portName=port, vtepIP=self.cfg.vtep_ip,
            )  # fmt: skip
            await self._commit(ep_id, n, epg_key, spec.encap, oper)
        except BaseException as e:
            log.warning(
                "endpoint %s: create failed (%s), rolling back %s", ep_id, e or type(e).__name__, done
            )
            await self._unplug(ep_id, spec, ip, mac, ovs_port, port, flows="flows" in done)
            await self._forget(ep_id, oper_stored=False)  # (a commit whose answer was lost included)
            raise
        info = EndpointInfo(
            id=ep_id, endpoint_id=endpoint_id, tenant=tenant, network=network, group=group,
            ip_address=ip, prefix_len=spec.subnet_len, ipv6_address=eps.ipv6, mac_address=mac,
            gateway=spec.gateway, port_name=port, ovs_port=ovs_port, ofport=ofport, bridge=spec.bridge,
            mtu=await self.mtu(spec.bridge), vtep_ip=self.cfg.vtep_ip, host=self.cfg.host,
        )  # fmt: skip
        self.local[ep_id] = info
        log.info("endpoint %s created: %s %s on %s (ofport %d)", ep_id, ip, mac, ovs_port, ofport)
        return info

    async def _wait_network(self, net_id: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.nets.get(net_id) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise ExternalServiceError(f"network {net_id} is not programmed on this host yet")
            await asyncio.sleep(0.01)

    async def _unplug(self, ep_id, spec, ip, mac, ovs_port, port, flows: bool = True) -> None:
        await self.qos.unbind(ep_id)
        if flows:
            try:
                await self.dp.remove_local_endpoint(EpSpec(ep_id, spec, ip, mac), ovs_port)
            except ContivError as e:
                log.warning("endpoint %s: flow removal failed: %s", ep_id, e)
        await self.dp.ovs.remove_port(spec.bridge, ovs_port)
        await links.remove_link(ovs_port)
        await links.remove_link(port)

    async def _release(self, tenant, network, group, endpoint_id, ip, keep_address: bool = False) -> None:
        req = {
            "TenantName": tenant,
            "NetworkName": network,
            "ServiceName": group,
            "EndpointID": endpoint_id,
            "IPv4Address": ip,
        }
        if keep_address:
            req["KeepAddress"] = True
        try:
            await self.netmaster.post("/plugin/deleteEndpoint", req)
        except ContivError as e:
            log.warning("endpoint %s: netmaster release failed: %s", endpoint_id, e)

    async def delete_endpoint(
        self, tenant: str, network: str, group: str, endpoint_id: str, keep_address: bool = False
    ) -> None:
        """Remove flows, OVS port, veth and oper state, then release the endpoint in netmaster.
        ``keep_address``: its IPv4 address stays allocated for the caller's IPAM to release (the
        Docker plugin: ``ReleaseAddress`` follows ``DeleteEndpoint``)."""
        ep_id = keys.endpoint_state_id(network, tenant, endpoint_id)
        async with self._lock(ep_id):
            info = self.local.pop(ep_id, None)
            oper = None if info is not None else await self.get_oper(ep_id)  # (what we know is enough)
            ip = info.ip_address if info else (oper.ipAddress if oper else "")
            await self._reclaim(ep_id, info, oper)
            await self._release(tenant, network, group, endpoint_id, ip, keep_address)
        self._locks.pop(ep_id, None)

    async def reclaim(self, ep_id: str) -> bool:
        """Local datapath cleanup of one endpoint (also ``DELETE /debug/reclaimEndpoint/{id}``)."""
        info = self.local.pop(ep_id, None)
        return await self._reclaim(ep_id, info, None if info is not None else await self.get_oper(ep_id))

    async def _reclaim(self, ep_id: str, info: EndpointInfo | None, oper: OperEndpoint | None) -> bool:
        """Oper record and port record entry first (one txn: other hosts unlearn the endpoint),
        then flows, OVS port and veth. ``info``: the local endpoint; else ``oper``, its record."""
        if info is None and oper is None:
            await self._forget(ep_id, oper_stored=False)
            return False
        net_id = info.network + "." + info.tenant if info else oper.netID
        net = self.nets.get(net_id)
        port = info.port_name if info else oper.portName
        ovs_port = "v" + port
        ip, mac = (info.ip_address, info.mac_address) if info else (oper.ipAddress, oper.macAddress)
        await self._forget(ep_id, oper_stored=True)
        if net is not None:
            await self._unplug(ep_id, net, ip, mac, ovs_port, port)
        else:
            await self.qos.unbind(ep_id)
            for br in (VXLAN_BRIDGE, VLAN_BRIDGE):
                await self.dp.ovs.remove_port(br, ovs_port)
            await links.remove_link(ovs_port)
        log.info("endpoint %s deleted", ep_id)
        self.released(net_id)
        return True

    async def get_oper(self, ep_id: str) -> OperEndpoint | None:
        kv = await self.kv.get(keys.ep_oper(ep_id))
        return OperEndpoint.from_json(kv.value) if kv else None

    async def get_endpoint(self, tenant: str, network: str, endpoint_id: str) -> EndpointInfo | None:
        return self.local.get(keys.endpoint_state_id(network, tenant, endpoint_id))

    # -- restart -------------------------------------------------------------------------------
    async def restore(self, listed: dict[str, OperEndpoint] | None = None) -> None:
        """Re-bind the local endpoints of the host's port record after a restart; ``listed``: the
        host's oper records from the start's listing (an endpoint not in it is read from the store)."""
        kv = await self.kv.get(keys.ovs_driver_oper(self.cfg.host))
        rec = OvsDriverOper.from_json(kv.value) if kv else OvsDriverOper()
        keep: set[str] = set()
        ports: dict[str, dict] = {}  # bridge -> its ports, listed once (not once per endpoint)
        opers = listed or {}
        binds: list = []
        restored: list[str] = []
        for ep_id, li in rec.LocalEpInfo.items():
            oper = opers.get(ep_id) or await self.get_oper(ep_id)
            ovs_port = li.get("Ovsportname", "")
            net = self.nets.get(oper.netID) if oper else None
            if oper is None or net is None or not await links.link_exists(ovs_port):
                log.warning(
                    "endpoint %s: cannot restore (oper=%s net=%s port=%s)",
                    ep_id,
                    bool(oper),
                    bool(net),
                    ovs_port,
                )
                continue
            if net.bridge not in ports:
                ports[net.bridge] = await self.dp.ovs.list_ports(net.bridge)
            ofport, fresh = await self.dp.plug_port(net, ovs_port, ep_id, existing=ports[net.bridge])
            listed = ports[net.bridge].get(ovs_port)
            eps = EpSpec(
                ep_id, net, oper.ipAddress, oper.macAddress, oper.endpointGroupId, oper.ipv6Address, ofport=ofport
            )  # fmt: skip
            policing = listed.policing if listed is not None and not fresh else None
            binds.append((eps, ovs_port, oper.endpointGroupKey, fresh, policing))
            tenant = net.tenant
            network = oper.netID[: -(len(tenant) + 1)] if tenant else oper.netID
            self.local[ep_id] = EndpointInfo(
                id=ep_id, endpoint_id=oper.endpointID, tenant=tenant, network=network, group=oper.serviceName,
                ip_address=oper.ipAddress, prefix_len=net.subnet_len, ipv6_address=oper.ipv6Address,
                mac_address=oper.macAddress, gateway=net.gateway, port_name=oper.portName, ovs_port=ovs_port,
                ofport=ofport, bridge=net.bridge, mtu=await self.mtu(net.bridge), vtep_ip=self.cfg.vtep_ip, host=self.cfg.host,
            )  # fmt: skip
            keep.add(ovs_port)
            restored.append(f"endpoint {ep_id} restored on {ovs_port} (ofport {ofport})")
        await self.qos.bind_many(binds)  # the flows of all of them in one update per bridge
        for line in restored:
            log.info("%s", line)
        for br in (VXLAN_BRIDGE, VLAN_BRIDGE):
            for name, p in (await self.dp.ovs.list_ports(br)).items():
                if name.startswith("vvport") and name not in keep:
                    await self.dp.ovs.remove_port(br, name)
                    log.info("removed stale endpoint port %s (%s)", name, json.dumps(p.external_ids))
