"""Netlink adapter of the netplugin agent (the only pyroute2 importer).

Contiv endpoint interfaces (docs/original.md §5.3): a veth pair per endpoint, container side ``vport<N>``
(moved into the container by Docker/CNI), OVS side ``vvport<N>``; the container side gets the endpoint MAC
(``02:02:<ipv4 bytes>``) and the MTU; the OVS side is ``NOARP`` (the host kernel never answers ARP on it),
up and promiscuous from its creation (MTU 1450 like the 1.1.x agent, or the lowest host MTU - 50 on request).

On the userspace (netdev) datapath the container side must have TX checksum offload off, or TCP/UDP
frames reach the peer with unfinished checksums and are dropped (found when building the test bed, tests/fixtures/testbed.py). The
setting survives the move into another netns, so it is applied here, before Docker moves the interface.
It is done with the SIOCETHTOOL ioctl (no subprocess); ``ethtool -K`` is the fallback. The container
side also gets GRO on (both datapaths; best effort), so its stack receives coalesced segments.

Design: the frequent host-side operations (veth create/delete, link lookups, the host MTU, an
interface's IPv4 address) go through ``rtnl.py`` (our own rtnetlink client, one persistent socket,
standard library only), synchronously on the caller's thread: each is a sub-millisecond syscall
pair, cheaper than a hand-off to a worker thread. pyroute2 is imported only by the rare paths that
still use it (pod network namespaces, infra routes), in ``asyncio.to_thread``. Every operation is
idempotent (``ensure_veth`` on an existing pair fixes it up, ``remove_veth`` of a missing link is a no-op).
"""

from __future__ import annotations

import array
import asyncio
import errno
import fcntl
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

from contivpy.common.errors import ExternalServiceError
from contivpy.netplugin import rtnl

if TYPE_CHECKING:
    from pyroute2 import IPRoute

log = logging.getLogger(__name__)

SIOCETHTOOL = 0x8946
IFF_NOARP = 0x80
ETHTOOL_STXCSUM = 0x00000017
ETHTOOL_SGRO = 0x0000002C
_OVS_SIDE_FLAGS = IFF_NOARP | rtnl.IFF_UP | rtnl.IFF_PROMISC  # the OVS side of an endpoint's veth
_SKIP_MTU_PREFIXES = ("docker", "veth", "vport", "vvport", "lo", "ovs-", "contiv")


def _ethtool_set(ifname: str, cmd: int, value: int) -> None:
    """One ``ethtool_value`` set command (``ETHTOOL_S*``) on ``ifname``; OSError if refused."""
    buf = array.array("B", struct.pack("II", cmd, value))
    addr, _ = buf.buffer_info()
    ifr = struct.pack("16sP", ifname.encode(), addr) + b"\0" * 16
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)


def _tx_csum_off(ifname: str) -> None:
    try:
        _ethtool_set(ifname, ETHTOOL_STXCSUM, 0)
    except OSError:
        subprocess.run(["ethtool", "-K", ifname, "tx", "off"], check=True, capture_output=True)


def _gro_on(ifname: str) -> None:
    """GRO on the container's side of the veth: its stack then receives coalesced segments (a veth
    has it off by default; on the userspace datapath, where the container must also send without
    TSO, this measured 0.86 -> 0.94 of the host reference, docs/benchmarks.md). Never on the OVS
    side, whose frames the userspace datapath reads one by one. An optimisation only: a kernel
    that refuses it leaves the endpoint as it was."""
    try:
        _ethtool_set(ifname, ETHTOOL_SGRO, 1)
    except OSError as e:
        log.debug("GRO not enabled on %s: %s", ifname, e)


def _pyroute2():
    """pyroute2's IPRoute, imported on first use (the rare paths only: see the module docstring)."""
    from pyroute2 import IPRoute

    return IPRoute


def _netlink_error() -> type[Exception]:
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def _nl_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a netlink call may raise: OSError, and pyroute2's once it is loaded."""
    mod = sys.modules.get("pyroute2.netlink.exceptions")
    return (OSError, mod.NetlinkError) if mod is not None else (OSError,)


