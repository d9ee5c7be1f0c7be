"""A growable bit set with the JSON encoding of Go's ``github.com/jainvipin/bitset``.

The original stores IPAM and tag maps in etcd as JSON strings holding base64url (with padding)
of: 8-byte big-endian bit length, then the 64-bit words (bit ``i`` is bit ``i % 64`` of word
``i // 64``), each big-endian. Reproducing it keeps ``ipAllocMap``, ``vlans``, ``freeVXLANs``
... byte-identical to the original's etcd values (docs/original.md R5).

Semantics kept from the Go type: ``set(i)`` beyond the length grows the set to ``i + 1``;
``clear``/``test`` beyond the length are no-ops / False; ``next_set``/``next_clear`` only look
below the length. The bits live in one Python ``int`` (fast whole-set operations).
"""

from __future__ import annotations

import base64
import sys
from array import array

_WORD = 64


class Bitset:
    __slots__ = ("length", "bits")

    def __init__(self, length: int = 0, bits: int = 0) -> None:
        self.length = length
        self.bits = bits & ((1 << length) - 1) if length else 0

    # --- single bits ---------------------------------------------------------------------
    def test(self, i: int) -> bool:
        return 0 <= i < self.length and bool((self.bits >> i) & 1)

    def set(self, i: int) -> None:
        if i >= self.length:
            self.length = i + 1
        self.bits |= 1 << i

    def clear(self, i: int) -> None:
        if 0 <= i < self.length:
            self.bits &= ~(1 << i)

    def set_range(self, lo: int, hi: int) -> None:
        """Set bits lo..hi inclusive (grows if needed)."""
        if hi < lo:
            return
        if hi >= self.length:
            self.length = hi + 1
        self.bits |= ((1 << (hi - lo + 1)) - 1) << lo

    def clear_range(self, lo: int, hi: int) -> None:
        hi = min(hi, self.length - 1)
        if hi < lo:
            return
        self.bits &= ~(((1 << (hi - lo + 1)) - 1) << lo)

    # --- search ----------------------------------------------------------------------------
    def next_set(self, start: int = 0) -> int | None:
        x = self.bits >> start
        if x == 0:
            return None
        return start + (x & -x).bit_length() - 1

    def next_clear(self, start: int = 0) -> int | None:
        if start >= self.length:
            return None
        full = (1 << self.length) - 1
        x = (~self.bits & full) >> start
        if x == 0:
            return None
        return start + (x & -x).bit_length() - 1

    def count(self) -> int:
        return self.bits.bit_count()

    def _words(self) -> array:
        """The 64-bit words, lowest first: one conversion of the int, then word-sized work
        (shifting the whole int once per bit costs the size of the set each time)."""
        nwords = (max(self.length, self.bits.bit_length()) + _WORD - 1) // _WORD
        words = array("Q")
        words.frombytes(self.bits.to_bytes(nwords * 8, "little"))
        if sys.byteorder == "big":
            words.byteswap()
        return words

    def iter_set(self):
        """Indexes of the set bits, ascending (linear in the size of the set)."""
        for wi, w in enumerate(self._words()):
            base = wi * _WORD
            while w:
                low = w & -w
                yield base + low.bit_length() - 1
                w ^= low

    def runs(self, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
        """Runs of consecutive set bits as (first, last), ascending, clipped to lo..hi (inclusive).
        Linear in the size of the set, whatever the number of bits set (a /9 subnet is 8 Mbit)."""
        out: list[tuple[int, int]] = []
        start = -1
        full = (1 << _WORD) - 1
        for wi, w in enumerate(self._words()):
            base = wi * _WORD
            if w == 0 or w == full:
                if w == 0 and start >= 0:
                    out.append((start, base - 1))
                    start = -1
                elif w == full and start < 0:
                    start = base
                continue
            pos = 0
            while pos < _WORD:
                if start < 0:
                    x = w >> pos
                    if x == 0:
                        break
                    pos += (x & -x).bit_length() - 1
                    start = base + pos
                x = (~w & full) >> pos
                if x == 0:
                    break  # the run goes on into the next word
                pos += (x & -x).bit_length() - 1
                out.append((start, base + pos - 1))
                start = -1
        if start >= 0:
            out.append((start, self.bits.bit_length() - 1))
        if lo > 0 or hi is not None:
            top = hi if hi is not None else max(self.length - 1, 0)
            out = [(max(a, lo), min(b, top)) for a, b in out if max(a, lo) <= min(b, top)]
        return out

    def copy(self) -> Bitset:
        return Bitset(self.length, self.bits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bitset) and (self.length, self.bits) == (other.length, other.bits)

    def __repr__(self) -> str:
        return f"Bitset(length={self.length}, set={self.count()})"

    # --- Go JSON encoding ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        nwords = (self.length + _WORD - 1) // _WORD
        raw = self.bits.to_bytes(nwords * 8, "little")
        words = array("Q")
        words.frombytes(raw)
        if sys.byteorder == "little":
            words.byteswap()
        return self.length.to_bytes(8, "big") + words.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Bitset:
        if len(data) < 8:
            raise ValueError("bitset encoding too short")
        length = int.from_bytes(data[:8], "big")
        body = data[8:]
        nwords = (length + _WORD - 1) // _WORD
        if len(body) < nwords * 8:
            raise ValueError("bitset encoding truncated")
        words = array("Q")
        words.frombytes(body[: nwords * 8])
        if sys.byteorder == "little":
            words.byteswap()
        return cls(length, int.from_bytes(words.tobytes(), "little"))

    def encode(self) -> str:
        """The JSON string value (base64url with padding)."""
        return base64.urlsafe_b64encode(self.to_bytes()).decode("ascii")

    @classmethod
    def decode(cls, text: str | None) -> Bitset:
        if not text:
            return cls()
        return cls.from_bytes(base64.urlsafe_b64decode(text))


__all__ = ["Bitset"]
