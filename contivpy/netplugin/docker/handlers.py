"""Docker NetworkDriver + IpamDriver call handlers: wire requests -> EndpointBackend calls.

One coroutine per libnetwork method (``ROUTES`` maps ``/NetworkDriver.Join`` etc. to them). They
return the success body; any ``ContivError`` they raise becomes ONE ``{"Err": msg}`` reply with
HTTP 500 (server.py). Behaviour is the original's (docs/original.md §5.5) with its bugs fixed:

- ``ReleaseAddress`` works: the NetworkID is the PoolID without ``|<pool>``. ``DeleteEndpoint``
  leaves the endpoint's address allocated (netmaster turns the endpoint back into an allocation
  record) and ``ReleaseAddress`` frees it, exactly once: netmaster frees only an address that has
  a record, never one an endpoint holds; the gateway (reserved by netmaster itself) is answered
  locally. So a rollback after a failed CreateEndpoint really returns the address, a normal
  ``docker rm`` frees it once, and no other container gets it between the two calls. Nothing is
  remembered here: an agent restart between the calls changes nothing.
- An explicit address (``docker run --ip``) is reserved in netmaster as the preferred address
  instead of being echoed without reservation.
- ``CreateEndpoint`` refuses an endpoint id that exists or is being created (Err, nothing
  allocated). Unknown networks, malformed PoolIDs and bad bodies give a clear Err.
- ``CreateNetwork`` accepts only the networks contiv itself creates (driver option ``tenant`` and
  the subnet of a network of that tenant); ``docker network create -d netplugin NAME`` gets an Err
  that says to use ``netctl network create``. ``RequestPool`` with ``contiv-tag`` is refused with
  the name of the Docker network contiv already made for that tag (docs/decisions.md).
- Scope is ``local``: Docker >= 20.10 without a cluster store refuses ``global`` networks; each
  host's engine gets its own copy of every contiv network (sync.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from contivpy.common.errors import ConflictError, NotFoundError, ValidationError
from contivpy.common.kv.base import KVStore
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState, EndpointState, NetworkState

from . import wire
from .backend import ContivNet, EndpointBackend, EndpointSpec
from .resolver import NetworkResolver, PoolRef, net_from_options, parse_pool_id

log = logging.getLogger(__name__)

NOT_CONTIV_NETWORK = (
    "docker network create -d netplugin is not supported: create the network with "
    "'netctl network create' (or an endpoint group with 'netctl group create'); contiv then "
    "creates its Docker network on every host"
)

JoinHook = Callable[[str, str, str], Awaitable[None]]  # (state id, docker endpoint id, sandbox key)


def _plain_ip(addr: str) -> str:
    ip = addr.split("/", 1)[0].strip()
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValidationError(f"invalid address {addr!r}") from None
    return ip


def _subnet_of(st: NetworkState) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(f"{st.subnetIP}/{st.subnetLen}", strict=False)
    except ValueError:
        return None


class PluginHandlers:
    def __init__(
        self,
        kv: KVStore,
        backend: EndpointBackend,
        resolver: NetworkResolver,
        scope: str = "local",
        connectivity_scope: str = "global",
        on_join: JoinHook | None = None,
    ) -> None:
        self.kv = kv
        self.backend = backend
        self.resolver = resolver
        self.scope = scope
        self.connectivity_scope = connectivity_scope
        self.on_join = on_join
        self._creating: set[str] = set()
        self.routes: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "/Plugin.Activate": self.activate,
            "/Plugin.Deactivate": self.empty_ok,
            "/NetworkDriver.GetCapabilities": self.get_capabilities,
            "/NetworkDriver.CreateNetwork": self.create_network,
            "/NetworkDriver.DeleteNetwork": self.delete_network,
            "/NetworkDriver.AllocateNetwork": self.allocate_network,
            "/NetworkDriver.FreeNetwork": self.empty_ok,
            "/NetworkDriver.CreateEndpoint": self.create_endpoint,
            "/NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "/NetworkDriver.Join": self.join,
            "/NetworkDriver.Leave": self.empty_ok,
            "/NetworkDriver.EndpointOperInfo": self.endpoint_oper_info,
            "/NetworkDriver.DiscoverNew": self.empty_ok,
            "/NetworkDriver.DiscoverDelete": self.empty_ok,
            "/NetworkDriver.ProgramExternalConnectivity": self.empty_ok,
            "/NetworkDriver.RevokeExternalConnectivity": self.empty_ok,
            "/IpamDriver.GetCapabilities": self.ipam_capabilities,
            "/IpamDriver.GetDefaultAddressSpaces": self.address_spaces,
            "/IpamDriver.RequestPool": self.request_pool,
            "/IpamDriver.ReleasePool": self.release_pool,
            "/IpamDriver.RequestAddress": self.request_address,
            "/IpamDriver.ReleaseAddress": self.release_address,
        }

    # ---- plugin / capabilities ------------------------------------------------------------

    async def activate(self, body: dict) -> dict:
        return wire.activate_response()

    async def empty_ok(self, body: dict) -> dict:
        return wire.ok()

    async def get_capabilities(self, body: dict) -> dict:
        return wire.capabilities(self.scope, self.connectivity_scope)

    async def ipam_capabilities(self, body: dict) -> dict:
        return wire.ipam_capabilities()

    async def address_spaces(self, body: dict) -> dict:
        return wire.address_spaces()

    # ---- networks -------------------------------------------------------------------------

    async def create_network(self, body: dict) -> dict:
        """Accept only the Docker networks contiv itself creates (netmaster's dockerrec.py and every
        agent's sync.py, with ``common/dockerapi.network_create_body``): their driver options carry
        the contiv ``tenant`` (plus ``encap`` and ``pkt-tag``) and their IPv4 pool is the subnet of a
        network of that tenant. A user's ``docker network create -d netplugin NAME`` has neither
        and is refused here, before Docker stores a network nobody could use (sync would delete it
        a minute later). Nothing is written either way."""
        req = wire.parse(wire.CreateNetworkRequest, body)
        generic = req.Options.get(wire.GENERIC_OPTIONS)
        opts = generic if isinstance(generic, dict) else {}
        tenant = opts.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise ValidationError(NOT_CONTIV_NETWORK)
        pools = [d.Pool for d in req.IPv4Data if d.Pool]
        if not pools:
            raise ValidationError(NOT_CONTIV_NETWORK)
        try:
            pool = ipaddress.ip_network(pools[0], strict=False)
        except ValueError:
            raise ValidationError(f"invalid pool {pools[0]!r}") from None
        kvs, _ = await self.kv.get_prefix(keys.NETS)
        for kvp in kvs:
            st = NetworkState.parse(kvp.value)
            if st is None or (st.tenant or "default") != tenant or st.nwType == "infra":
                continue
            if _subnet_of(st) != pool:
                continue
            encap = st.pktTagType or "vxlan"
            tag = str((st.extPktTag if encap == "vxlan" else st.pktTag) or 0)
            if opts.get("encap", encap) == encap and str(opts.get("pkt-tag", tag)) == tag:
                return wire.ok()
        raise ValidationError(
            f"no contiv network of tenant {tenant} has subnet {pool} with these options: "
            + NOT_CONTIV_NETWORK
        )

    async def delete_network(self, body: dict) -> dict:
        req = wire.parse(wire.NetworkRequest, body)
        self.resolver.forget(req.NetworkID)
        return wire.ok()

    async def allocate_network(self, body: dict) -> dict:
        wire.parse(wire.AllocateNetworkRequest, body)
        return wire.allocate_network_response()

    # ---- endpoints ------------------------------------------------------------------------

    async def create_endpoint(self, body: dict) -> dict:
        req = wire.parse(wire.CreateEndpointRequest, body)
        if not req.EndpointID:
            raise ValidationError("EndpointID is required")
        ip = _plain_ip(req.Interface.Address)
        if not ip:
            raise ValidationError("Interface.Address is required: use the netplugin IPAM driver")
        net = await self.resolver.resolve(req.NetworkID)
        spec = EndpointSpec(
            net=net,
            endpoint_id=req.EndpointID,
            ip_address=ip,
            ipv6_address=_plain_ip(req.Interface.AddressIPv6),
            container=req.EndpointID,
        )
        if spec.state_id in self._creating:
            raise ConflictError(f"endpoint {req.EndpointID} already exists")
        self._creating.add(spec.state_id)  # before any await: concurrent duplicates see it
        try:
            if await self.backend.get_endpoint(spec.state_id):
                raise ConflictError(f"endpoint {req.EndpointID} already exists")
            ep = await self.backend.create_endpoint(spec)
        finally:
            self._creating.discard(spec.state_id)
        return wire.create_endpoint_response("" if req.Interface.MacAddress else ep.mac_address)

    async def delete_endpoint(self, body: dict) -> dict:
        req = wire.parse(wire.EndpointRequest, body)
        if not req.EndpointID:
            raise ValidationError("EndpointID is required")
        net = await self.resolver.resolve(req.NetworkID)
        state_id = keys.endpoint_state_id(net.network, net.tenant, req.EndpointID)
        ep = await self.backend.get_endpoint(state_id)
        ip = ep.ip_address if ep else await self._state_ip(state_id)
        await self.backend.delete_endpoint(
            EndpointSpec(net=net, endpoint_id=req.EndpointID, ip_address=ip, keep_address=True)
        )
        return wire.ok()

    async def join(self, body: dict) -> dict:
        req = wire.parse(wire.JoinRequest, body)
        net = await self.resolver.resolve(req.NetworkID)
        state_id = keys.endpoint_state_id(net.network, net.tenant, req.EndpointID)
        ep = await self.backend.get_endpoint(state_id)
        if ep is None or not ep.port_name:
            raise NotFoundError(f"Could not find created endpoint {state_id}")
        state = await self._net_state(net)
        if self.on_join is not None:
            try:
                await self.on_join(state_id, req.EndpointID, req.SandboxKey)
            except Exception:  # a name-learning hiccup must not fail the container start
                log.exception("join hook failed for %s", state_id)
        return wire.join_response(
            ep.port_name,
            state.gateway,
            state.ipv6Gateway,
            default_on_link=self._default_on_link(state),
        )

    def _default_on_link(self, state: NetworkState) -> bool:
        """``default dev eth0`` for a network without a gateway: always on vxlan (the agent answers
        for the router), on vlan only while this agent routes (vlrouter: it answers ARP for any
        address outside the subnet, and table ip's miss reaches the host port). A vlan network in
        bridge mode keeps Docker's default (docker_gwbridge): a router there is someone else's."""
        if (state.pktTagType or "vxlan") == "vxlan":
            return True
        routed = getattr(self.backend, "routed", None)
        return bool(routed is not None and routed())

    async def endpoint_oper_info(self, body: dict) -> dict:
        wire.parse(wire.EndpointRequest, body)
        return wire.oper_info_response()

    # ---- IPAM -----------------------------------------------------------------------------

    async def request_pool(self, body: dict) -> dict:
        req = wire.parse(wire.RequestPoolRequest, body)
        net = net_from_options(req.Options)
        pool = req.Pool
        tag = req.Options.get("contiv-tag")
        if net is None and tag:
            # every contiv network and group already has its Docker network on every host (sync.py):
            # a second, user-made one would not survive sync; name the one to use instead
            tagged, _ = await self._by_tag(str(tag), pool)
            what = (
                f"endpoint group {tagged.group} of network {tagged.network}"
                if tagged.group
                else f"network {tagged.network}"
            )
            raise ValidationError(
                f"contiv-tag {tag} is {what} in tenant {tagged.tenant}, whose Docker network "
                f"{tagged.docker_name} contiv already created on every host: use "
                f"'docker run --net {tagged.docker_name}' (docker network create with contiv-tag "
                "is not supported)"
            )
        if net is None:
            raise ValidationError(
                "RequestPool: options tenant/network missing: create the network with "
                "'netctl network create', contiv creates the docker network"
            )
        # the group is not checked: netmaster creates a group's Docker network before it commits the
        # group's state (as the original did), so the state is not there yet; the network's is
        state = await self._net_state(net)
        if not pool:
            pool = f"{state.subnetIP}/{state.subnetLen}"
        try:
            pool = str(ipaddress.ip_network(pool, strict=False))
        except ValueError:
            raise ValidationError(f"invalid pool {pool!r}") from None
        return wire.request_pool_response(PoolRef(net, pool).pool_id, pool)

    async def release_pool(self, body: dict) -> dict:
        req = wire.parse(wire.ReleasePoolRequest, body)
        parse_pool_id(req.PoolID)
        return wire.ipam_ok()

    async def request_address(self, body: dict) -> dict:
        req = wire.parse(wire.RequestAddressRequest, body)
        ref = parse_pool_id(req.PoolID)
        ip = _plain_ip(req.Address)
        if req.Options.get(wire.REQUEST_ADDRESS_TYPE) == wire.GATEWAY_REQUEST:
            # the gateway is reserved by netmaster at network creation: answer locally
            return wire.request_address_response(f"{ip}/{ref.prefix_len}" if ip else ref.pool)
        addr = await self.backend.alloc_address(ref.net.alloc_id, ref.pool, ip)
        if "/" not in addr:
            addr = f"{addr}/{ref.prefix_len}"
        return wire.request_address_response(addr)

    async def release_address(self, body: dict) -> dict:
        req = wire.parse(wire.ReleaseAddressRequest, body)
        ref = parse_pool_id(req.PoolID)
        ip = _plain_ip(req.Address)
        if not ip:
            raise ValidationError("ReleaseAddress: Address is required")
        if ip == str(ipaddress.ip_network(ref.pool, strict=False).network_address):
            return wire.ipam_ok()  # the dummy gateway answer (pool address)
        state = await self._net_state(ref.net)
        if ip == state.gateway:
            return wire.ipam_ok()
        await self.backend.release_address(ref.net.alloc_id, ip)
        return wire.ipam_ok()

    # ---- helpers --------------------------------------------------------------------------

    async def _net_state(self, net: ContivNet) -> NetworkState:
        kvp = await self.kv.get(keys.net_state(net.net_id))
        if kvp is None:
            raise NotFoundError(f"network {net.network} not found in tenant {net.tenant}")
        state = NetworkState.parse(kvp.value)
        if state is None:
            raise NotFoundError(f"network {net.net_id}: unreadable state")
        return state

    async def _state_ip(self, state_id: str) -> str:
        kvp = await self.kv.get(keys.ep_state(state_id))
        ep = EndpointState.parse(kvp.value) if kvp is not None else None
        return ep.ipAddress if ep is not None else ""

    async def _by_tag(self, tag: str, pool: str) -> tuple[ContivNet | None, str]:
        kvs, _ = await self.kv.get_prefix(keys.EPGS)
        for kvp in kvs:
            g = EndpointGroupState.parse(kvp.value)
            if g is not None and g.groupTag == tag and g.networkName and g.groupName:
                return ContivNet(g.tenantName or "default", g.networkName, g.groupName), pool
        kvs, _ = await self.kv.get_prefix(keys.NETS)
        for kvp in kvs:
            n = NetworkState.parse(kvp.value)
            if n is not None and n.networkTag == tag and n.networkName:
                return ContivNet(n.tenant or "default", n.networkName), pool
        raise NotFoundError(f"no network or endpoint group has contiv-tag {tag}")


async def run_handler(handlers: PluginHandlers, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    """Dispatch one call; (status, body). Unknown path -> (404, {}) handled by the caller."""
    fn = handlers.routes.get(path)
    if fn is None:
        return 404, {}
    body = wire.parse_body(raw)
    return 200, await asyncio.shield(fn(body))