def _ensure_veth(name: str, peer: str, mac: str | None, mtu: int, tx_off: bool) -> None:
    nl = rtnl.default()
    a, b = nl.lookup(name), nl.lookup(peer)
    if a is not None and b is None:
        nl.delete(name)
    created = False
    if b is None:
        # NOARP on the OVS side: with the userspace datapath the host kernel also receives the frames
        # OVS reads from vvportN and would answer a container's ARP for the host's own addresses
        # (contivh0's, the underlay's) with vvportN's MAC, bypassing the pipeline.
        # One request: every link change makes ovs-vswitchd re-read the host's interfaces.
        # PROMISC too: OVS puts every port it attaches into promiscuous mode; set at creation,
        # the userspace datapath finds it set and makes no link change of its own (the kernel
        # datapath's module notifies its own promiscuity change either way).
        try:
            nl.add_veth(name, peer, mtu=mtu, mac=mac, peer_flags=_OVS_SIDE_FLAGS)
            created = True
        except OSError as e:
            if e.errno != errno.EEXIST:  # EEXIST: raced with ourselves, fixed up below
                raise
    if not created:  # an existing pair: fix it up in place
        a, b = nl.lookup(name), nl.lookup(peer)
        if a is None or b is None:
            raise OSError(errno.ENODEV, f"veth pair {name}/{peer} is incomplete")
        nl.set_link(a.index, mtu=mtu, mac=mac)
        nl.set_link(b.index, mtu=mtu, flags=_OVS_SIDE_FLAGS, change=_OVS_SIDE_FLAGS)
    if tx_off:
        _tx_csum_off(name)
    _gro_on(name)


def _remove(name: str) -> bool:
    return rtnl.default().delete(name)


def _exists(*names: str) -> bool:
    nl = rtnl.default()
    return any(nl.lookup(n) is not None for n in names)


def _lowest_mtu() -> int:
    lowest = 0
    for link in rtnl.default().links():
        if link.name.startswith(_SKIP_MTU_PREFIXES):
            continue
        if link.mtu and (lowest == 0 or link.mtu < lowest):
            lowest = link.mtu
    return min(lowest or 1500, 9000)


async def ensure_veth(
    name: str, peer: str, mac: str | None = None, mtu: int = 1450, tx_off: bool = True
) -> None:
    """Create (or fix up) veth ``name`` <-> ``peer``; ``peer`` is brought up, ``name`` keeps its state."""
    try:
        _ensure_veth(name, peer, mac, mtu, tx_off)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ExternalServiceError(f"cannot create veth {name}/{peer}: {e}") from e


async def remove_link(name: str) -> bool:
    """Delete a link (a veth takes its peer with it). Missing is fine; returns True if it was deleted."""
    try:
        return _remove(name)
    except OSError as e:
        raise ExternalServiceError(f"cannot delete link {name}: {e}") from e


async def link_exists(*names: str) -> bool:
    return _exists(*names)


async def host_mtu() -> int:
    """Lowest MTU of the host's links (ignoring docker*/veth*/vport*/lo*), capped at 9000."""
    return _lowest_mtu()


async def set_tx_offload_off(name: str) -> None:
    await asyncio.to_thread(_tx_csum_off, name)


def _ensure_address(name: str, ip: str, prefix: int, mtu: int | None) -> bool:
    """``name`` up with exactly one IPv4 address ``ip/prefix`` (others removed); True if changed."""
    changed = False
    nl = rtnl.default()
    link = nl.lookup(name)
    if link is None:
        raise ExternalServiceError(f"link {name} does not exist")
    if mtu and link.mtu != mtu:
        nl.set_link(link.index, mtu=mtu)
        changed = True
    if not link.flags & rtnl.IFF_UP:
        nl.set_link(link.index, flags=rtnl.IFF_UP, change=rtnl.IFF_UP)
        changed = True
    have = nl.addrs(link.index)
    for addr, plen in have:
        if (addr, plen) != (ip, prefix):
            nl.del_addr(link.index, addr, plen)
            changed = True
    if (ip, prefix) not in have:
        nl.add_addr(link.index, ip, prefix)
        changed = True
    return changed


async def ensure_address(name: str, cidr: str, mtu: int | None = None, timeout: float = 5.0) -> bool:
    """Wait for link ``name`` (an OVS internal port appears asynchronously), bring it up with exactly the
    IPv4 address ``cidr`` (and ``mtu``). Idempotent; returns True if something changed."""
    ip, _, plen = cidr.partition("/")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await link_exists(name):
        if loop.time() > deadline:
            raise ExternalServiceError(f"link {name} did not appear")
        await asyncio.sleep(0.02)
    try:
        return _ensure_address(name, ip, int(plen or 32), mtu)
    except OSError as e:
        raise ExternalServiceError(f"cannot set address {cidr} on {name}: {e}") from e


def _set_forwarding() -> bool:
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        if f.read().strip() == "1":
            return False
    with open(path, "w") as f:
        f.write("1\n")
    return True


async def enable_ip_forwarding() -> bool:
    """``net.ipv4.ip_forward=1`` in this network namespace (containers' traffic is forwarded by the
    host kernel, as Docker's own bridge needs too); True if it was off."""
    try:
        return await asyncio.to_thread(_set_forwarding)
    except OSError as e:
        raise ExternalServiceError(f"cannot enable IPv4 forwarding: {e}") from e


