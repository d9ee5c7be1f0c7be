"""Address and tag math for contiv networks (pure, no I/O).

Subnet forms (docs/original.md §4.2, docs/original.md R7.5)
    ``A.B.C.D/len``          host bits allowed (``10.1.1.5/24`` is accepted; the subnet address is
                             normalised to ``10.1.1.0``), ``ipAddrRange`` = given address .. last
                             address of the subnet (the original's quirk, kept for the state JSON).
    ``A.B.C.D-E.F.G.H/len``  an address range inside one subnet; start <= end.
    ``len`` must be 8..32.  Text that does not look like either form is rejected with the
    original's model-validation message ``subnet string invalid format``.

Host ids: an address is identified by its offset from the subnet address (bit index in the IPAM
bitmaps). Tag ranges (``1-4094``, ``1-10,20-30``) follow the original's parser and messages.

Rendering of address / tag sets as ``a-b, c, d-e`` strings (``availableIPAddresses``,
``vlansInUse``) lives here too, so netmaster and netctl agree on one format.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from contivpy.common.errors import ValidationError

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IP = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_IP_RE = rf"^{_IP}$"
_SUBNET_RE = rf"^(?P<start>{_IP})(-(?P<end>{_IP}))?/(?P<len>[0-9]{{1,2}})$"
_POOL_RE = rf"^(?P<start>{_IP})-(?P<end>{_IP})$"


@functools.cache
def _rx(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled on first use: compiling these three at import took ~3 ms of netmaster's
    start-up (this module is imported on its way to the first answer; docs/benchmarks.md)."""
    return re.compile(pattern)


MAX_U32 = 0xFFFFFFFF


def is_ipv4(text: str) -> bool:
    return bool(_rx(_IP_RE).match(text or ""))


def ip_to_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int_to_ip(value: int) -> str:
    value &= MAX_U32
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def mask(length: int) -> int:
    return (MAX_U32 << (32 - length)) & MAX_U32


@dataclass(frozen=True, slots=True)
class Subnet:
    """A parsed IPv4 network subnet."""

    text: str  # as given, e.g. "10.1.1.5/24" or "20.1.1.10-20.1.1.45/24"
    subnet_ip: int  # network address
    length: int
    range_start: int  # first usable address of the configured range (given address for CIDR)
    range_end: int  # last address of the range (last subnet address for CIDR)
    is_range: bool

    @property
    def size(self) -> int:
        return 1 << (32 - self.length)

    @property
    def subnet_str(self) -> str:
        return int_to_ip(self.subnet_ip)

    @property
    def last(self) -> int:
        return self.subnet_ip + self.size - 1

    @property
    def cidr(self) -> str:
        return f"{self.subnet_str}/{self.length}"

    @property
    def ip_addr_range(self) -> str:
        return f"{int_to_ip(self.range_start)}-{int_to_ip(self.range_end)}"


def parse_subnet(text: str) -> Subnet:
    """Parse a network ``subnet`` field; raises ValidationError with the original's messages."""
    m = _rx(_SUBNET_RE).match(text or "")
    if not m:
        raise ValidationError("subnet string invalid format")
    length = int(m["len"])
    if length > 32:
        raise ValidationError("subnet string invalid format")
    start = ip_to_int(m["start"])
    end_txt = m["end"]
    if length < 8:
        raise ValidationError(f"subnet length {length} not supported")
    net = start & mask(length)
    last = net | (~mask(length) & MAX_U32)
    if end_txt is None:
        return Subnet(text, net, length, start, last, False)
    end = ip_to_int(end_txt)
    if end < start or end > last:
        raise ValidationError("Network subnet format not valid")
    return Subnet(text, net, length, start, end, True)


def host_id(subnet_ip: int, length: int, host_ip: str) -> int:
    """Offset of ``host_ip`` in the subnet; the original's error when it is outside."""
    if not is_ipv4(host_ip):
        raise ValidationError(f"unable to convert hostIP {host_ip} to uint32")
    hid = (ip_to_int(host_ip) - subnet_ip) & MAX_U32
    if hid >= (1 << (32 - length)):
        raise ValidationError(
            f"hostIP {host_ip} is exceeding beyond subnet {int_to_ip(subnet_ip)}/{length}, hostID {hid}"
        )
    return hid


def host_ip(subnet_ip: int, hid: int) -> str:
    return int_to_ip(subnet_ip + hid)


