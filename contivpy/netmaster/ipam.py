"""IPv4/IPv6 address management of one network (pure: mutates state records, no I/O).

State lives in the network record (``NetworkState.ipAllocMap``, a Go-encoded bitmap with one bit
per host offset of the subnet) and, for EPGs with an ``ipPool``, in the EPG record
(``epgIpAllocMap``). Persistence and concurrency are the caller's: ``endpoints.py`` and the
network/group hooks read a record, call these functions, and commit the new JSON with a CAS on
the record's mod revision, so a lost race is re-run on fresh state and nothing is handed out twice.

Invariants (docs/original.md §4.2)
- At creation, offset 0 (network) and the last offset (broadcast) are marked used; a given gateway
  is marked used (no gateway is assumed otherwise); for range subnets every offset outside the
  range is used. These are *reserved*: ``release`` never clears them.
- First fit: the lowest clear bit; released addresses are reused at once.
- An EPG ``ipPool`` range is marked used in the network map for the EPG's lifetime; the EPG map
  has the network's size with everything outside the pool marked used.
- ``epAddrCount`` counts endpoint addresses: +1 when a bit goes clear->set by an allocation,
  -1 when a release clears a set bit (never negative).
- FIX (decisions.md): a *preferred* address that is already taken is refused
  ("ip address X is not available"). ``check_endpoint_address`` says why an address can never be
  an endpoint's (malformed, outside subnet/range/pool, network, broadcast, gateway); which used
  addresses an endpoint may claim (allocation records) is ``endpoints.py``'s business.
"""

from __future__ import annotations

import ipaddress

from contivpy.common import netaddr
from contivpy.common.errors import ResourceExhaustedError, ValidationError
from contivpy.model.state import EndpointGroupState, NetworkState
from contivpy.netmaster.bitset import Bitset

EMPTY_BITSET = Bitset().encode()


# --- network creation --------------------------------------------------------------------------


def init_network_map(subnet: netaddr.Subnet, gateway: str = "") -> Bitset:
    size = subnet.size
    bm = Bitset()
    bm.set(size - 1)
    bm.set(0)
    if gateway:
        bm.set(netaddr.host_id(subnet.subnet_ip, subnet.length, gateway))
    if subnet.is_range:
        lo = subnet.range_start - subnet.subnet_ip
        hi = subnet.range_end - subnet.subnet_ip
        bm.set_range(0, lo - 1)
        bm.set_range(hi + 1, size - 1)
    return bm


def new_network_state(
    *,
    network: str,
    tenant: str,
    nw_type: str,
    encap: str,
    subnet: str,
    gateway: str = "",
    ipv6_subnet: str = "",
    ipv6_gateway: str = "",
    cfgd_tag: str = "",
) -> NetworkState:
    """Build the state record of a new network (tags are filled in by the caller)."""
    sn = netaddr.parse_subnet(subnet)
    if gateway and not netaddr.is_ipv4(gateway):
        raise ValidationError("invalid IP")
    st = NetworkState(
        id=f"{network}.{tenant}",
        tenant=tenant,
        networkName=network,
        nwType=nw_type,
        pktTagType=encap,
        subnetIP=sn.subnet_str,
        subnetLen=sn.length,
        gateway=gateway,
        ipAddrRange=sn.ip_addr_range,
        ipAllocMap=init_network_map(sn, gateway).encode(),
        networkTag=cfgd_tag or f"{network}.{tenant}",
    )
    if ipv6_subnet:
        v6 = netaddr.parse_subnet_v6(ipv6_subnet)
        st.ipv6SubnetIP = ipv6_subnet.split("/")[0]
        st.ipv6SubnetLen = v6.prefixlen
        if ipv6_gateway:
            st.ipv6AllocMap = {_v6_host_id(v6, ipv6_gateway): True}
            st.ipv6Gateway = ipv6_gateway
    return st