# -- pod network namespaces (CNI, docs/cni.md) ------------------------------------------------
# A pod's netns is entered with setns(2) from a dedicated short-lived thread (never a pool thread:
# a thread left in another netns would poison later calls); the netlink socket opened there stays
# bound to that netns. The agent's own threads never change namespace.

CLONE_NEWNET = 0x40000000
_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _in_netns_thread(path: str, fn, *args, before=None):
    """Run ``fn(ipr, *args)`` with an IPRoute opened inside the netns at ``path`` (after
    ``before()``, if given, in the caller's netns), in a dedicated thread."""
    out: dict = {}

    def run() -> None:
        try:
            if before is not None:
                before()
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                target = os.open(path, os.O_RDONLY)
                try:
                    _setns(target)
                    try:
                        with _pyroute2()() as ipr:
                            out["v"] = fn(ipr, *args)
                    finally:
                        _setns(own)
                finally:
                    os.close(target)
            finally:
                os.close(own)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["e"] = e

    t = threading.Thread(target=run, name="netns")
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out.get("v")


def _is_netns(path: str) -> bool:
    try:
        st = os.stat(path)
        own = os.stat("/proc/self/ns/net")
    except OSError:
        return False
    # nsfs inodes live on one pseudo device; a regular file or directory is not a namespace
    return st.st_dev == own.st_dev


def _probe(ipr: IPRoute, ifname: str) -> dict | None:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        return None
    link = ipr.get_links(idx[0])[0]
    addrs = [
        f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
        for a in ipr.get_addr(index=idx[0])
        if a.get_attr("IFA_ADDRESS") and not a.get_attr("IFA_ADDRESS").startswith("fe80:")
    ]
    routes = []
    for fam in (socket.AF_INET, socket.AF_INET6):
        for r in ipr.get_routes(family=fam, oif=idx[0]):
            if r["dst_len"] == 0 and r.get_attr("RTA_TABLE") in (None, 254):
                routes.append(r.get_attr("RTA_GATEWAY") or "")
    return {
        "mac": link.get_attr("IFLA_ADDRESS"),
        "mtu": link.get_attr("IFLA_MTU"),
        "up": bool(link["flags"] & 1),
        "addrs": addrs,
        "default_via": routes,
    }


def _configure(
    ipr: IPRoute, port: str, ifname: str, addrs: list[str], gateways: list[str], on_link: bool
) -> list[str]:
    """Inside the pod netns: rename ``port`` to ``ifname``, address it, bring it up, default route.
    Returns warnings (a default route that could not be added is logged, not fatal: the original's rule)."""
    idx = ipr.link_lookup(ifname=port)
    if not idx:
        raise ExternalServiceError(f"interface {port} did not arrive in the pod namespace")
    i = idx[0]
    ipr.link("set", index=i, ifname=ifname)
    for a in addrs:
        ip, _, plen = a.partition("/")
        ipr.addr("add", index=i, address=ip, prefixlen=int(plen))
    ipr.link("set", index=i, state="up")
    warnings = []
    routes = [(g, socket.AF_INET6 if ":" in g else socket.AF_INET) for g in gateways]
    if not any(fam == socket.AF_INET for _, fam in routes) and on_link:
        routes.append(("", socket.AF_INET))
    for gw, fam in routes:
        dst = "::/0" if fam == socket.AF_INET6 else "0.0.0.0/0"
        try:
            if gw:
                ipr.route("add", dst=dst, gateway=gw, oif=i, family=fam)
            else:
                ipr.route("add", dst=dst, oif=i, family=fam, scope=253)  # RT_SCOPE_LINK
        except _netlink_error() as e:
            warnings.append(f"default route {dst} via {gw or ifname} not added: {e}")
    return warnings


def _move(port: str, fd: int) -> None:
    with _pyroute2()() as ipr:
        idx = ipr.link_lookup(ifname=port)
        if not idx:
            raise ExternalServiceError(f"interface {port} not found on the host")
        ipr.link("set", index=idx[0], net_ns_fd=fd)


