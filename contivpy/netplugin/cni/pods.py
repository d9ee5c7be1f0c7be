"""CNI attachments of this host: ``/ContivCNI.AddPod``, ``DelPod`` and ``CheckPod`` (docs/cni.md).

One attachment = (CNI_CONTAINERID, CNI_IFNAME) on this host. Its record
``/contiv.io/oper/cni/<host>/<container id>/<ifname>`` (``PodRecord``) is created-if-absent before
anything is allocated, so a second ADD of the same pair is refused without touching the first one
(the CNI spec: an interface that already exists is an error), and concurrent duplicates cannot both
win. The endpoint itself is made by the same code path as the Docker plugin's CreateEndpoint (the
``EndpointBackend`` protocol, implemented by the agent: netmaster ``/plugin/createEndpoint``, veth
``vportN``/``vvportN``, OVS port, flows, oper record); then ``vportN`` is moved into the pod's netns,
renamed ``CNI_IFNAME`` and given the address, and a default route via the network's gateway, or, when
the network has none, an on-link default route (what the Docker Join answers; the host-access port
of the original never worked, see docs/cni.md). The record turns ``ready`` last; the pod's name and
labels then go to netmaster in the background (``/plugin/updateEndpoint``, as after a Docker Join:
DNS by pod name, service providers by label); a DEL of the attachment waits for that first.

Invariants:
- a failed ADD leaves nothing: the endpoint is deleted (which releases the address in netmaster and
  removes the OVS port and the veth pair, wherever its container end is) and the record is removed;
- bad input (labels naming an unknown tenant/network/group, a CNI_NETNS that is not a network
  namespace, an interface name that exists in it) is refused before anything is allocated;
- DEL is idempotent: no record -> success; it deletes the endpoint through the backend (every step
  tolerates "already gone") and the record last;
- after an agent restart the endpoints themselves are re-bound by ``EndpointService.restore`` (the
  veth's host end survives); ``restore`` here removes the attachments whose ADD was interrupted
  (record still ``adding``: the runtime was told ADD failed).

Labels (tenant/network/group) come from the pod in the Kubernetes API when one is configured
(``k8sapi.py``; they win), else from the request's ``Labels`` (the plugin merges the network
config's ``args`` and CNI_ARGS); the original's defaults apply: ``default``, ``default-net``, none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from contivpy.common.errors import ContivError, ExternalServiceError
from contivpy.common.kv.base import Compare, KVStore, Put
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState, NetworkState
from contivpy.netplugin import links
from contivpy.netplugin.docker.backend import ContivNet, EndpointBackend, EndpointSpec

log = logging.getLogger(__name__)

# CNI error codes (CNI spec "Error codes"; 100+ are contivpy's own, docs/cni.md)
INCOMPATIBLE_VERSION = 1
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NETPLUGIN_FAILED = 100
ALREADY_ATTACHED = 101
CHECK_FAILED = 102

LABEL_TENANT = "io.contiv.tenant"
LABEL_NETWORK = "io.contiv.network"
LABEL_GROUP = "io.contiv.net-group"
NAMESPACE_GROUP_PREFIX = "k8s-"  # netmaster/k8snet/translate.py GROUP_PREFIX (kept in step by a test)
DEFAULT_TENANT = "default"
DEFAULT_NETWORK = "default-net"

_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_NAME = re.compile(r"^[^\s/:|]+$")  # a contiv object name usable in etcd keys and endpoint ids


class CniError(ContivError):
    """An error with its CNI code; ``details`` is the spec's optional longer explanation."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.details = details


def valid_ifname(name: str) -> bool:
    """Linux interface name rules (what the kernel accepts)."""
    return (
        0 < len(name) <= 15
        and name not in (".", "..")
        and not any(c in name for c in "/:")
        and all(c.isprintable() and not c.isspace() for c in name)
    )