def subnet_of(net: NetworkState) -> netaddr.Subnet:
    """The parsed subnet of a state record (range form when ipAddrRange is a strict range)."""
    base = netaddr.ip_to_int(net.subnetIP)
    size = 1 << (32 - net.subnetLen)
    lo_s, _, hi_s = net.ipAddrRange.partition("-")
    lo, hi = netaddr.ip_to_int(lo_s), netaddr.ip_to_int(hi_s)
    is_range = not (hi == base + size - 1)
    return netaddr.Subnet(net.ipAddrRange, base, net.subnetLen, lo, hi, is_range)


# --- v4 allocation -------------------------------------------------------------------------------


def _pool(epg: EndpointGroupState | None) -> bool:
    return epg is not None and bool(epg.ipPool)


def allocate(net: NetworkState, epg: EndpointGroupState | None = None, preferred: str = "") -> str:
    """Allocate an IPv4 address (first fit, or ``preferred``) for an endpoint; returns the IP."""
    base = netaddr.ip_to_int(net.subnetIP)
    size = 1 << (32 - net.subnetLen)
    use_pool = _pool(epg)
    bm = Bitset.decode(epg.epgIpAllocMap if use_pool else net.ipAllocMap)  # type: ignore[union-attr]
    if preferred:
        hid = netaddr.host_id(base, net.subnetLen, preferred)
        if bm.test(hid):
            raise ResourceExhaustedError(f"ip address {preferred} is not available")
    else:
        hid = bm.next_clear(0)
        if hid is None or hid >= size:
            if use_pool:
                raise ResourceExhaustedError(
                    f"auto allocation failed - address exhaustion in pool {epg.ipPool}"  # type: ignore[union-attr]
                )
            raise ResourceExhaustedError(
                f"auto allocation failed - address exhaustion in subnet {net.subnetIP}/{net.subnetLen}"
            )
    bm.set(hid)
    _store(net, epg, bm, use_pool)
    net.epAddrCount += 1
    return netaddr.host_ip(base, hid)


def reserve(net: NetworkState, epg: EndpointGroupState | None, ip: str) -> None:
    """Mark ``ip`` used for an endpoint (idempotent: already-set is fine, counted once)."""
    base = netaddr.ip_to_int(net.subnetIP)
    hid = netaddr.host_id(base, net.subnetLen, ip)
    use_pool = _pool(epg)
    bm = Bitset.decode(epg.epgIpAllocMap if use_pool else net.ipAllocMap)  # type: ignore[union-attr]
    if bm.test(hid):
        return
    bm.set(hid)
    _store(net, epg, bm, use_pool)
    net.epAddrCount += 1


def check_endpoint_address(net: NetworkState, epg: EndpointGroupState | None, ip: str) -> int:
    """The host id of ``ip`` if an endpoint may ever hold it, else a ValidationError saying why:
    malformed, outside the subnet, the network or broadcast address, the gateway, outside the
    network's address range, or outside the ip-pool of the endpoint's group (``epg``)."""
    if not netaddr.is_ipv4(ip):
        raise ValidationError(f"invalid ip address {ip}")
    sn = subnet_of(net)
    hid = netaddr.host_id(sn.subnet_ip, sn.length, ip)
    if hid == 0:
        raise ValidationError(f"ip address {ip} is the network address of subnet {sn.cidr}")
    if hid == sn.size - 1:
        raise ValidationError(f"ip address {ip} is the broadcast address of subnet {sn.cidr}")
    if net.gateway and hid == netaddr.host_id(sn.subnet_ip, sn.length, net.gateway):
        raise ValidationError(f"ip address {ip} is the gateway of network {net.networkName}")
    if sn.is_range and not sn.range_start - sn.subnet_ip <= hid <= sn.range_end - sn.subnet_ip:
        raise ValidationError(
            f"ip address {ip} is outside the address range {net.ipAddrRange} of network {net.networkName}"
        )
    if _pool(epg):
        lo, hi = netaddr.parse_ip_pool(epg.ipPool, sn)  # type: ignore[union-attr]
        if not lo <= hid <= hi:
            raise ValidationError(
                f"ip address {ip} is outside the ip pool {epg.ipPool} of group {epg.groupName}"  # type: ignore[union-attr]
            )
    return hid


