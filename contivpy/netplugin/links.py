"""Netlink adapter of the netplugin agent (the only pyroute2 importer).

Contiv endpoint interfaces (contiv-reference §5.3): a veth pair per endpoint, container side ``vport<N>``
(moved into the container by Docker/CNI), OVS side ``vvport<N>``; the container side gets the endpoint MAC
(``02:02:<ipv4 bytes>``) and the MTU; the OVS side is ``NOARP`` (the host kernel never answers ARP on it) (1450 like the 1.1.x agent, or the lowest host MTU - 50 on request).

On the userspace (netdev) datapath the container side must have TX checksum offload off, or TCP/UDP
frames reach the peer with unfinished checksums and are dropped (testbed-recipe.md finding 2 / P1). The
setting survives the move into another netns, so it is applied here, before Docker moves the interface.
It is done with the SIOCETHTOOL ioctl (no subprocess); ``ethtool -K`` is the fallback.

Design: synchronous pyroute2 calls run in ``asyncio.to_thread``; every operation is idempotent
(``ensure_veth`` on an existing pair fixes it up, ``remove_veth`` of a missing link is a no-op).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import socket
import struct
import subprocess

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from contivpy.common.errors import ExternalServiceError

log = logging.getLogger(__name__)

SIOCETHTOOL = 0x8946
IFF_NOARP = 0x80
ETHTOOL_STXCSUM = 0x00000017
_SKIP_MTU_PREFIXES = ("docker", "veth", "vport", "vvport", "lo", "ovs-", "contiv")


def _tx_csum_off(ifname: str) -> None:
    buf = array.array("B", struct.pack("II", ETHTOOL_STXCSUM, 0))
    addr, _ = buf.buffer_info()
    ifr = struct.pack("16sP", ifname.encode(), addr) + b"\0" * 16
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    except OSError:
        subprocess.run(["ethtool", "-K", ifname, "tx", "off"], check=True, capture_output=True)


def _link_exists(ipr: IPRoute, name: str) -> bool:
    return bool(ipr.link_lookup(ifname=name))


def _ensure_veth(name: str, peer: str, mac: str | None, mtu: int, tx_off: bool) -> None:
    with IPRoute() as ipr:
        if _link_exists(ipr, name) and not _link_exists(ipr, peer):
            ipr.link("del", index=ipr.link_lookup(ifname=name)[0])
        if not _link_exists(ipr, peer):
            try:
                ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer})
            except NetlinkError as e:
                if e.code != 17:  # EEXIST: raced with ourselves, fine
                    raise
        ci = ipr.link_lookup(ifname=name)[0]
        pi = ipr.link_lookup(ifname=peer)[0]
        kw = {"mtu": mtu}
        if mac:
            kw["address"] = mac
        ipr.link("set", index=ci, **kw)
        # NOARP on the OVS side: with the userspace datapath the host kernel also receives the frames
        # OVS reads from vvportN and would answer a container's ARP for the host's own addresses
        # (contivh0's, the underlay's) with vvportN's MAC, bypassing the pipeline.
        ipr.link("set", index=pi, flags=IFF_NOARP, change=IFF_NOARP)
        ipr.link("set", index=pi, mtu=mtu, state="up")
    if tx_off:
        _tx_csum_off(name)


def _remove(name: str) -> bool:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        try:
            ipr.link("del", index=idx[0])
        except NetlinkError as e:
            if e.code != 19:  # ENODEV: already gone
                raise
        return True


def _exists(*names: str) -> bool:
    with IPRoute() as ipr:
        return any(_link_exists(ipr, n) for n in names)


def _lowest_mtu() -> int:
    lowest = 0
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("ifname") or ""
            if name.startswith(_SKIP_MTU_PREFIXES):
                continue
            mtu = link.get("mtu") or 0
            if mtu and (lowest == 0 or mtu < lowest):
                lowest = mtu
    return min(lowest or 1500, 9000)


async def ensure_veth(
    name: str, peer: str, mac: str | None = None, mtu: int = 1450, tx_off: bool = True
) -> None:
    """Create (or fix up) veth ``name`` <-> ``peer``; ``peer`` is brought up, ``name`` keeps its state."""
    try:
        await asyncio.to_thread(_ensure_veth, name, peer, mac, mtu, tx_off)
    except (NetlinkError, OSError, subprocess.CalledProcessError) as e:
        raise ExternalServiceError(f"cannot create veth {name}/{peer}: {e}") from e


async def remove_link(name: str) -> bool:
    """Delete a link (a veth takes its peer with it). Missing is fine; returns True if it was deleted."""
    try:
        return await asyncio.to_thread(_remove, name)
    except (NetlinkError, OSError) as e:
        raise ExternalServiceError(f"cannot delete link {name}: {e}") from e


async def link_exists(*names: str) -> bool:
    return await asyncio.to_thread(_exists, *names)


async def host_mtu() -> int:
    """Lowest MTU of the host's links (ignoring docker*/veth*/vport*/lo*), capped at 9000."""
    return await asyncio.to_thread(_lowest_mtu)


async def set_tx_offload_off(name: str) -> None:
    await asyncio.to_thread(_tx_csum_off, name)


def _ensure_address(name: str, ip: str, prefix: int, mtu: int | None) -> bool:
    """``name`` up with exactly one IPv4 address ``ip/prefix`` (others removed); True if changed."""
    changed = False
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            raise ExternalServiceError(f"link {name} does not exist")
        link = ipr.get_links(idx[0])[0]
        if mtu and link.get("mtu") != mtu:
            ipr.link("set", index=idx[0], mtu=mtu)
            changed = True
        if link.get("state") != "up":
            ipr.link("set", index=idx[0], state="up")
            changed = True
        have = [
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in ipr.get_addr(family=socket.AF_INET, index=idx[0])
        ]
        for addr, plen in have:
            if (addr, plen) != (ip, prefix):
                ipr.addr("del", index=idx[0], address=addr, prefixlen=plen)
                changed = True
        if (ip, prefix) not in have:
            ipr.addr("add", index=idx[0], address=ip, prefixlen=prefix)
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
        return await asyncio.to_thread(_ensure_address, name, ip, int(plen or 32), mtu)
    except (NetlinkError, OSError) as e:
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


# -- host routes of the infra network contivh1 (netplugin/managers/infra.py) -------------------------
RTPROT_CONTIVPY = 77  # routing protocol id marking the routes this agent owns (ip route: "proto 77")


def _sync_routes(dev: str, via: str, want: list[str]) -> tuple[int, int]:
    """Routes with our protocol id on ``dev``: exactly ``<cidr> via <via>`` for each cidr of ``want``."""
    added = removed = 0
    with IPRoute() as ipr:
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
    except (NetlinkError, OSError) as e:
        raise ExternalServiceError(f"cannot set the routes via {via} on {dev}: {e}") from e
