"""Convert the original Contiv's v2 keyspace into contivpy's keys (pure: no I/O).

Input: ``{key: value}`` of every leaf under ``/contiv.io`` (the original's v2 store). Output: a
``Plan``: ``target`` ``{key: value}`` to write into the v3 store, and a ``Report``.

What happens to each key kind (docs/upgrade.md has the table for readers):
- copied as they are (contivpy keeps the original's layout and JSON): model objects
  ``obj/modeldb/<type>/``, ``master/config/global``, ``state/{nets,endpointGroups,eps,bgp,
  serviceLB,global,auto-vlan,auto-vxlan}``, ``oper/{global,auto-vlan,auto-vxlan,docknet,ovs-driver}``.
- converted: ``oper/eps`` (contivpy adds the endpoint's group id/key), endpoints stored under the
  original's tenant-less ``<host>-native-intf`` key (moved to ``<net>.<tenant>-<host>-native-intf``).
- rebuilt by contivpy's own functions (derived state): ``state/policy`` + ``state/policyRule``
  (from the model, ``hooks.policy_state``), ``state/serviceLB`` ``providers`` + ``state/provider``
  (``providers.match_all``).
- added (contivpy additions, docs/decisions.md): ``master/epgid/<id>`` per group, ``state/addrAlloc``
  records for used addresses nothing explains (a pending allocAddress), ``state/svcProvider``
  candidates (endpoints with labels) and ``state/svcProviderGen`` per tenant.
- never copied: ``lock/`` and ``service/`` (live TTL state of the running original).
- anything else: an unknown key kind, listed and refused.

Checks (each failure is a ``Finding`` of one key; ``repair`` says what ``--repair`` does, "" when
it cannot be repaired): values are JSON objects and pass the model's validation; links resolve;
every address an endpoint or a service VIP holds is marked used in its network (and pool group)
map; tags lie in the global ranges and the tag bitmaps match the networks; ids are unique.
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures
import ipaddress
import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from contivpy.common import netaddr
from contivpy.common.errors import ContivError
from contivpy.model import codec, keys
from contivpy.model.objects import SPECS
from contivpy.model.state import (
    AddrAllocRecord,
    EndpointGroupState,
    EndpointState,
    NetworkState,
    ProviderCandidate,
    ProviderGeneration,
    ServiceLBState,
)
from contivpy.netmaster import ipam, providers
from contivpy.netmaster.bitset import Bitset
from contivpy.netmaster.tags import LOCAL_VLAN_RANGE, VXLAN_BITS, vlan_bitset, vxlan_bitsets

EPG_ID_PREFIX = keys.ROOT + "master/epgid/"
INTENT_KEY = keys.ROOT + "master/migrate"
DEFAULT_ALLOC_TTL = 300.0

VOLATILE_PREFIXES = (keys.LOCK, keys.SERVICE)
COPY_EXACT = {
    keys.MASTER_CONFIG_GLOBAL,
    keys.STATE_GLOBAL,
    keys.STATE_AUTO_VLAN,
    keys.STATE_AUTO_VXLAN,
    keys.OPER_GLOBAL,
    keys.OPER_AUTO_VLAN,
    keys.OPER_AUTO_VXLAN,
}
STATE_PREFIXES = (
    keys.NETS,
    keys.EPGS,
    keys.EPS,
    keys.BGP,
    keys.SERVICE_LB,
    keys.PROVIDER,
    keys.POLICY,
    keys.POLICY_RULE,
    keys.OPER_EPS,
    keys.OPER_OVS_DRIVER,
    keys.OPER_DOCKNET,
)


def _without_additions(value: str) -> dict | None:
    """An ofnet rule record without contivpy's additions (``IcmpType``), for comparing with the original's."""
    rec = _loads_obj(value)
    if rec is None:
        return None
    rec.pop("IcmpType", None)
    return rec


class MigrateError(ContivError):
    """Input the importer refuses as a whole (unreadable source, no Contiv state, ...)."""


@dataclass
class Finding:
    key: str
    problem: str
    repair: str = ""  # what --repair does; "" = cannot be repaired

    def line(self) -> str:
        fix = f" [--repair: {self.repair}]" if self.repair else " [not repairable]"
        return f"{self.key}: {self.problem}{fix}"


@dataclass
class Report:
    source_keys: int = 0
    skipped_volatile: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    repaired: bool = False
    unclaimed: list[tuple[str, str, str]] = field(default_factory=list)  # (net id, ip, group)
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        if self.unknown:
            return True
        if self.repaired:
            return any(not f.repair for f in self.problems)
        return bool(self.problems)

    def render(self) -> str:
        out = [f"source: {self.source_keys} keys"]
        for kind, n in sorted(self.counts.items()):
            out.append(f"  {kind}: {n}")
        if self.skipped_volatile:
            out.append(f"not imported (live state of the running original): {len(self.skipped_volatile)}")
            out += [f"  {k}" for k in self.skipped_volatile]
        if self.unknown:
            out.append(f"unknown key kinds (refused, nothing is dropped silently): {len(self.unknown)}")
            out += [f"  {k}" for k in self.unknown]
        if self.problems:
            title = "problems (repaired)" if self.repaired else "problems"
            out.append(f"{title}: {len(self.problems)}")
            out += [f"  {f.line()}" for f in self.problems]
        if self.unclaimed:
            out.append(
                f"used addresses nothing explains, imported as unclaimed allocations: {len(self.unclaimed)}"
            )
            out += [f"  {ip} in {net}" + (f" (group {g})" if g else "") for net, ip, g in self.unclaimed]
        if self.changes:
            out.append(f"stored differently by contivpy: {len(self.changes)}")
            out += [f"  {c}" for c in self.changes]
        if self.warnings:
            out.append(f"warnings: {len(self.warnings)}")
            out += [f"  {w}" for w in self.warnings]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sourceKeys": self.source_keys,
            "counts": dict(sorted(self.counts.items())),
            "skippedVolatile": self.skipped_volatile,
            "unknown": self.unknown,
            "problems": [{"key": f.key, "problem": f.problem, "repair": f.repair} for f in self.problems],
            "repaired": self.repaired,
            "unclaimed": [{"network": n, "address": ip, "group": g} for n, ip, g in self.unclaimed],
            "changes": self.changes,
            "warnings": self.warnings,
            "refused": self.refused,
        }


@dataclass
class Plan:
    target: dict[str, str]
    report: Report


def _dumps(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"))


def _loads_obj(text: str) -> dict | None:
    try:
        v = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return v if isinstance(v, dict) else None


def classify(key: str) -> str:
    """'volatile' | 'model' | 'copy' | 'state' | 'unknown'."""
    if key.startswith(VOLATILE_PREFIXES):
        return "volatile"
    if key.startswith(keys.OBJ):
        typ, _, name = key[len(keys.OBJ) :].partition("/")
        return "model" if typ in SPECS and name and "/" not in name else "unknown"
    if key in COPY_EXACT:
        return "copy"
    for p in STATE_PREFIXES:
        if key.startswith(p) and len(key) > len(p) and "/" not in key[len(p) :]:
            return "state"
    return "unknown"


class _Conv:
    """One conversion run (the methods share the parsed state)."""

    def __init__(self, src: dict[str, str], repair: bool, now: float, alloc_ttl: float) -> None:
        self.src = src
        self.repair = repair
        self.now = now
        self.alloc_ttl = alloc_ttl
        self.rep = Report(source_keys=len(src), repaired=repair)
        self.out: dict[str, str] = {}
        self.objs: dict[str, dict[str, dict]] = {t: {} for t in SPECS}  # type -> model key -> obj
        self.nets: dict[str, NetworkState] = {}
        self.epgs: dict[str, EndpointGroupState] = {}
        self.eps: dict[str, EndpointState] = {}
        self.svcs: dict[str, ServiceLBState] = {}
        self.dirty: set[str] = set()  # target keys whose parsed record must be re-serialised

    # --- helpers ----------------------------------------------------------------------------
    def problem(self, key: str, text: str, repair: str = "") -> bool:
        """Record a finding; True when the caller should apply the repair now."""
        self.rep.problems.append(Finding(key, text, repair))
        return bool(repair) and self.repair

    def count(self, kind: str, n: int = 1) -> None:
        self.rep.counts[kind] = self.rep.counts.get(kind, 0) + n

    # --- pass 1: classify and parse -----------------------------------------------------------
    def load(self) -> None:
        for key in sorted(self.src):
            value = self.src[key]
            kind = classify(key)
            if kind == "volatile":
                self.rep.skipped_volatile.append(key)
                continue
            if kind == "unknown":
                self.rep.unknown.append(key)
                continue
            if not isinstance(value, str):
                self.problem(key, "value is not a string")
                continue
            obj = _loads_obj(value)
            if obj is None:
                self.problem(key, "value is not a JSON object")
                continue
            if kind == "model":
                self._load_model(key, obj)
            elif kind == "copy":
                self.out[key] = value
                self.count("global records")
            else:
                self._load_state(key, value, obj)

    def _load_model(self, key: str, obj: dict) -> None:
        typ, _, name = key[len(keys.OBJ) :].partition("/")
        raw = {k: v for k, v in obj.items() if k not in ("key", "link-sets", "links")}
        try:
            clean = codec.decode(typ, _dumps(raw))
            clean["key"] = obj.get("key", "")
            codec.validate(typ, clean)
        except ContivError as exc:
            self.problem(key, f"fails the model's validation: {exc}")
            return
        if obj.get("key") != name:
            self.problem(key, f"key field {obj.get('key')!r} does not match the key name")
            return
        sets, links = obj.get("link-sets") or {}, obj.get("links") or {}
        if not (
            isinstance(sets, dict)
            and all(
                isinstance(m, dict) and all(isinstance(x, dict) for x in m.values()) for m in sets.values()
            )
            and isinstance(links, dict)
            and all(isinstance(x, dict) for x in links.values())
        ):
            self.problem(key, "link-sets or links are not objects of {type, key} links")
            return
        self.objs[typ][name] = obj
        self.out[key] = self.src[key]
        self.count(f"objects {typ}")

    def _types_ok(self, key: str, cls, obj: dict) -> bool:
        """Every field of a state record present with the JSON type contivpy reads it as."""
        for f in fields(cls):
            name = cls.JSON.get(f.name, f.name)
            if name not in obj or obj[name] is None:
                continue
            v, d = obj[name], f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            ok = (
                (isinstance(d, bool) and isinstance(v, bool))
                or (
                    isinstance(d, int | float)
                    and not isinstance(d, bool)
                    and isinstance(v, int | float)
                    and not isinstance(v, bool)
                )
                or (isinstance(d, str) and isinstance(v, str))
                or (isinstance(d, dict | type(None)) and isinstance(v, dict))
                or (isinstance(d, list) and isinstance(v, list))
            )
            if not ok:
                self.problem(
                    key, f"field {name} has the wrong type ({type(v).__name__.replace('str', 'string')})"
                )
                return False
        return True

    def _readable(self, key: str, *bitmaps: str, net: NetworkState | None = None) -> bool:
        try:
            for b in bitmaps:
                Bitset.decode(b)
            if net is not None:
                ipam.subnet_of(net)
                if net.ipv6SubnetIP:
                    ipaddress.IPv6Network(f"{net.ipv6SubnetIP}/{net.ipv6SubnetLen}", strict=False)
        except (ValueError, ContivError, binascii.Error):
            self.problem(key, "unreadable address bitmap, subnet or range")
            return False
        return True

    def _load_state(self, key: str, value: str, obj: dict) -> None:
        kinds = (
            (keys.NETS, NetworkState),
            (keys.EPGS, EndpointGroupState),
            (keys.EPS, EndpointState),
            (keys.SERVICE_LB, ServiceLBState),
        )
        for prefix, cls in kinds:
            if key.startswith(prefix) and not self._types_ok(key, cls, obj):
                return
        if key.startswith(keys.NETS):
            st = NetworkState.from_dict(obj)
            if st.id != key[len(keys.NETS) :] or not st.subnetIP:
                self.problem(key, "network state id or subnet does not match its key")
                return
            if not self._readable(key, st.ipAllocMap, net=st):
                return
            self.nets[st.id] = st
        elif key.startswith(keys.EPGS):
            g = EndpointGroupState.from_dict(obj)
            if g.id != key[len(keys.EPGS) :]:
                self.problem(key, "group state id does not match its key")
                return
            if not self._readable(key, g.epgIpAllocMap):
                return
            self.epgs[g.id] = g
        elif key.startswith(keys.EPS):
            self.eps[key] = EndpointState.from_dict(obj)
            return  # written after the checks (may move)
        elif key.startswith(keys.SERVICE_LB):
            self.svcs[key] = ServiceLBState.from_dict(obj)
        elif key.startswith((keys.POLICY, keys.POLICY_RULE, keys.PROVIDER)):
            self.count("derived records (rebuilt)")
            return  # rebuilt from the model below
        elif key.startswith(keys.OPER_EPS):
            self.out[key] = value  # converted after the endpoints are known
            return
        self.out[key] = value
        self.count(f"state {key[len(keys.ROOT) :].split('/')[1]}")

    # --- pass 2: links and name references ---------------------------------------------------------
    def check_links(self) -> None:
        for typ, objs in self.objs.items():
            for name, obj in objs.items():
                okey = keys.obj_key(typ, name)
                changed = False
                for set_name, members in list((obj.get("link-sets") or {}).items()):
                    for mkey, link in list((members or {}).items()):
                        ltyp, lkey = (link or {}).get("type", ""), (link or {}).get("key", "")
                        if lkey not in self.objs.get(ltyp, {}):
                            if self.problem(
                                okey,
                                f"link-set {set_name} names missing {ltyp} {lkey or mkey}",
                                "drop the link",
                            ):
                                del members[mkey]
                                changed = True
                for link_name, link in list((obj.get("links") or {}).items()):
                    ltyp, lkey = (link or {}).get("type", ""), (link or {}).get("key", "")
                    if lkey and lkey not in self.objs.get(ltyp, {}):
                        required = link_name in ("Tenant", "Network")
                        if self.problem(
                            okey,
                            f"link {link_name} names missing {ltyp} {lkey}",
                            "" if required else "clear the link",
                        ):
                            obj["links"][link_name] = {}
                            changed = True
                self._check_names(typ, okey, obj)
                if changed:
                    self.out[okey] = codec.dumps(typ, obj)

    def _check_names(self, typ: str, okey: str, obj: dict) -> None:
        tenant = obj.get("tenantName", "")
        refs: list[tuple[str, str]] = []
        if typ not in ("tenant", "global", "Bgp", "aciGw") and tenant:
            refs.append(("tenant", tenant))
        if typ in ("endpointGroup", "serviceLB") and obj.get("networkName"):
            refs.append(("network", f"{tenant}:{obj['networkName']}"))
        if typ == "endpointGroup":
            refs += [("policy", f"{tenant}:{p}") for p in obj.get("policies") or []]
            refs += [("extContractsGroup", f"{tenant}:{p}") for p in obj.get("extContractsGrps") or []]
            if obj.get("netProfile"):
                refs.append(("netprofile", f"{tenant}:{obj['netProfile']}"))
        if typ == "appProfile":
            refs += [("endpointGroup", f"{tenant}:{g}") for g in obj.get("endpointGroups") or []]
        if typ == "rule":
            refs.append(("policy", f"{tenant}:{obj.get('policyName', '')}"))
            for f in ("fromEndpointGroup", "toEndpointGroup"):
                if obj.get(f):
                    refs.append(("endpointGroup", f"{tenant}:{obj[f]}"))
            for f in ("fromNetwork", "toNetwork"):
                if obj.get(f):
                    refs.append(("network", f"{tenant}:{obj[f]}"))
        for rtyp, rkey in refs:
            if rkey not in self.objs[rtyp]:
                self.problem(okey, f"refers to missing {rtyp} {rkey}")

    # --- pass 3: state records vs model objects ------------------------------------------------------
    def check_state_pairs(self) -> None:
        for mkey, obj in self.objs["network"].items():
            nid = keys.network_id(obj["networkName"], obj["tenantName"])
            if nid not in self.nets:
                self.problem(keys.obj_key("network", mkey), f"network has no state record {keys.NETS}{nid}")
        for nid, st in self.nets.items():
            if f"{st.tenant}:{st.networkName}" not in self.objs["network"]:
                self.problem(keys.NETS + nid, "network state without its network object")
        for mkey, obj in self.objs["endpointGroup"].items():
            gid = keys.epg_id(obj["groupName"], obj["tenantName"])
            if gid not in self.epgs:
                self.problem(
                    keys.obj_key("endpointGroup", mkey), f"group has no state record {keys.EPGS}{gid}"
                )
        seen: dict[int, str] = {}
        for gid, g in self.epgs.items():
            if f"{g.tenantName}:{g.groupName}" not in self.objs["endpointGroup"]:
                self.problem(keys.EPGS + gid, "group state without its group object")
            if not 1 <= int(g.endpointGroupId or 0) <= 65535:
                self.problem(keys.EPGS + gid, f"endpoint group id {g.endpointGroupId} outside 1..65535")
            elif g.endpointGroupId in seen:
                self.problem(
                    keys.EPGS + gid,
                    f"endpoint group id {g.endpointGroupId} also used by {seen[g.endpointGroupId]}",
                )
            else:
                seen[g.endpointGroupId] = gid
        for mkey, obj in self.objs["serviceLB"].items():
            sid = f"{obj['serviceName']}:{obj['tenantName']}"
            if keys.SERVICE_LB + sid not in self.svcs:
                self.problem(
                    keys.obj_key("serviceLB", mkey), f"service has no state record {keys.SERVICE_LB}{sid}"
                )
        for skey, svc in self.svcs.items():
            if f"{svc.tenantname}:{svc.servicename}" not in self.objs["serviceLB"]:
                self.problem(skey, "service state without its service object")
        from contivpy.netmaster.hooks.bgp import _state as bgp_state

        for host, obj in self.objs["Bgp"].items():
            put = bgp_state(obj)
            have = _loads_obj(self.out.get(put.key, "")) or {}
            have.pop("id", None)  # the original's records carry an id; contivpy's do not need it
            if have != json.loads(put.value):
                if self.problem(
                    put.key, f"does not match the Bgp object {host}", "rebuild it from the object"
                ):
                    self.out[put.key] = put.value
        for k in [k for k in self.out if k.startswith(keys.BGP)]:
            if k[len(keys.BGP) :] not in self.objs["Bgp"]:
                if self.problem(k, "BGP state without its Bgp object", "drop it"):
                    del self.out[k]

    # --- pass 4: tags --------------------------------------------------------------------------
    def check_tags(self) -> None:
        g = self.objs["global"].get("global")
        if g is None:
            if self.nets:
                self.problem(keys.obj_key("global", "global"), "no global object, but networks exist")
            return
        gkey = keys.obj_key("global", "global")
        vlans, vxlans = g.get("vlans", ""), g.get("vxlans", "")
        try:
            vranges = netaddr.parse_tag_ranges(vlans, "vlan")
            ((xlo, xhi),) = netaddr.parse_tag_ranges(vxlans, "vxlan")
        except (ContivError, ValueError) as exc:
            self.problem(gkey, f"tag ranges: {exc}")
            return
        used_vlan: dict[int, str] = {}
        used_vni: dict[int, str] = {}
        used_local: dict[int, str] = {}
        widen_v: list[int] = []
        widen_x: list[int] = []
        for nid, st in sorted(self.nets.items()):
            nkey = keys.NETS + nid
            if st.pktTagType == "vlan":
                tag, table = st.pktTag, used_vlan
                if not any(lo <= tag <= hi for lo, hi in vranges):
                    if self.problem(
                        nkey,
                        f"vlan {tag} outside the global vlan range {vlans}",
                        "widen the global vlan range",
                    ):
                        widen_v.append(tag)
            elif st.pktTagType == "vxlan":
                tag, table = st.extPktTag, used_vni
                if not xlo <= tag <= xhi:
                    if self.problem(
                        nkey,
                        f"vxlan {tag} outside the global vxlan range {vxlans}",
                        "widen the global vxlan range",
                    ):
                        widen_x.append(tag)
                if st.pktTag in used_local:
                    self.problem(nkey, f"local vlan {st.pktTag} also used by {used_local[st.pktTag]}")
                used_local[st.pktTag] = nid
            else:
                self.problem(nkey, f"unknown encap {st.pktTagType!r}")
                continue
            if tag in table:
                self.problem(nkey, f"{st.pktTagType} {tag} also used by {table[tag]}")
            table[tag] = nid
        if widen_v:
            lo = min([lo for lo, _ in vranges] + widen_v)
            hi = max([hi for _, hi in vranges] + widen_v)
            vlans = f"{lo}-{hi}"
        if widen_x:
            xlo, xhi = min([xlo] + widen_x), max([xhi] + widen_x)
            if xhi - xlo + 1 >= VXLAN_BITS:
                self.problem(gkey, f"widened vxlan range {xlo}-{xhi} too large")
                return
            vxlans = f"{xlo}-{xhi}"
        if widen_v or widen_x:
            g = dict(g, vlans=vlans, vxlans=vxlans)
            self.objs["global"]["global"] = g
            self.out[gkey] = codec.dumps("global", g)
            self.out[keys.STATE_GLOBAL] = _dumps({"id": "", "auto": {"VLANs": vlans, "VXLANs": vxlans}})
            self.rep.changes.append(f"global ranges widened to vlans {vlans}, vxlans {vxlans} (--repair)")
        self._check_tag_maps(vlans, vxlans, used_vlan, used_vni, used_local)

    def _check_tag_maps(self, vlans: str, vxlans: str, used_vlan, used_vni, used_local) -> None:
        cfg = vlan_bitset(vlans)
        free = cfg.copy()
        for v in used_vlan:
            free.clear(v)
        xcfg, start = vxlan_bitsets(vxlans)
        xfree = xcfg.copy()
        for v in used_vni:
            xfree.clear(v - start)
        lcfg = vlan_bitset(LOCAL_VLAN_RANGE)
        lfree = lcfg.copy()
        for v in used_local:
            lfree.clear(v)
        want = {
            keys.STATE_AUTO_VLAN: {"id": "global", "vlans": cfg.encode()},
            keys.OPER_AUTO_VLAN: {"id": "global", "freeVLANs": free.encode()},
            keys.STATE_AUTO_VXLAN: {
                "id": "global",
                "vxlans": xcfg.encode(),
                "LocalVLANs": lcfg.encode(),
                "FreeVXLANsStart": start,
            },
            keys.OPER_AUTO_VXLAN: {
                "id": "global",
                "freeVXLANs": xfree.encode(),
                "freeLocalVLANs": lfree.encode(),
            },
        }
        for k, v in want.items():
            have = _loads_obj(self.out.get(k, "")) or {}
            if any(have.get(f) != x for f, x in v.items() if f != "id"):
                if self.problem(
                    k, "tag bitmap does not match the networks' tags", "rebuild it from the networks"
                ):
                    self.out[k] = _dumps(v)
        self._check_global_records(start)

    def _check_global_records(self, start: int) -> None:
        """``master/config/global``, ``state/global``, ``oper/global``: what contivpy derives from
        the global object (byte-identical to the original's for the recorded state)."""
        from contivpy.netmaster.hooks.global_ import master_config_json, oper_global_json, state_global_json

        g = self.objs["global"]["global"]
        oper = _loads_obj(self.out.get(keys.OPER_GLOBAL, "")) or {}
        default_net = oper.get("defaultNetwork") if isinstance(oper.get("defaultNetwork"), str) else ""
        want = {
            keys.MASTER_CONFIG_GLOBAL: master_config_json(g),
            keys.STATE_GLOBAL: state_global_json(g),
            keys.OPER_GLOBAL: oper_global_json(default_net, start),
        }
        for k, v in want.items():
            if k not in self.out and k == keys.OPER_GLOBAL:
                self.out[k] = v  # contivpy reads it; the original wrote it lazily
                continue
            if _loads_obj(self.out.get(k, "")) != json.loads(v):
                if self.problem(k, "does not match the global object", "rebuild it from the global object"):
                    self.out[k] = v

    # --- pass 5: endpoints, addresses -------------------------------------------------------------
    def _group_of(self, ep: EndpointState, st: NetworkState) -> EndpointGroupState | None:
        if not ep.endpointGroupKey:
            return None
        return self.epgs.get(ep.endpointGroupKey)

    def check_endpoints(self) -> None:
        holders: dict[tuple[str, str], str] = {}
        for key in sorted(self.eps):
            ep = self.eps[key]
            st = self.nets.get(ep.netID)
            if st is None:
                self.problem(key, f"endpoint of missing network {ep.netID}")
                continue
            want_key = keys.ep_state(keys.endpoint_state_id(st.networkName, st.tenant, ep.endpointID))
            if key != want_key:
                if key == keys.ep_state(ep.endpointID) and ep.endpointID.endswith("-native-intf"):
                    self.rep.changes.append(f"{key} moved to {want_key} (endpoint ids are per network)")
                    ep.id = want_key[len(keys.EPS) :]
                    self.dirty.add(want_key)
                else:
                    self.problem(key, f"endpoint key does not match its network and id ({want_key})")
                    continue
            epg = self._group_of(ep, st)
            if ep.endpointGroupKey and (
                epg is None
                or epg.networkName != st.networkName
                or epg.tenantName != st.tenant
                or epg.endpointGroupId != ep.endpointGroupId
            ):
                self.problem(
                    key,
                    f"endpoint group {ep.endpointGroupKey} (id {ep.endpointGroupId}) missing or not of network {ep.netID}",
                )
                continue
            self.out[want_key] = self.src.get(key, "") if want_key == key else ep.to_json()
            self.eps[key] = ep
            self.count("state eps")
            if ep.ipAddress:
                self._check_addr(key, ep, st, epg, holders)
            if ep.ipv6Address:
                self._check_addr6(key, ep, st, holders)

    def _check_addr(self, key, ep, st: NetworkState, epg, holders) -> None:
        ip = ep.ipAddress
        try:
            hid = netaddr.host_id(netaddr.ip_to_int(st.subnetIP), st.subnetLen, ip)
        except ContivError:
            self.problem(key, f"address {ip} outside subnet {st.subnetIP}/{st.subnetLen} of {st.id}")
            return
        if ipam._is_reserved(st, None, hid):
            self.problem(
                key, f"address {ip} is reserved in {st.id} (network, broadcast, gateway or outside the range)"
            )
            return
        other = holders.get((st.id, ip))
        if other:
            self.problem(key, f"address {ip} also held by {other}")
            return
        holders[(st.id, ip)] = key
        pool = epg if epg is not None and epg.ipPool and not ipam._is_reserved(st, epg, hid) else None
        if not ipam.is_used(st, pool, ip):
            where = f"group {pool.groupName}'s pool map" if pool is not None else f"network {st.id}'s map"
            if self.problem(key, f"address {ip} is marked free in {where}", "mark it used"):
                ipam.reserve(st, pool, ip)
                self.dirty.add(keys.NETS + st.id)
                if pool is not None:
                    self.dirty.add(keys.EPGS + pool.id)

    def _check_addr6(self, key, ep, st: NetworkState, holders) -> None:
        ip = ep.ipv6Address
        try:
            ipam.check_endpoint_address_v6(st, ip)
        except ContivError as exc:
            self.problem(key, f"IPv6 address: {exc}")
            return
        other = holders.get((st.id, ip))
        if other:
            self.problem(key, f"address {ip} also held by {other}")
            return
        holders[(st.id, ip)] = key
        if not ipam.is_used_v6(st, ip):
            if self.problem(key, f"IPv6 address {ip} is marked free in network {st.id}", "mark it used"):
                ipam.reserve_v6(st, ip)
                self.dirty.add(keys.NETS + st.id)

    def check_vips(self) -> None:
        for skey, svc in sorted(self.svcs.items()):
            st = self.nets.get(keys.network_id(svc.subnet, svc.tenantname))
            if st is None or not svc.ipaddress:
                continue
            try:
                used = ipam.is_used(st, None, svc.ipaddress)
            except ContivError:
                self.problem(skey, f"service address {svc.ipaddress} outside network {st.id}")
                continue
            if not used and self.problem(
                skey, f"service address {svc.ipaddress} is marked free in network {st.id}", "mark it used"
            ):
                bm = Bitset.decode(st.ipAllocMap)
                bm.set(netaddr.host_id(netaddr.ip_to_int(st.subnetIP), st.subnetLen, svc.ipaddress))
                st.ipAllocMap = bm.encode()
                self.dirty.add(keys.NETS + st.id)

    def unexplained(self) -> None:
        """Used addresses no endpoint, VIP or reservation explains -> allocation records."""
        held: dict[str, set[str]] = {}
        for ep in self.eps.values():
            held.setdefault(ep.netID, set()).add(ep.ipAddress)
        for svc in self.svcs.values():
            held.setdefault(keys.network_id(svc.subnet, svc.tenantname), set()).add(svc.ipaddress)
        pools: dict[str, list[EndpointGroupState]] = {}
        for g in self.epgs.values():
            if g.ipPool:
                pools.setdefault(keys.network_id(g.networkName, g.tenantName), []).append(g)
        for nid, st in sorted(self.nets.items()):
            sn = ipam.subnet_of(st)
            try:
                ranges = [netaddr.parse_ip_pool(g.ipPool, sn) for g in pools.get(nid, [])]
            except ContivError as exc:
                self.problem(keys.NETS + nid, f"group ip-pool: {exc}")
                continue
            h = held.get(nid, set())
            maps: list[tuple[EndpointGroupState | None, Bitset]] = [(None, Bitset.decode(st.ipAllocMap))]
            maps += [(g, Bitset.decode(g.epgIpAllocMap)) for g in pools.get(nid, [])]
            for g, bm in maps:
                for r_lo, r_hi in [] if g is not None else ranges:
                    if bm.next_clear(r_lo) is not None and bm.next_clear(r_lo) <= r_hi:
                        if self.problem(
                            keys.NETS + nid,
                            "a group ip-pool is not fully marked in the network map",
                            "mark it",
                        ):
                            bm.set_range(r_lo, r_hi)
                            st.ipAllocMap = bm.encode()
                            self.dirty.add(keys.NETS + nid)
                for hid in bm.iter_set():
                    if hid >= sn.size or ipam._is_reserved(st, g, hid):
                        continue
                    if g is None and any(lo <= hid <= hi for lo, hi in ranges):
                        continue
                    ip = netaddr.host_ip(sn.subnet_ip, hid)
                    if ip in h:
                        continue
                    group = g.groupName if g is not None else ""
                    rec = AddrAllocRecord(
                        networkId=nid,
                        address=ip,
                        group=group,
                        created=self.now,
                        expires=self.now + self.alloc_ttl,
                    )
                    self.out[keys.addr_alloc(nid, ip)] = rec.to_json()
                    self.rep.unclaimed.append((nid, ip, group))
                    self.count("added addrAlloc records")

    # --- pass 6: contivpy additions and derived state ----------------------------------------------
    def add_epg_ids(self) -> None:
        for gid, g in sorted(self.epgs.items()):
            if 1 <= int(g.endpointGroupId or 0) <= 65535:
                self.out[f"{EPG_ID_PREFIX}{g.endpointGroupId}"] = gid
                self.count("added epgid records")

    def oper_eps(self) -> None:
        by_id = {keys.ep_state(ep.id): ep for ep in self.eps.values()}
        for key in [k for k in self.out if k.startswith(keys.OPER_EPS)]:
            obj = _loads_obj(self.out[key]) or {}
            ep = by_id.get(keys.EPS + key[len(keys.OPER_EPS) :])
            if ep is None:
                if self.problem(key, "oper record of an endpoint that does not exist", "drop it"):
                    del self.out[key]
                continue
            obj.setdefault("endpointGroupId", ep.endpointGroupId)
            obj.setdefault("endpointGroupKey", ep.endpointGroupKey)
            self.out[key] = _dumps(obj)
            self.count("oper eps")

    def service_providers(self) -> None:
        cands: dict[str, list[ProviderCandidate]] = {}
        for ep in sorted(self.eps.values(), key=lambda e: e.id):
            if not ep.labels:
                continue
            st = self.nets.get(ep.netID)
            if st is None:
                continue
            c = ProviderCandidate(
                EpIDKey=ep.id,
                IPAddress=ep.ipAddress,
                ContainerID=ep.containerId,
                Container=ep.epCommonName,
                Tenant=st.tenant,
                Network=st.networkName,
                Labels=dict(ep.labels),
            )
            cands.setdefault(st.tenant, []).append(c)
            self.out[keys.svc_provider(st.tenant, ep.id)] = c.to_json()
            self.count("added svcProvider candidates")
        tenants = set(cands) | {s.tenantname for s in self.svcs.values()}
        for t in sorted(tenants):
            self.out[keys.svc_provider_gen(t)] = ProviderGeneration(tenant=t, generation=1).to_json()
        for skey, svc in sorted(self.svcs.items()):
            # The original's provider lists are kept (the running services keep their backends),
            # in contivpy's entry format; providers contivpy's rule would not match are reported.
            want = providers.match_all(svc, cands.get(svc.tenantname, []))
            kept = {}
            for ekey, entry in sorted(svc.providers.items()):
                labels = entry.get("Labels") if isinstance(entry, dict) else None
                if (
                    not isinstance(entry, dict)
                    or not all(
                        isinstance(entry.get(f, ""), str)
                        for f in ("EpIDKey", "IPAddress", "ContainerID", "Container", "Tenant", "Network")
                    )
                    or not (
                        labels is None
                        or (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values()))
                    )
                ):
                    self.problem(skey, f"provider entry {ekey} is malformed", "drop it")
                    continue
                kept[ekey] = ProviderCandidate.from_dict(entry).to_dict()
                if ekey not in want:
                    self.rep.changes.append(
                        f"service {svc.id}: provider {entry.get('IPAddress', '')} kept as the original had it; "
                        f"contivpy would not match it (not on network {svc.subnet}), an update of the service drops it"
                    )
            for ekey in sorted(set(want) - set(kept)):
                self.rep.changes.append(
                    f"service {svc.id}: provider {want[ekey]['IPAddress']} added (matching labels)"
                )
                kept[ekey] = want[ekey]
            svc.providers = kept
            self.out[skey] = svc.to_json()
            prov = providers.provider_state(svc).to_json()
            old = _loads_obj(self.src.get(keys.PROVIDER + svc.id, "")) or {}
            if sorted(old.get("Providers") or []) != sorted(json.loads(prov)["Providers"]):
                self.rep.changes.append(
                    f"{keys.PROVIDER}{svc.id}: provider list rebuilt from the service's providers"
                )
            self.out[keys.PROVIDER + svc.id] = prov

    def policy_state(self) -> None:
        """EPG-policy state computed by contivpy's follow-up code from the converted model."""
        ops = _run(_policy_ops(self.out))
        before = {k: v for k, v in self.src.items() if k.startswith((keys.POLICY, keys.POLICY_RULE))}
        after = {op_key: val for op_key, val in ops}
        same_rules = {k for k, v in after.items() if k.startswith(keys.POLICY_RULE) and before.get(k) == v}
        diff_rules = sorted(
            k for k in set(after) | set(before) if k.startswith(keys.POLICY_RULE) and k not in same_rules
        )
        for k in diff_rules:
            if k in after and k in before and _without_additions(after[k]) == _without_additions(before[k]):
                self.rep.changes.append(
                    f"{k}: IcmpType request added (a deny icmp matches ICMP requests only)"
                )
                continue
            self.problem(
                k, "ofnet rule differs from the one contivpy derives from the model", "use contivpy's"
            )
        n_pol = sum(1 for k in after if k.startswith(keys.POLICY))
        if any(before.get(k) != v for k, v in after.items() if k.startswith(keys.POLICY)):
            self.rep.changes.append(
                f"state/policy: {n_pol} group-policy records rebuilt from the model (embedded rule copies "
                "are the current rule objects)"
            )
        self.out.update(after)

    def finish(self) -> None:
        for key in sorted(self.dirty):
            if key.startswith(keys.NETS):
                self.out[key] = self.nets[key[len(keys.NETS) :]].to_json()
            elif key.startswith(keys.EPGS):
                self.out[key] = self.epgs[key[len(keys.EPGS) :]].to_json()
            elif key.startswith(keys.EPS):
                ep = next(e for e in self.eps.values() if keys.ep_state(e.id) == key)
                self.out[key] = ep.to_json()
        lock = self.src.get(keys.LEADER_LOCK)
        if lock:
            self.rep.warnings.append(
                f"the source's leader lock was held by {lock}: stop every original netmaster before importing"
            )