def is_used(net: NetworkState, epg: EndpointGroupState | None, ip: str) -> bool:
    """Whether the bit of ``ip`` is set in the map an endpoint of ``epg`` allocates from."""
    hid = netaddr.host_id(netaddr.ip_to_int(net.subnetIP), net.subnetLen, ip)
    use_pool = _pool(epg)
    return Bitset.decode(epg.epgIpAllocMap if use_pool else net.ipAllocMap).test(hid)  # type: ignore[union-attr]


def releasable(net: NetworkState, epg: EndpointGroupState | None, ip: str) -> bool:
    """Whether ``release`` would free ``ip``: its bit is set and it is not reserved."""
    hid = netaddr.host_id(netaddr.ip_to_int(net.subnetIP), net.subnetLen, ip)
    return not _is_reserved(net, epg, hid) and is_used(net, epg, ip)


def release(net: NetworkState, epg: EndpointGroupState | None, ip: str) -> bool:
    """Free an endpoint address; reserved offsets are never freed. True if something was freed."""
    if not releasable(net, epg, ip):
        return False
    hid = netaddr.host_id(netaddr.ip_to_int(net.subnetIP), net.subnetLen, ip)
    use_pool = _pool(epg)
    bm = Bitset.decode(epg.epgIpAllocMap if use_pool else net.ipAllocMap)  # type: ignore[union-attr]
    bm.clear(hid)
    _store(net, epg, bm, use_pool)
    net.epAddrCount = max(0, net.epAddrCount - 1)
    return True


def _is_reserved(net: NetworkState, epg: EndpointGroupState | None, hid: int) -> bool:
    size = 1 << (32 - net.subnetLen)
    if hid in (0, size - 1):
        return True
    base = netaddr.ip_to_int(net.subnetIP)
    if net.gateway and hid == netaddr.host_id(base, net.subnetLen, net.gateway):
        return True
    sn = subnet_of(net)
    if sn.is_range and not sn.range_start - base <= hid <= sn.range_end - base:
        return True
    if _pool(epg):
        lo, hi = netaddr.parse_ip_pool(epg.ipPool, sn)  # type: ignore[union-attr]
        return not lo <= hid <= hi
    return False


def _store(net: NetworkState, epg: EndpointGroupState | None, bm: Bitset, use_pool: bool) -> None:
    if use_pool:
        epg.epgIpAllocMap = bm.encode()  # type: ignore[union-attr]
    else:
        net.ipAllocMap = bm.encode()


def in_pool(net: NetworkState, epg: EndpointGroupState | None, ip: str) -> bool:
    """Whether ``ip`` lies in the ip-pool of ``epg``, a group of network ``net``: then its bit is in
    the group's map, else in the network's. An allocation record is read this way (its group may
    have been deleted and re-created with another pool, or none, since the record was written)."""
    if epg is None or not epg.ipPool or (epg.networkName, epg.tenantName) != (net.networkName, net.tenant):
        return False
    sn = subnet_of(net)
    try:
        lo, hi = netaddr.parse_ip_pool(epg.ipPool, sn)
        hid = netaddr.host_id(sn.subnet_ip, sn.length, ip)
    except (ValidationError, ValueError):
        return False
    return lo <= hid <= hi


def owner_of(net: NetworkState, epgs: list[EndpointGroupState], ip: str) -> EndpointGroupState | None:
    """The EPG whose ip-pool contains ``ip`` (address released by IP only), else None."""
    sn = subnet_of(net)
    hid = netaddr.host_id(sn.subnet_ip, sn.length, ip)
    for epg in epgs:
        if epg.ipPool:
            lo, hi = netaddr.parse_ip_pool(epg.ipPool, sn)
            if lo <= hid <= hi:
                return epg
    return None


# --- EPG pools -------------------------------------------------------------------------------------