@dataclass
class PodRequest:
    container_id: str
    ifname: str
    netns: str = ""
    pod_name: str = ""
    pod_namespace: str = ""
    infra_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)  # CHECK: addresses of the prevResult

    @classmethod
    def parse(cls, body: Any, need_netns: bool) -> PodRequest:
        if not isinstance(body, dict):
            raise CniError(INVALID_CONFIG, "invalid request: a JSON object is required")

        def s(k: str) -> str:
            v = body.get(k, "")
            return v if isinstance(v, str) else ""

        cid = s("CNI_CONTAINERID") or s("K8S_POD_INFRA_CONTAINER_ID")
        if not cid:
            raise CniError(INVALID_ENV, "CNI_CONTAINERID is required")
        if not _CONTAINER_ID.match(cid):
            raise CniError(INVALID_ENV, f"invalid CNI_CONTAINERID {cid!r}")
        ifname = s("CNI_IFNAME")
        if not ifname:
            raise CniError(INVALID_ENV, "CNI_IFNAME is required")
        if not valid_ifname(ifname):
            raise CniError(INVALID_ENV, f"invalid CNI_IFNAME {ifname!r}: not a valid interface name")
        netns = s("CNI_NETNS")
        if need_netns and not netns:
            raise CniError(INVALID_ENV, "CNI_NETNS is required")
        if netns and not netns.startswith("/"):
            raise CniError(INVALID_ENV, f"invalid CNI_NETNS {netns!r}: an absolute path is required")
        labels = body.get("Labels") or {}
        if not isinstance(labels, dict):
            raise CniError(INVALID_CONFIG, "invalid request: Labels must be an object")
        addrs = body.get("Addresses") or []
        return cls(
            container_id=cid,
            ifname=ifname,
            netns=netns,
            pod_name=s("K8S_POD_NAME"),
            pod_namespace=s("K8S_POD_NAMESPACE"),
            infra_id=s("K8S_POD_INFRA_CONTAINER_ID"),
            labels={str(k): str(v) for k, v in labels.items() if isinstance(v, (str, int))},
            addresses=[a for a in addrs if isinstance(a, str)] if isinstance(addrs, list) else [],
        )

    @property
    def endpoint_id(self) -> str:
        """The original's endpoint id is the (infra) container id; a second interface of the same
        container on the same network gets its own id."""
        return self.container_id if self.ifname == "eth0" else f"{self.container_id}-{self.ifname}"


@dataclass
class PodRecord:
    containerId: str = ""
    ifName: str = ""
    netns: str = ""
    state: str = "adding"  # adding | ready
    tenant: str = ""
    network: str = ""
    group: str = ""
    endpointId: str = ""
    stateId: str = ""
    podName: str = ""
    podNamespace: str = ""
    ipAddress: str = ""  # ip/len
    ipv6Address: str = ""
    macAddress: str = ""
    gateway: str = ""
    ipv6Gateway: str = ""
    hostIfName: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PodRecord:
        d = json.loads(text)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def net(self) -> ContivNet:
        return ContivNet(self.tenant, self.network, self.group)