async def _policy_ops(model: dict[str, str]) -> list[tuple[str, str]]:
    from contivpy.common.kv.base import Put
    from contivpy.common.kv.memory import MemoryKV
    from contivpy.netmaster.hooks import policy_state as ps

    kv = MemoryKV()
    try:
        wanted = [k for k in model if k.startswith((keys.OBJ, keys.EPGS, keys.NETS))]
        for i in range(0, len(wanted), 1000):
            await kv.txn([], [Put(k, model[k]) for k in wanted[i : i + 1000]])
        out: list[tuple[str, str]] = []
        for pkey in sorted(k for k in model if k.startswith(keys.obj_prefix("policy"))):
            pol = json.loads(model[pkey])
            for op in await ps.policy_ops(kv, pol["tenantName"], pol["policyName"]):
                if isinstance(op, Put):
                    out.append((op.key, op.value))
        return out
    finally:
        await kv.close()


def _run(coro):
    """Run a coroutine to completion from sync code, inside or outside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def convert(
    src: dict[str, str], *, repair: bool = False, now: float = 0.0, alloc_ttl: float = DEFAULT_ALLOC_TTL
) -> Plan:
    """The whole conversion. ``src`` maps every v2 leaf key under /contiv.io to its value.

    Without ``repair`` the target holds the source as it is (plus additions) and every problem
    refuses the import; with ``repair`` repairable problems are fixed in the target."""
    if not any(k.startswith(keys.ROOT) for k in src):
        raise MigrateError(
            "the source holds no /contiv.io keys: it is not an original Contiv cluster's store"
        )
    c = _Conv(src, repair, now, alloc_ttl)
    c.load()
    c.check_links()
    c.check_state_pairs()
    c.check_tags()
    c.check_endpoints()
    c.check_vips()
    c.unexplained()
    c.add_epg_ids()
    c.oper_eps()
    c.service_providers()
    c.finish()
    if not c.rep.unknown and not any(not f.repair for f in c.rep.problems):
        c.policy_state()
    # never write keys the original had under a different meaning
    for k in list(c.out):
        if k.startswith(VOLATILE_PREFIXES):
            del c.out[k]
    return Plan(dict(sorted(c.out.items())), c.rep)


def v6_host(addr: str, subnet: str) -> str:
    net6 = ipaddress.IPv6Network(subnet, strict=False)
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(addr)) - int(net6.network_address)))


__all__ = ["convert", "classify", "Plan", "Report", "Finding", "MigrateError", "INTENT_KEY", "EPG_ID_PREFIX"]
