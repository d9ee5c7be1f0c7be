"""A minimal rtnetlink client (standard library only) for the agent's frequent link operations.

Why: every endpoint create and delete looks up, creates and deletes veth pairs. Through pyroute2
each call opened a new socket (pyroute2 0.9 also builds an asyncio event loop per ``IPRoute``) in a
worker thread and took several netlink round trips; importing pyroute2 alone cost ~110 ms of CPU and
~9 MiB at start-up. This module speaks the few rtnetlink messages those paths need, on one
persistent ``NETLINK_ROUTE`` socket, synchronously (each call is a sub-millisecond syscall pair, so
the callers run it on the event loop); pyroute2 stays for the rare paths (pod namespaces, infra
routes) and is imported only when one of those runs (netplugin/links.py).

Operations: ``lookup`` (RTM_GETLINK by name), ``links`` (dump), ``set_link`` (MTU, MAC, flags),
``add_veth`` (the pair, both ends' MTU, the first end's MAC and the peer's flags in ONE RTM_NEWLINK),
``delete`` (RTM_DELLINK by name), ``addrs``/``add_addr``/``del_addr`` (IPv4).

Invariants: a kernel error becomes ``OSError(errno)`` (ENODEV for a missing link); a request's
answer is matched by sequence number, so a reply left over by an interrupted call is skipped; one
lock serialises the socket (callers may be the event loop or worker threads).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from typing import NamedTuple

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
F_REQUEST, F_MULTI, F_ACK, F_DUMP, F_EXCL, F_CREATE = 0x1, 0x2, 0x4, 0x300, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO = 1, 3, 4, 18
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP, IFF_NOARP, IFF_PROMISC = 0x1, 0x80, 0x100
NLA_F_NESTED = 0x8000

_HDR = struct.Struct("=IHHII")  # nlmsghdr
_IFI = struct.Struct("=BxHiII")  # ifinfomsg
_IFA = struct.Struct("=BBBBI")  # ifaddrmsg
_RTA = struct.Struct("=HH")  # rtattr
_U32 = struct.Struct("=I")


class Link(NamedTuple):
    index: int
    name: str
    flags: int
    mtu: int


def _attr(kind: int, data: bytes) -> bytes:
    n = _RTA.size + len(data)
    return _RTA.pack(n, kind) + data + b"\0" * (-n % 4)


def _name(name: str) -> bytes:
    return _attr(IFLA_IFNAME, name.encode() + b"\0")


def _attrs(buf: bytes, off: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + _RTA.size <= len(buf):
        n, kind = _RTA.unpack_from(buf, off)
        if n < _RTA.size:
            break
        out.setdefault(kind & ~NLA_F_NESTED, buf[off + _RTA.size : off + n])
        off += (n + 3) & ~3
    return out


def _link(payload: bytes) -> Link:
    _fam, _type, index, flags, _change = _IFI.unpack_from(payload)
    a = _attrs(payload, _IFI.size)
    mtu = _U32.unpack(a[IFLA_MTU])[0] if IFLA_MTU in a else 0
    return Link(index, a.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(), flags, mtu)


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Rtnl:
    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._buf = bytearray(1 << 17)  # one receive buffer (a dump part is far smaller)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def request(self, mtype: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request, return the answer's messages (type, payload); raise OSError on a
        kernel error. ``flags`` decides the answer: F_ACK (ends with the ack), F_DUMP (ends with
        NLMSG_DONE) or neither (one message)."""
        with self._lock:
            if self._sock is None:
                s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                s.bind((0, 0))
                self._sock = s
            sock = self._sock
            self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
            sock.send(_HDR.pack(_HDR.size + len(body), mtype, flags | F_REQUEST, seq, 0) + body)
            out: list[tuple[int, bytes]] = []
            while True:
                data = bytes(memoryview(self._buf)[: sock.recv_into(self._buf)])
                off = 0
                while off + _HDR.size <= len(data):
                    n, kind, mflags, mseq, _pid = _HDR.unpack_from(data, off)
                    payload = data[off + _HDR.size : off + n]
                    off += max((n + 3) & ~3, _HDR.size)
                    if mseq != seq:
                        continue  # an answer to an earlier, interrupted request
                    if kind == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", payload)[0]
                        if err:
                            raise OSError(err, os.strerror(err))
                        return out
                    if kind == NLMSG_DONE:
                        return out
                    out.append((kind, payload))
                    if not mflags & F_MULTI and not flags & F_ACK:
                        return out

    # -- links -------------------------------------------------------------------------------
    def lookup(self, name: str) -> Link | None:
        try:
            msgs = self.request(RTM_GETLINK, 0, _IFI.pack(0, 0, 0, 0, 0) + _name(name))
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ERANGE, errno.EINVAL):
                return None
            raise
        return _link(msgs[0][1]) if msgs else None

    def links(self) -> list[Link]:
        msgs = self.request(RTM_GETLINK, F_DUMP, _IFI.pack(0, 0, 0, 0, 0))
        return [_link(p) for kind, p in msgs if kind == RTM_NEWLINK]

    def set_link(
        self, index: int, *, mtu: int | None = None, mac: str | None = None, flags: int = 0, change: int = 0
    ) -> None:
        body = _IFI.pack(0, 0, index, flags, change)
        if mtu:
            body += _attr(IFLA_MTU, _U32.pack(mtu))
        if mac:
            body += _attr(IFLA_ADDRESS, _mac(mac))
        self.request(RTM_NEWLINK, F_ACK, body)

    def add_veth(self, name: str, peer: str, *, mtu: int, mac: str | None, peer_flags: int) -> None:
        """Create the pair ``name``/``peer`` (EEXIST if either exists): both with ``mtu``, ``name``
        with ``mac``, ``peer`` with ``peer_flags`` set (e.g. IFF_UP | IFF_NOARP), in one request.
        ``peer`` is the request's main device: the kernel applies the main device's flags after
        linking the pair (a veth end cannot come up before), the nested peer's flags before."""
        mtu_attr = _attr(IFLA_MTU, _U32.pack(mtu))
        other = _IFI.pack(0, 0, 0, 0, 0) + _name(name) + mtu_attr
        if mac:
            other += _attr(IFLA_ADDRESS, _mac(mac))
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, other))
        body = _IFI.pack(0, 0, 0, peer_flags, peer_flags) + _name(peer) + mtu_attr
        body += _attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, F_ACK | F_CREATE | F_EXCL, body)

    def delete(self, name: str) -> bool:
        """Delete link ``name`` (a veth takes its peer along); False if there was none."""
        try:
            self.request(RTM_DELLINK, F_ACK, _IFI.pack(0, 0, 0, 0, 0) + _name(name))
        except OSError as e:
            if e.errno == errno.ENODEV:
                return False
            raise
        return True

    # -- IPv4 addresses ----------------------------------------------------------------------
    def addrs(self, index: int) -> list[tuple[str, int]]:
        msgs = self.request(RTM_GETADDR, F_DUMP, _IFA.pack(socket.AF_INET, 0, 0, 0, 0))
        out = []
        for kind, p in msgs:
            if kind != RTM_NEWADDR:
                continue
            _fam, plen, _fl, _scope, idx = _IFA.unpack_from(p)
            a = _attrs(p, _IFA.size)
            addr = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
            if idx == index and addr and len(addr) == 4:
                out.append((socket.inet_ntoa(addr), plen))
        return out

    def _addr(self, mtype: int, flags: int, index: int, ip: str, prefix: int) -> None:
        raw = socket.inet_aton(ip)
        body = (
            _IFA.pack(socket.AF_INET, prefix, 0, 0, index) + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        )
        self.request(mtype, flags, body)

    def add_addr(self, index: int, ip: str, prefix: int) -> None:
        self._addr(RTM_NEWADDR, F_ACK | F_CREATE | F_EXCL, index, ip, prefix)

    def del_addr(self, index: int, ip: str, prefix: int) -> None:
        self._addr(RTM_DELADDR, F_ACK, index, ip, prefix)


_default: Rtnl | None = None


def default() -> Rtnl:
    """The process's shared client (its socket is bound to the netns the process started in)."""
    global _default
    if _default is None:
        _default = Rtnl()
    return _default