class PodService:
    def __init__(
        self, kv: KVStore, host: str, backend: EndpointBackend, k8s=None, namespace_groups: bool = False
    ) -> None:
        self.kv, self.host, self.backend = kv, host, backend
        self.k8s = k8s  # k8sapi.K8sApi when a Kubernetes API is configured: pod labels win
        # kubernetes mode: a pod without io.contiv.net-group joins its namespace's group ``k8s-<ns>``
        # (made by netmaster's namespace watcher, netmaster/k8snet), so NetworkPolicies reach it
        self.namespace_groups = namespace_groups
        self._locks: dict[str, asyncio.Lock] = {}
        self._naming: dict[str, asyncio.Task] = {}  # attachment key -> its name recording

    def _key(self, req: PodRequest) -> str:
        return keys.cni_pod(self.host, req.container_id, req.ifname)

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # -- labels -> contiv objects ------------------------------------------------------------
    async def _resolve(self, labels: dict[str, str], namespace: str = "") -> tuple[ContivNet, NetworkState]:
        tenant = labels.get(LABEL_TENANT) or DEFAULT_TENANT
        network = labels.get(LABEL_NETWORK) or DEFAULT_NETWORK
        group = labels.get(LABEL_GROUP) or ""
        if not group and self.namespace_groups and namespace and _NAME.match(namespace):
            ns_group = NAMESPACE_GROUP_PREFIX + namespace
            gkv = await self.kv.get(keys.epg_state(keys.epg_id(ns_group, tenant)))
            g = EndpointGroupState.parse(gkv.value) if gkv is not None else None
            if g is not None and g.networkName == network:
                group = ns_group
            else:
                log.info(
                    "namespace group %s not on network %s (yet): pod attached without a group",
                    ns_group,
                    network,
                )
        for what, v in (("tenant", tenant), ("network", network), ("net-group", group)):
            if v and not _NAME.match(v):
                raise CniError(INVALID_CONFIG, f"invalid {what} label {v!r}")
        if await self.kv.get(keys.obj_key("tenant", tenant)) is None:
            raise CniError(INVALID_CONFIG, f"tenant {tenant} not found", f"label {LABEL_TENANT}")
        nkv = await self.kv.get(keys.net_state(keys.network_id(network, tenant)))
        st = NetworkState.parse(nkv.value) if nkv is not None else None
        if st is None:
            raise CniError(
                INVALID_CONFIG, f"network {network} not found in tenant {tenant}", f"label {LABEL_NETWORK}"
            )
        if group:
            gkv = await self.kv.get(keys.epg_state(keys.epg_id(group, tenant)))
            g = EndpointGroupState.parse(gkv.value) if gkv is not None else None
            if g is None or (g.networkName and g.networkName != network):
                raise CniError(
                    INVALID_CONFIG,
                    f"endpoint group {group} not found on network {network} in tenant {tenant}",
                    f"label {LABEL_GROUP}",
                )
        return ContivNet(tenant, network, group), st

    # -- ADD ------------------------------------------------------------------------------------
    async def _pod_labels(self, req: PodRequest) -> None:
        """The pod's labels from the Kubernetes API (when configured) override the CNI ones."""
        if self.k8s is None or not (req.pod_name and req.pod_namespace):
            return
        api = await self.k8s.pod_labels(req.pod_namespace, req.pod_name)
        if api is None:
            log.warning("pod %s/%s not found in the Kubernetes API", req.pod_namespace, req.pod_name)
            return
        req.labels = {**req.labels, **api}

    async def add(self, req: PodRequest) -> dict[str, Any]:
        await self._pod_labels(req)
        net, st = await self._resolve(req.labels, req.pod_namespace)
        try:
            present = await links.netns_probe(req.netns, req.ifname)
        except ExternalServiceError as e:
            raise CniError(INVALID_ENV, f"invalid CNI_NETNS {req.netns}: {e}") from None
        key = self._key(req)
        async with self._lock(key):
            if await self.kv.get(key) is not None:
                raise CniError(
                    ALREADY_ATTACHED,
                    f"container {req.container_id} already has interface {req.ifname} "
                    "(ADD again without DEL)",
                )
            if present is not None:
                raise CniError(ALREADY_ATTACHED, f"interface {req.ifname} already exists in {req.netns}")
            spec = EndpointSpec(
                net=net,
                endpoint_id=req.endpoint_id,
                container=req.endpoint_id,  # netmaster keys the endpoint state by it (as for Docker)
                ep_common_name=req.pod_name or req.container_id,
            )
            rec = PodRecord(
                containerId=req.container_id, ifName=req.ifname, netns=req.netns, tenant=net.tenant,
                network=net.network, group=net.group, endpointId=req.endpoint_id, stateId=spec.state_id,
                podName=req.pod_name, podNamespace=req.pod_namespace,
            )  # fmt: skip
            created = await self.kv.txn([Compare(key, "version", "==", 0)], [Put(key, rec.to_json())])
            if not created.succeeded:
                raise CniError(
                    ALREADY_ATTACHED, f"container {req.container_id} already has interface {req.ifname}"
                )
            try:
                ep = await self.backend.create_endpoint(spec)
                addrs = [f"{ep.ip_address}/{st.subnetLen}"]
                if ep.ipv6_address and st.ipv6SubnetLen:
                    addrs.append(f"{ep.ipv6_address}/{st.ipv6SubnetLen}")
                gws = [g for g in (st.gateway, st.ipv6Gateway if len(addrs) > 1 else "") if g]
                warnings = await links.plug_into_netns(
                    ep.port_name, req.netns, req.ifname, addrs, gws, on_link=not st.gateway
                )
                for w in warnings:
                    log.warning("pod %s: %s", req.container_id, w)
                rec.state = "ready"
                rec.ipAddress = addrs[0]
                rec.ipv6Address = addrs[1] if len(addrs) > 1 else ""
                rec.macAddress = ep.mac_address
                rec.gateway = st.gateway
                rec.ipv6Gateway = st.ipv6Gateway if rec.ipv6Address else ""
                rec.hostIfName = "v" + ep.port_name
                await self.kv.put(key, rec.to_json())
            except BaseException as e:
                log.warning("pod %s/%s: ADD failed (%s), rolling back", req.container_id, req.ifname, e)
                await self._undo(spec, key)
                raise
        log.info(
            "pod %s (%s) attached: %s on %s/%s as %s",
            req.pod_name or req.container_id, req.container_id, rec.ipAddress, net.tenant, net.network,
            req.ifname,
        )  # fmt: skip
        # the pod is ready now: its name and labels (DNS, service providers) follow in the background
        self._naming[key] = asyncio.create_task(self._record_name(rec, req, key))
        return self._reply(rec)

    async def _undo(self, spec: EndpointSpec, key: str) -> None:
        try:
            await asyncio.shield(self.backend.delete_endpoint(spec))
        except Exception as e:  # noqa: BLE001 - logged; the record stays for a DEL to retry
            log.error("endpoint %s not removed after a failed ADD: %s", spec.state_id, e)
            return
        await asyncio.shield(self.kv.delete(key))

    async def _record_name(self, rec: PodRecord, req: PodRequest, key: str) -> None:
        """Name and labels into the endpoint state (DNS by pod name, service providers by label),
        as after a Docker Join. A DEL of the attachment waits for it first."""
        record = getattr(self.backend, "record_container", None)
        try:
            if record is not None:
                await record(rec.stateId, req.pod_name or req.container_id, req.container_id, req.labels)
        except ContivError as e:
            log.warning("pod %s: name not recorded: %s", req.container_id, e)
        except Exception:
            log.exception("pod %s: name not recorded", req.container_id)
        finally:
            if self._naming.get(key) is asyncio.current_task():
                del self._naming[key]

    async def settle(self) -> None:
        """Wait for the background name recordings (tests, shutdown)."""
        while self._naming:
            await asyncio.gather(*list(self._naming.values()), return_exceptions=True)

    def _reply(self, rec: PodRecord) -> dict[str, Any]:
        routes = []
        if rec.gateway:
            routes.append({"dst": "0.0.0.0/0", "gw": rec.gateway})
        else:
            routes.append({"dst": "0.0.0.0/0"})
        if rec.ipv6Gateway:
            routes.append({"dst": "::/0", "gw": rec.ipv6Gateway})
        return {
            "result": 0,
            "endpointid": rec.stateId,
            "ipaddress": rec.ipAddress,
            "ipv6address": rec.ipv6Address,
            "macaddress": rec.macAddress,
            "gateway": rec.gateway,
            "ipv6gateway": rec.ipv6Gateway,
            "ifname": rec.ifName,
            "hostifname": rec.hostIfName,
            "netns": rec.netns,
            "routes": routes,
            "tenant": rec.tenant,
            "network": rec.network,
            "group": rec.group,
        }

    # -- DEL ------------------------------------------------------------------------------------
    async def delete(self, req: PodRequest) -> dict[str, Any]:
        key = self._key(req)
        async with self._lock(key):
            naming = self._naming.get(key)
            if naming is not None:
                await asyncio.gather(naming, return_exceptions=True)
            kvp = await self.kv.get(key)
            if kvp is None:
                return {"result": 0}
            try:
                rec = PodRecord.from_json(kvp.value)
            except (ValueError, TypeError):
                log.error("malformed CNI record %s removed", key)
                await self.kv.delete(key)
                return {"result": 0}
            # deleting the host end (vvportN) takes the pod end with it, wherever it is
            await self.backend.delete_endpoint(
                EndpointSpec(net=rec.net, endpoint_id=rec.endpointId, container=rec.endpointId)
            )
            await self.kv.delete(key)
        self._locks.pop(key, None)
        log.info("pod %s/%s detached (%s)", req.container_id, req.ifname, rec.stateId)
        return {"result": 0, "endpointid": rec.stateId}

    # -- CHECK ----------------------------------------------------------------------------------
    async def check(self, req: PodRequest) -> dict[str, Any]:
        kvp = await self.kv.get(self._key(req))
        if kvp is None:
            raise CniError(
                UNKNOWN_CONTAINER, f"container {req.container_id} has no interface {req.ifname} on this host"
            )
        rec = PodRecord.from_json(kvp.value)
        if rec.state != "ready":
            raise CniError(CHECK_FAILED, f"interface {req.ifname} of {req.container_id} is not set up")
        netns = req.netns or rec.netns
        try:
            link = await links.netns_probe(netns, req.ifname)
        except ExternalServiceError as e:
            raise CniError(CHECK_FAILED, f"network namespace {netns}: {e}") from None
        if link is None:
            raise CniError(CHECK_FAILED, f"interface {req.ifname} not found in {netns}")
        want = [a for a in (rec.ipAddress, rec.ipv6Address) if a]
        for a in want + [a for a in req.addresses if a not in want]:
            if a not in link["addrs"]:
                raise CniError(CHECK_FAILED, f"interface {req.ifname} in {netns} lacks address {a}")
        if rec.macAddress and (link["mac"] or "").lower() != rec.macAddress.lower():
            raise CniError(
                CHECK_FAILED, f"interface {req.ifname} has MAC {link['mac']}, not {rec.macAddress}"
            )
        if not link["up"]:
            raise CniError(CHECK_FAILED, f"interface {req.ifname} in {netns} is down")
        if await self.backend.get_endpoint(rec.stateId) is None or not await links.link_exists(
            rec.hostIfName
        ):
            raise CniError(CHECK_FAILED, f"endpoint {rec.stateId} is not plugged on this host")
        return self._reply(rec)

    # -- restart ---------------------------------------------------------------------------------
    async def restore(self) -> None:
        """Remove the attachments whose ADD was cut short by a restart (record still ``adding``)."""
        kvs, _ = await self.kv.get_prefix(keys.cni_prefix(self.host))
        ready = 0
        for kvp in kvs:
            try:
                rec = PodRecord.from_json(kvp.value)
            except (ValueError, TypeError):
                continue
            if rec.state == "ready":
                ready += 1
                continue
            log.warning(
                "pod %s/%s: ADD was interrupted by a restart; rolling back", rec.containerId, rec.ifName
            )
            spec = EndpointSpec(net=rec.net, endpoint_id=rec.endpointId, container=rec.endpointId)
            await self._undo(spec, kvp.key)
        log.info("%d CNI attachments on this host", ready)