def attach_pool(net: NetworkState, epg: EndpointGroupState, pool: str) -> None:
    """Validate ``pool`` against the network map, mark it used there, build the EPG map."""
    if ":" in pool:
        raise ValidationError("ipv6 address pool is not supported for Endpoint Groups")
    sn = subnet_of(net)
    lo, hi = netaddr.parse_ip_pool(pool, sn)
    nm = Bitset.decode(net.ipAllocMap)
    for hid in range(lo, hi + 1):
        if nm.test(hid):
            raise ValidationError(f"ip address {netaddr.host_ip(sn.subnet_ip, hid)} is not available")
    nm.set_range(lo, hi)
    net.ipAllocMap = nm.encode()
    size = sn.size
    em = Bitset()
    em.set(size - 1)
    em.set(0)
    em.set_range(0, lo - 1)
    em.set_range(hi + 1, size - 1)
    epg.ipPool = pool
    epg.epgIpAllocMap = em.encode()


def detach_pool(net: NetworkState, epg: EndpointGroupState) -> None:
    """Group delete: its pool goes back to the network map (clear), and the addresses still
    allocated in it (allocAddress results nobody claimed: a group with endpoints is not deleted)
    leave ``epAddrCount``; their allocation records become stale."""
    if not epg.ipPool:
        return
    lo, hi = netaddr.parse_ip_pool(epg.ipPool, subnet_of(net))
    nm = Bitset.decode(net.ipAllocMap)
    nm.clear_range(lo, hi)
    net.ipAllocMap = nm.encode()
    em = Bitset.decode(epg.epgIpAllocMap)
    net.epAddrCount = max(0, net.epAddrCount - sum(b - a + 1 for a, b in em.runs(lo, hi)))


# --- listings (inspect Oper) ---------------------------------------------------------------------------


def list_allocated(net: NetworkState) -> str:
    """Used offsets except network/broadcast/outside-range: includes gateway and EPG pools."""
    sn = subnet_of(net)
    size = sn.size
    lo, hi = 1, size - 2
    if sn.is_range:
        lo = max(lo, sn.range_start - sn.subnet_ip)
        hi = min(hi, sn.range_end - sn.subnet_ip)
    return netaddr.render_ip_runs(sn.subnet_ip, Bitset.decode(net.ipAllocMap).runs(lo, hi))


def address_counts(net: NetworkState) -> tuple[int, int]:
    """(used, free) IPv4 host addresses of the network: the offsets ``list_allocated`` and
    ``list_available`` render (network, broadcast and outside a range subnet's range excluded;
    gateway and group pools counted as used)."""
    sn = subnet_of(net)
    lo, hi = 1, sn.size - 2
    if sn.is_range:
        lo = max(lo, sn.range_start - sn.subnet_ip)
        hi = min(hi, sn.range_end - sn.subnet_ip)
    if hi < lo:
        return 0, 0
    mask = ((1 << (hi - lo + 1)) - 1) << lo
    used = (Bitset.decode(net.ipAllocMap).bits & mask).bit_count()
    return used, hi - lo + 1 - used


def list_available(net: NetworkState) -> str:
    return _available(Bitset.decode(net.ipAllocMap), netaddr.ip_to_int(net.subnetIP), net.subnetLen)


def epg_list_available(net: NetworkState, epg: EndpointGroupState) -> str:
    return _available(Bitset.decode(epg.epgIpAllocMap), netaddr.ip_to_int(net.subnetIP), net.subnetLen)


def epg_list_allocated(net: NetworkState, epg: EndpointGroupState) -> str:
    if not epg.ipPool:
        return ""
    sn = subnet_of(net)
    lo, hi = netaddr.parse_ip_pool(epg.ipPool, sn)
    lo, hi = max(lo, 1), min(hi, sn.size - 2)
    return netaddr.render_ip_runs(sn.subnet_ip, Bitset.decode(epg.epgIpAllocMap).runs(lo, hi))


def _available(bm: Bitset, base: int, length: int) -> str:
    size = 1 << (32 - length)
    limit = min(size, bm.length)
    free = (~bm.bits) & ((1 << limit) - 1)
    return netaddr.render_ip_runs(base, Bitset(limit, free).runs())


# --- IPv6 (host ids kept in a map, next after the last one handed out) -----------------------------------


