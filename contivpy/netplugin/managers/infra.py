"""InfraManager: infra networks (``nwType infra``) give every host an address (docs/docker.md "Infra
networks", docs/ovs-pipeline.md "contivh1").

Per infra network, on every host (one reconciler key = the net id):
  1. wait until the network is programmed (NetworkManager; it wakes this manager);
  2. POST ``/plugin/createEndpoint`` with no EndpointID and ``ConfigEP.Host`` = this host: netmaster
     allocates (or, after a restart, returns the same) endpoint ``<net>.<tenant>-<host>-native-intf``;
  3. an OVS *internal* port named after the network (access port of its VLAN, ``external_ids``
     ``endpoint-id`` and ``contivpy-infra=<net id>``) with the endpoint's MAC, address and MTU, and the
     local endpoint flows on its ofport;
  4. write ``/contiv.io/oper/eps/<id>``: the other hosts learn it like any endpoint, so hosts reach each
     other over the infra network.
The network named ``contivh1`` also routes: its port becomes the infra router of the vxlan bridge
(ofnet/infraroute.py) and key ``routes`` converges the host routes ``<subnet> via <contivh1 address>``
(``proto 77``, links.sync_routes) to the subnets of every vxlan data network of the same tenant. A
``contivh1`` with encap vlan, in routing mode (vlrouter), gets the routes to the vlan data networks of
its tenant; the vlan bridge's table ip routes its port like any endpoint (and BGP advertises its /32); a data
network deleted takes its route with it, a restart changes nothing that is right (no duplicates). A tagged
``FORWARD -i contivh0[v] -o contivh1 DROP`` rule per host port (iptables.py) keeps other tenants' containers, which reach
the host through contivh0, from being forwarded into these routes.
The Kubernetes cluster-IP range (``SVC_SUBNET`` of the ``--k8s-config`` file, default ``10.254.0.0/16`` in
kubernetes mode; :func:`svc_subnet_of`) is routed the same way through a vxlan ``contivh1``, so the host reaches service VIPs (the
original's "access k8s services using cluster-ip"); the service LB answers them in OVS (svcproxy.py).

Removal runs backwards (routes, router, flows and port, oper record, netmaster release); the network
itself is removed only after that (``busy`` feeds the daemon's in-use test). After a restart's first
sync, ``prune`` removes infra ports whose network is gone. Every step is idempotent; failures are
retried by the reconciler.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os

from contivpy.common.errors import ContivError, ExternalServiceError, ValidationError
from contivpy.common.kv.base import KVStore
from contivpy.common.reconcile import Reconciler
from contivpy.model import keys
from contivpy.model.state import OperEndpoint
from contivpy.netplugin import iptables, links
from contivpy.netplugin.datapath import HOST_PORT, VLAN_BRIDGE, VLAN_HOST_PORT, VXLAN_BRIDGE, EpSpec, NetSpec
from contivpy.netplugin.managers.network import NetworkManager, net_spec, tenant_of
from contivpy.ofnet.infraroute import INFRA_ROUTER_NET

log = logging.getLogger(__name__)
ROUTES = "routes"
IFNAMSIZ = 15
K8S_SVC_SUBNET = "10.254.0.0/16"  # the original's default SVC_SUBNET (kubernetes mode)


def svc_subnet_of(path: str, kubernetes: bool) -> str:
    """``SVC_SUBNET`` of the contiv.json at ``path`` ("" when absent outside kubernetes mode, the
    original's default in it); a malformed value is a ValidationError (the agent does not start)."""
    data = {}
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.loads(f.read() or "{}")
        except (OSError, ValueError) as e:
            raise ValidationError(f"cannot read {path}: {e}") from None
    raw = data.get("SVC_SUBNET") if isinstance(data, dict) else None
    if not raw:
        return K8S_SVC_SUBNET if kubernetes else ""
    try:
        return str(ipaddress.IPv4Network(str(raw), strict=False))
    except ValueError:
        raise ValidationError(f"{path}: SVC_SUBNET {raw!r} is not an IPv4 subnet") from None


class InfraManager:
    def __init__(self, cfg, kv: KVStore, dp, nets: NetworkManager, netmaster, mtu) -> None:
        self.cfg, self.kv, self.dp, self.nets, self.netmaster, self.mtu = cfg, kv, dp, nets, netmaster, mtu
        self.desired: dict[str, NetSpec] = {}  # infra networks
        self.data: dict[str, NetSpec] = {}  # data networks (contivh1 routes: those of its encap)
        self.applied: dict[str, tuple[EpSpec, str]] = {}  # net id -> (endpoint, endpoint id)
        self.routes: list[str] = []
        self.svc_subnet = ""  # the cluster-IP range routed through contivh1 too ("" none; daemon sets it)
        self.rec: Reconciler[str] = Reconciler(
            "infra",
            self.reconcile,
            permanent=(ValidationError,),
            desired=lambda k: k == ROUTES or k in self.desired or k in self.applied,
        )
        nets.dependents.append(self._wake)

    def on_update(self, net_id: str, value: str | None) -> None:
        spec = net_spec(value) if value is not None else None
        if spec is not None and spec.nw_type == "infra":
            self.desired.setdefault(net_id, spec)
            self.rec.enqueue(net_id)
            return
        if value is None and (net_id in self.desired or net_id in self.applied):
            self.desired.pop(net_id, None)
            self.rec.enqueue(net_id)
        if spec is not None and spec.encap in ("vxlan", "vlan"):
            self.data[net_id] = spec
        else:
            self.data.pop(net_id, None)
        self.rec.enqueue(ROUTES)

    def _wake(self, net_id: str) -> None:
        if net_id in self.desired:
            self.rec.enqueue(net_id)

    def busy(self, net_id: str) -> bool:
        return net_id in self.applied

    def router(self) -> tuple[EpSpec, str] | None:
        return next((a for a in self.applied.values() if a[0].net.name == INFRA_ROUTER_NET), None)

    async def reconcile(self, key: str) -> None:
        if key == ROUTES:
            await self._routes()
            return
        spec, cur = self.desired.get(key), self.applied.get(key)
        if spec is not None and cur is None:
            await self._add(spec)
        elif spec is None and cur is not None:
            await self._remove(key, *cur)

    async def _add(self, spec: NetSpec) -> None:
        if not spec.name or len(spec.name) > IFNAMSIZ or "/" in spec.name:
            raise ValidationError(f"infra network name {spec.name!r} is not a valid interface name (max 15)")
        if spec.name in (HOST_PORT, VLAN_HOST_PORT, VXLAN_BRIDGE, VLAN_BRIDGE) or spec.name.startswith(
            ("vport", "vvport", "vxif")
        ):
            raise ValidationError(f"infra network name {spec.name!r} is reserved for the agent's own ports")
        net = self.nets.get(spec.id)
        if net is None:
            raise ExternalServiceError(f"network {spec.id} is not programmed on this host yet")
        ep = await self.netmaster.post(
            "/plugin/createEndpoint",
            {
                "TenantName": net.tenant,
                "NetworkName": net.name,
                "EndpointID": "",
                "ConfigEP": {"Container": "", "Host": self.cfg.host},
            },
        )
        ep = (ep or {}).get("EndpointConfig", ep) or {}
        ep_id, ip, mac = ep.get("id", ""), ep.get("ipAddress", ""), ep.get("macAddress", "")
        if not ep_id or not ip or not mac:
            raise ExternalServiceError(f"netmaster returned no address for the infra port of {spec.id}")
        ofport = await self.dp.ensure_infra_port(
            net, ep_id, mac, f"{ip}/{net.subnet_len}", await self.mtu(net.bridge)
        )
        eps = EpSpec(ep_id, net, ip, mac, ofport=ofport)
        await self.dp.add_local_endpoint(eps)
        self.applied[spec.id] = (eps, ep.get("endpointID", ""))
        oper = OperEndpoint(
            id=ep_id, netID=net.id, endpointID=ep.get("endpointID", ""), ipAddress=ip, macAddress=mac,
            homingHost=self.cfg.host, intfName=net.name, portName=net.name, vtepIP=self.cfg.vtep_ip,
        )  # fmt: skip
        await self.kv.put(keys.ep_oper(ep_id), oper.to_json())
        if net.name == INFRA_ROUTER_NET and net.encap == "vxlan":
            await iptables.ensure_infra_block(True)
            await self.dp.set_infra_router(ofport)
            self.rec.enqueue(ROUTES)
        elif net.name == INFRA_ROUTER_NET and self._vlan_routed(net):  # table ip of the vlrouter routes it
            await iptables.ensure_infra_block(True)
            self.rec.enqueue(ROUTES)
        log.info(
            "infra network %s: %s/%d on port %s (ofport %d)", net.id, ip, net.subnet_len, net.name, ofport
        )

    async def _remove(self, net_id: str, eps: EpSpec, endpoint_id: str) -> None:
        if eps.net.name == INFRA_ROUTER_NET and (eps.net.encap == "vxlan" or self._vlan_routed(eps.net)):
            self.routes = []
            await links.sync_routes(eps.net.name, eps.ip, [])
            if eps.net.encap == "vxlan":
                await self.dp.set_infra_router(None)
            await iptables.ensure_infra_block(False)
        await self.dp.remove_local_endpoint(eps, eps.net.name)  # flows, then the OVS port
        await self.kv.delete(keys.ep_oper(eps.id))
        del self.applied[net_id]
        try:
            await self.netmaster.post(
                "/plugin/deleteEndpoint",
                {
                    "TenantName": eps.net.tenant,
                    "NetworkName": eps.net.name,
                    "EndpointID": endpoint_id,
                    "IPv4Address": eps.ip,
                },
            )
        except ContivError as e:  # the network is usually gone already, and its endpoints with it
            log.info("infra endpoint %s: netmaster release: %s", eps.id, e)
        self.nets.rec.enqueue(net_id)  # its removal waited for this
        log.info("infra network %s: port %s removed", net_id, eps.net.name)

    def _vlan_routed(self, net: NetSpec) -> bool:
        """contivh1 on the vlan bridge routes in routing mode only (the vlrouter's table ip; a bridged
        vlan has its router on the uplink). The mode cannot change while a network exists."""
        return net.encap == "vlan" and self.cfg.fwdmode == "routing"

    async def _routes(self) -> None:
        r = self.router()
        if r is None:
            return
        eps = r[0]
        if eps.net.encap != "vxlan" and not self._vlan_routed(eps.net):
            return
        want = {
            n.subnet for n in self.data.values()
            if n.subnet and n.encap == eps.net.encap and tenant_of(n) == tenant_of(eps.net)
        }  # fmt: skip
        if self.svc_subnet and eps.net.encap == "vxlan":  # the service LB of the vxlan bridge (svcproxy.py)
            want.add(self.svc_subnet)
        want = sorted(want)
        added, removed = await links.sync_routes(eps.net.name, eps.ip, want)
        self.routes = want
        if added or removed:
            log.info("contivh1 routes via %s: %s (%d added, %d removed)", eps.ip, want, added, removed)

    async def prune(self) -> None:
        """After the first full sync: remove infra ports whose network is no longer desired."""
        for name, (br, net_id) in (await self.dp.infra_ports()).items():
            if net_id not in self.desired:
                await self.dp.remove_port(br, name)
                log.info("removed stale infra port %s (%s)", name, net_id)
