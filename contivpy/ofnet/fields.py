"""The 64-bit OpenFlow metadata register as named bit fields (docs/original.md §6.1).

    bit  0       RX_VTEP    packet was received from a VTEP (split-horizon flooding, policy bypass)
    bits 1..15   DST_EPG    destination endpoint group id  (mask 0xfffe)
    bits 16..30  SRC_EPG    source endpoint group id       (mask 0x7fff0000)
    bits 32..39  VRF        per-agent VRF id of the tenant  (mask 0xff00000000)

``Field.value(x)`` shifts a number into place, ``Field.mask`` is the field's mask; combine
several with :func:`combine` to build one ``write_metadata`` / metadata match.  Values that
do not fit raise ``ValueError`` (never silently truncated).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Field", "RX_VTEP", "DST_EPG", "SRC_EPG", "VRF", "combine"]


@dataclass(frozen=True)
class Field:
    name: str
    shift: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    @property
    def max(self) -> int:
        return (1 << self.width) - 1

    def value(self, x: int) -> int:
        if not 0 <= x <= self.max:
            raise ValueError(f"{self.name} value {x} out of range 0..{self.max}")
        return x << self.shift

    def get(self, metadata: int) -> int:
        return (metadata & self.mask) >> self.shift


RX_VTEP = Field("rx_vtep", 0, 1)
DST_EPG = Field("dst_epg", 1, 15)
SRC_EPG = Field("src_epg", 16, 15)
VRF = Field("vrf", 32, 8)


def combine(*parts: tuple[Field, int]) -> tuple[int, int]:
    """(value, mask) setting every given field to its value."""
    value = mask = 0
    for field, x in parts:
        value |= field.value(x)
        mask |= field.mask
    return value, mask