def _v6_host_id(net6: ipaddress.IPv6Network, addr: str) -> str:
    try:
        a = ipaddress.IPv6Address(addr)
    except ValueError as exc:
        raise ValidationError(f"Invalid hostAddr {addr} ") from exc
    if a not in net6:
        raise ValidationError(f"hostIP {addr} is exceeding beyond subnet {net6}")
    return str(ipaddress.IPv6Address(int(a) - int(net6.network_address)))


def allocate_v6(net: NetworkState, preferred: str = "") -> str:
    net6 = ipaddress.IPv6Network(f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}", strict=False)
    used = dict(net.ipv6AllocMap or {})
    if preferred:
        hid = _v6_host_id(net6, preferred)
        if hid in used:
            raise ResourceExhaustedError(f"ip address {preferred} is not available")
    else:
        max_hosts = (1 << (128 - net6.prefixlen)) - 1
        if len(used) >= max_hosts - 1:
            raise ResourceExhaustedError(f"Reached MaxHosts ({max_hosts}). Cannot allocate more hosts")
        cur = int(ipaddress.IPv6Address(net.ipv6LastHost or "::"))
        while True:
            cur += 1
            if cur >= max_hosts:
                cur = 1
            hid = str(ipaddress.IPv6Address(cur))
            if hid not in used:
                break
        net.ipv6LastHost = hid
    used[hid] = True
    net.ipv6AllocMap = used
    return str(ipaddress.IPv6Address(int(net6.network_address) + int(ipaddress.IPv6Address(hid))))


def check_endpoint_address_v6(net: NetworkState, addr: str) -> str:
    """The host id of IPv6 ``addr`` if an endpoint may hold it (else a ValidationError): the network
    has an IPv6 subnet, ``addr`` is a valid address inside it, not the subnet-router address (host
    id 0), not the all-ones host id and not the IPv6 gateway. Returns the host id."""
    if not net.ipv6SubnetIP:
        raise ValidationError(f"network {net.networkName} has no IPv6 subnet")
    try:
        ipaddress.IPv6Address(addr)
    except ValueError:
        raise ValidationError(f"invalid ipv6 address {addr}") from None
    net6 = ipaddress.IPv6Network(f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}", strict=False)
    hid = _v6_host_id(net6, addr)
    if int(ipaddress.IPv6Address(hid)) in (0, net6.num_addresses - 1):
        raise ValidationError(f"ip address {addr} is reserved in subnet {net6}")
    if net.ipv6Gateway and hid == _v6_host_id(net6, net.ipv6Gateway):
        raise ValidationError(f"ip address {addr} is the gateway of network {net.networkName}")
    return hid


def is_used_v6(net: NetworkState, addr: str) -> bool:
    net6 = ipaddress.IPv6Network(f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}", strict=False)
    return _v6_host_id(net6, addr) in (net.ipv6AllocMap or {})


def reserve_v6(net: NetworkState, addr: str) -> None:
    """Mark an IPv6 address used (idempotent)."""
    net6 = ipaddress.IPv6Network(f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}", strict=False)
    used = dict(net.ipv6AllocMap or {})
    used[_v6_host_id(net6, addr)] = True
    net.ipv6AllocMap = used


def release_v6(net: NetworkState, addr: str) -> None:
    if not net.ipv6SubnetIP or not addr:
        return
    net6 = ipaddress.IPv6Network(f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}", strict=False)
    hid = _v6_host_id(net6, addr)
    if net.ipv6Gateway and hid == _v6_host_id(net6, net.ipv6Gateway):
        return
    used = dict(net.ipv6AllocMap or {})
    used.pop(hid, None)
    net.ipv6AllocMap = used or None


__all__ = [
    "EMPTY_BITSET",
    "init_network_map",
    "new_network_state",
    "subnet_of",
    "allocate",
    "reserve",
    "check_endpoint_address",
    "is_used",
    "release",
    "owner_of",
    "in_pool",
    "attach_pool",
    "detach_pool",
    "list_allocated",
    "list_available",
    "epg_list_available",
    "epg_list_allocated",
    "allocate_v6",
    "check_endpoint_address_v6",
    "is_used_v6",
    "reserve_v6",
    "release_v6",
]
