"""Packet-tag resources: VLANs, VXLAN VNIs and the local VLANs of vxlan networks (pure).

Records (original layout, docs/original.md §4 / docs/original.md R5.1):

    /contiv.io/state/auto-vlan/global    {"id":"global","vlans":<bitset: configured VLANs>}
    /contiv.io/oper/auto-vlan/global     {"id":"global","freeVLANs":<bitset: free VLANs>}
    /contiv.io/state/auto-vxlan/global   {"id":"global","vxlans":<bitset>,"LocalVLANs":<bitset>,
                                          "FreeVXLANsStart":N}
    /contiv.io/oper/auto-vxlan/global    {"id":"global","freeVXLANs":<bitset>,"freeLocalVLANs":<bitset>}

VLAN bitsets have 4096 bits (0 and 4095 never usable). VXLAN bitsets have 16384 bits holding
``vni - FreeVXLANsStart`` where ``FreeVXLANsStart = range min - 1``. Local VLANs (used only inside
the vxlan bridge) come from their own 1-4094 pool. Allocation is lowest-free-first, so the first
vxlan network gets VNI <min> and local VLAN 1.

Callers persist the oper records with a CAS on their mod revision (one etcd txn with the network
state), so two netmasters can never hand out the same tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contivpy.common import netaddr
from contivpy.common.errors import ConflictError, ResourceExhaustedError, ValidationError
from contivpy.netmaster.bitset import Bitset

VLAN_BITS = 4096
VXLAN_BITS = 16384
LOCAL_VLAN_RANGE = "1-4094"


def vlan_bitset(ranges: str) -> Bitset:
    bm = Bitset(VLAN_BITS)
    for lo, hi in netaddr.parse_tag_ranges(ranges, "vlan"):
        bm.set_range(lo, hi)
    bm.clear(0)
    bm.clear(4095)
    return bm


@dataclass
class VlanResource:
    cfg: Bitset  # configured VLANs
    free: Bitset  # free VLANs

    @classmethod
    def new(cls, ranges: str) -> VlanResource:
        cfg = vlan_bitset(ranges)
        return cls(cfg, cfg.copy())

    @classmethod
    def load(cls, state_json: str, oper_json: str) -> VlanResource:
        return cls(
            Bitset.decode(json.loads(state_json)["vlans"]), Bitset.decode(json.loads(oper_json)["freeVLANs"])
        )

    def state_json(self) -> str:
        return json.dumps({"id": "global", "vlans": self.cfg.encode()}, separators=(",", ":"))

    def oper_json(self) -> str:
        return json.dumps({"id": "global", "freeVLANs": self.free.encode()}, separators=(",", ":"))

    def in_use(self) -> list[int]:
        return list(Bitset(self.cfg.length, self.cfg.bits & ~self.free.bits).iter_set())

    def in_use_str(self) -> tuple[int, str]:
        used = self.in_use()
        return len(used), netaddr.render_runs(netaddr.runs(used))

    def allocate(self, requested: int = 0) -> int:
        if requested:
            if not self.free.test(requested):
                raise ResourceExhaustedError(f"requested vlan not available - vlan:{requested}")
            vlan = requested
        else:
            found = self.free.next_set(0)
            if found is None:
                raise ResourceExhaustedError("no vlans available")
            vlan = found
        self.free.clear(vlan)
        return vlan

    def release(self, vlan: int) -> None:
        if self.cfg.test(vlan):
            self.free.set(vlan)

    def redefine(self, ranges: str) -> None:
        """New configured range; refused if a VLAN in use would fall outside it."""
        count, used_str = self.in_use_str()
        new_cfg = vlan_bitset(ranges)
        if any(not new_cfg.test(v) for v in self.in_use()):
            raise ConflictError(f"cannot update the vlan range due to existing vlans {used_str}")
        used = self.cfg.bits & ~self.free.bits
        self.cfg = new_cfg
        self.free = Bitset(VLAN_BITS, new_cfg.bits & ~used)


def vxlan_bitsets(vxlans: str) -> tuple[Bitset, int]:
    ((lo, hi),) = netaddr.parse_tag_ranges(vxlans, "vxlan")
    start = lo - 1
    bm = Bitset(VXLAN_BITS)
    if hi - start >= VXLAN_BITS:
        raise ValidationError(f"does not allow vxlan range to exceed 16000 range {vxlans}")
    bm.set_range(lo - start, hi - start)
    return bm, start


@dataclass
class VxlanResource:
    cfg: Bitset  # configured VNIs, relative to start
    local_cfg: Bitset
    start: int  # FreeVXLANsStart
    free: Bitset
    free_local: Bitset

    @classmethod
    def new(cls, vxlans: str) -> VxlanResource:
        cfg, start = vxlan_bitsets(vxlans)
        local = vlan_bitset(LOCAL_VLAN_RANGE)
        return cls(cfg, local, start, cfg.copy(), local.copy())

    @classmethod
    def load(cls, state_json: str, oper_json: str) -> VxlanResource:
        st, op = json.loads(state_json), json.loads(oper_json)
        return cls(
            Bitset.decode(st["vxlans"]),
            Bitset.decode(st["LocalVLANs"]),
            int(st.get("FreeVXLANsStart", 0)),
            Bitset.decode(op["freeVXLANs"]),
            Bitset.decode(op["freeLocalVLANs"]),
        )

    def state_json(self) -> str:
        return json.dumps(
            {
                "id": "global",
                "vxlans": self.cfg.encode(),
                "LocalVLANs": self.local_cfg.encode(),
                "FreeVXLANsStart": self.start,
            },
            separators=(",", ":"),
        )

    def oper_json(self) -> str:
        return json.dumps(
            {"id": "global", "freeVXLANs": self.free.encode(), "freeLocalVLANs": self.free_local.encode()},
            separators=(",", ":"),
        )

    def in_use(self) -> list[int]:
        """Absolute VNIs in use."""
        return [i + self.start for i in Bitset(self.cfg.length, self.cfg.bits & ~self.free.bits).iter_set()]

    def in_use_str(self) -> tuple[int, str]:
        used = self.in_use()
        return len(used), netaddr.render_runs(netaddr.runs(used))

    def allocate(self, requested: int = 0) -> tuple[int, int]:
        """Returns (vni, local vlan)."""
        if requested:
            if requested <= self.start:
                raise ResourceExhaustedError("requested vxlan is out of range")
            rel = requested - self.start
            if not self.free.test(rel):
                raise ResourceExhaustedError("requested vxlan not available")
        else:
            found = self.free.next_set(0)
            if found is None:
                raise ResourceExhaustedError("no vxlans available")
            rel = found
        local = self.free_local.next_set(0)
        if local is None:
            raise ResourceExhaustedError("no local vlans available")
        self.free.clear(rel)
        self.free_local.clear(local)
        return rel + self.start, local

    def release(self, vni: int, local_vlan: int) -> None:
        rel = vni - self.start
        if self.cfg.test(rel):
            self.free.set(rel)
        if self.local_cfg.test(local_vlan):
            self.free_local.set(local_vlan)

    def redefine(self, vxlans: str) -> None:
        count, used_str = self.in_use_str()
        used = self.in_use()
        ((lo, hi),) = netaddr.parse_tag_ranges(vxlans, "vxlan")
        if any(not lo <= v <= hi for v in used):
            raise ConflictError(f"cannot update the vxlan range due to existing vxlans {used_str}")
        cfg, start = vxlan_bitsets(vxlans)
        free = cfg.copy()
        for v in used:
            free.clear(v - start)
        self.cfg, self.start, self.free = cfg, start, free


__all__ = ["VlanResource", "VxlanResource", "vlan_bitset", "vxlan_bitsets", "LOCAL_VLAN_RANGE"]