def _move_to(port: str, path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _move(port, fd)
    finally:
        os.close(fd)


def _remove_in(ipr: IPRoute, names: tuple[str, ...]) -> bool:
    gone = False
    for n in names:
        idx = ipr.link_lookup(ifname=n)
        if idx:
            try:
                ipr.link("del", index=idx[0])
                gone = True
            except _netlink_error() as e:
                if e.code != 19:
                    raise
    return gone


async def netns_probe(path: str, ifname: str) -> dict | None:
    """``ifname`` in the netns at ``path``: {"mac","mtu","up","addrs","default_via"} or None if absent.
    Raises ValidationError-worthy ``ExternalServiceError`` when ``path`` is not a network namespace."""
    if not await asyncio.to_thread(_is_netns, path):
        raise ExternalServiceError(f"{path} is not a network namespace")
    try:
        return await asyncio.to_thread(_in_netns_thread, path, _probe, ifname)
    except _nl_errors() as e:
        raise ExternalServiceError(f"cannot enter network namespace {path}: {e}") from e


async def plug_into_netns(
    port: str, path: str, ifname: str, addrs: list[str], gateways: list[str], on_link: bool
) -> list[str]:
    """Move the container side ``port`` (vportN, MAC/MTU already set) into the netns at ``path`` as
    ``ifname`` with ``addrs`` (``ip/len``) and a default route via each gateway (or on-link when
    ``on_link`` and no IPv4 gateway). On failure the caller removes the pair (``unplug_from_netns``)."""
    try:
        return await asyncio.to_thread(
            _in_netns_thread,
            path,
            _configure,
            port,
            ifname,
            addrs,
            gateways,
            on_link,
            before=lambda: _move_to(port, path),
        )
    except _nl_errors() as e:
        raise ExternalServiceError(f"cannot configure {ifname} in {path}: {e}") from e


async def unplug_from_netns(path: str, *names: str) -> bool:
    """Delete the first existing of ``names`` in the netns (its host peer goes with it). A netns that
    is gone, or no such link, is fine: returns False."""
    if not path or not await asyncio.to_thread(_is_netns, path):
        return False
    try:
        return await asyncio.to_thread(_in_netns_thread, path, _remove_in, names)
    except _nl_errors() as e:
        raise ExternalServiceError(f"cannot remove {names[0]} in {path}: {e}") from e


# -- host routes of the infra network contivh1 (netplugin/managers/infra.py) -------------------------
RTPROT_CONTIVPY = 77  # routing protocol id marking the routes this agent owns (ip route: "proto 77")


def _sync_routes(dev: str, via: str, want: list[str]) -> tuple[int, int]:
    """Routes with our protocol id on ``dev``: exactly ``<cidr> via <via>`` for each cidr of ``want``."""
    added = removed = 0
    with _pyroute2()() as ipr:
        idx = ipr.link_lookup(ifname=dev)
        if not idx:
            return 0, 0  # the device is gone: the kernel removed its routes with it
        have = {}
        for r in ipr.get_routes(family=socket.AF_INET, oif=idx[0], proto=RTPROT_CONTIVPY):
            have[f"{r.get_attr('RTA_DST')}/{r['dst_len']}"] = r.get_attr("RTA_GATEWAY")
        for cidr in have:
            if cidr not in want:
                ipr.route("del", dst=cidr, oif=idx[0], proto=RTPROT_CONTIVPY)
                removed += 1
        for cidr in want:
            if have.get(cidr) != via:
                ipr.route("replace", dst=cidr, gateway=via, oif=idx[0], proto=RTPROT_CONTIVPY)
                added += 1
    return added, removed


async def sync_routes(dev: str, via: str, want: list[str]) -> tuple[int, int]:
    """Converge our routes on ``dev`` to ``want`` (CIDRs) via ``via``; returns (added, removed).
    Idempotent: a restart leaves equal routes alone, so none is ever duplicated."""
    try:
        return await asyncio.to_thread(_sync_routes, dev, via, sorted(set(want)))
    except _nl_errors() as e:
        raise ExternalServiceError(f"cannot set the routes via {via} on {dev}: {e}") from e


# -- BGP next hops (netplugin/managers/bgp.py) ---------------------------------------------------------
_NUD_UNUSABLE = 0x01 | 0x20  # NUD_INCOMPLETE, NUD_FAILED


def _neighbor_mac(ip: str) -> str:
    with _pyroute2()() as ipr:
        for n in ipr.get_neighbours(family=socket.AF_INET, dst=ip):
            mac = n.get_attr("NDA_LLADDR")
            if mac and not n["state"] & _NUD_UNUSABLE:
                return str(mac)
    return ""


async def neighbor_mac(ip: str) -> str:
    """The MAC the kernel resolved for ``ip`` (any device; "" when unresolved). The BGP session to the
    neighbor keeps its entry fresh, so a next hop that is the neighbor always resolves."""
    try:
        return await asyncio.to_thread(_neighbor_mac, ip)
    except _nl_errors() as e:
        raise ExternalServiceError(f"cannot read the neighbor table for {ip}: {e}") from e