def parse_ip_pool(pool: str, subnet: Subnet) -> tuple[int, int]:
    """EPG ``ipPool`` ``A-B`` -> (first host id, last host id) inside ``subnet``."""
    m = _rx(_POOL_RE).match(pool or "")
    if not m:
        raise ValidationError(f"invalid ip-pool {pool}")
    start, end = ip_to_int(m["start"]), ip_to_int(m["end"])
    if start > end:
        raise ValidationError(f"invalid ip-pool {pool}")
    for ip in (start, end):
        if not subnet.subnet_ip <= ip <= subnet.last:
            raise ValidationError(
                f"bad ip-pool {pool}, EPG ip-pool must be a subset of network "
                f"{subnet.subnet_str}/{subnet.length}"
            )
    return start - subnet.subnet_ip, end - subnet.subnet_ip


def subnets_overlap(a: str, b: str) -> bool:
    """True if two network subnets (either form) share an address (CIDR form: whole subnet)."""
    sa, sb = parse_subnet(a), parse_subnet(b)

    def span(s: Subnet) -> tuple[int, int]:
        return (s.range_start, s.range_end) if s.is_range else (s.subnet_ip, s.last)

    (a0, a1), (b0, b1) = span(sa), span(sb)
    return a0 <= b1 and b0 <= a1


def parse_subnet_v6(text: str) -> ipaddress.IPv6Network:
    try:
        return ipaddress.IPv6Network(text, strict=False)
    except ValueError as exc:
        raise ValidationError(f"invalid ipv6 subnet {text}") from exc


def subnets_overlap_v6(a: str, b: str) -> bool:
    return parse_subnet_v6(a).overlaps(parse_subnet_v6(b))


def mac_from_ip(ip: str) -> str:
    """Contiv MAC: ``02:02:`` + the IPv4 bytes (10.1.1.2 -> 02:02:0a:01:01:02)."""
    return "02:02:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


# --- ranges rendering ------------------------------------------------------------------------


def runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ints -> list of (first, last) consecutive runs."""
    out: list[tuple[int, int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def render_runs(pairs: Iterable[tuple[int, int]], fmt: Callable[[int], str] = str) -> str:
    """``[(1,3),(5,5)]`` -> ``"1-3, 5"`` (``fmt`` renders one value, e.g. an IP)."""
    return ", ".join(fmt(a) if a == b else f"{fmt(a)}-{fmt(b)}" for a, b in pairs)


def render_ip_runs(subnet_ip: int, pairs: Iterable[tuple[int, int]]) -> str:
    return render_runs(pairs, lambda hid: host_ip(subnet_ip, hid))


# --- tag ranges ---------------------------------------------------------------------------------


def parse_tag_ranges(text: str, tag_type: str) -> list[tuple[int, int]]:
    """``"1-4094"`` / ``"1-10,20-30"`` (vlan only) -> [(min, max), ...] with the original's checks."""
    if tag_type not in ("vlan", "vxlan"):
        raise ValidationError(f"invalid tag type {tag_type}")
    parts = text.split(",")
    if len(parts) > 1 and tag_type == "vxlan":
        raise ValidationError("do not support more than 2 vxlan tag ranges")
    out = []
    for raw in parts:
        one = raw.strip(" ")
        nums = one.split("-")
        if len(nums) != 2:
            raise ValidationError(f"invalid tags {one}, correct '10-50,70-100'")
        try:
            lo, hi = int(nums[0]), int(nums[1])
        except ValueError as exc:
            raise ValidationError(f"invalid integer conversion error '{one}'") from exc
        if lo > hi:
            raise ValidationError(f"invalid range {one}, min is greater than max")
        if lo < 1:
            raise ValidationError(f"invalid range {one}, values less than 1")
        if tag_type == "vlan" and hi > 4095:
            raise ValidationError(f"invalid range {one}, vlan values exceed 4095 max allowed")
        if tag_type == "vxlan" and hi > 65535:
            raise ValidationError(f"invalid range {one}, vlan values exceed 65535 max allowed")
        if tag_type == "vxlan" and hi - lo > 16000:
            raise ValidationError(f"does not allow vxlan range to exceed 16000 range {one}")
        out.append((lo, hi))
    return out


__all__ = [
    "Subnet",
    "is_ipv4",
    "ip_to_int",
    "int_to_ip",
    "mask",
    "parse_subnet",
    "host_id",
    "host_ip",
    "parse_ip_pool",
    "subnets_overlap",
    "parse_subnet_v6",
    "subnets_overlap_v6",
    "mac_from_ip",
    "runs",
    "render_runs",
    "render_ip_runs",
    "parse_tag_ranges",
]
