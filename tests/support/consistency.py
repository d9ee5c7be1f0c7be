"""Whole-store consistency checker: reads ALL of ``/contiv.io`` and lists every broken invariant.

Used after every fuzz run (tests/fuzz/) and after normal scenarios (tests/integration/
test_consistency_checker.py). It is written from the documented layout (docs/architecture.md,
netmaster/endpoints.py, netmaster/ipam.py, netmaster/tags.py), with its own arithmetic on
``ipaddress`` ints, NOT by calling the IPAM code it checks.

Checks (each problem is one line of text; ``[]`` means consistent)
- model objects (``/contiv.io/obj/modeldb/<type>/<key>``): JSON objects whose ``key`` is their etcd
  key; every ``links.<Name>`` and every ``link-sets.<Name>`` member ``{type,key}`` names an object
  that exists; the relations netmaster keeps in both directions agree (network/EPG/policy/
  netprofile/app-profile/serviceLB <-> tenant, EPG <-> network, EPG <-> netprofile, rule <->
  policy, EPG <-> policy, rule -> EPG ``MatchRules``, EPG -> app profile).
- state <-> objects: every network / EPG / serviceLB object has its state record and every state
  record its object; an endpoint's network and group state exist; ``epCount`` of a network and a
  group equals its endpoints; a group state's DSCP / bandwidth / burst are its netprofile's.
- IPAM, per network: every set bit of ``ipAllocMap`` and of each pool group's ``epgIpAllocMap`` is
  explained by EXACTLY ONE of
    reserved (network, broadcast, gateway, outside the subnet's range; in the network map every
    address of a group ip-pool; in a group map everything outside its pool),
    an endpoint of the network holding the address (in its pool group's map when its group has a
    pool, else in the network map),
    a service VIP (network map),
    an allocation record ``/contiv.io/state/addrAlloc/<net>.<tenant>/<ip>`` (in the map of its
    ``group`` when that is a group of the network whose pool holds the address, else the network
    map);
  every clear bit is explained by nothing (a record whose bit is clear, or reserved in its map, is
  *stale*: allowed, it explains nothing); no bit lies beyond the subnet; ``epAddrCount`` = set bits that are not
  reserved. IPv6: ``ipv6AllocMap`` = gateway + the endpoints' IPv6 host ids.
- tags: the VLANs in use (``auto-vlan`` state ``vlans`` minus oper ``freeVLANs``) are exactly the
  ``pktTag`` of the vlan networks (plus the groups' tags in ACI mode); the VNIs in use are exactly
  the ``extPktTag`` of the vxlan networks and the local VLANs in use their ``pktTag``; no tag is
  held twice; free bits lie inside the configured ones.
- address-holder index (``/contiv.io/index/addr/<net id>/v4|v6/<address>/<endpoint state id>`` =
  ``<endpoint state id>``, docs/decisions.md): every entry is one an endpoint state calls for (its
  ``netID`` and ``ipAddress`` / ``ipv6Address``, stored under that id); once ``.../built`` exists,
  every endpoint state has its entries.
- EPG ids: each ``/contiv.io/master/epgid/<id>`` names an existing group whose id it is, and each
  group's id has its reservation.
- pending follow-up intents (``/contiv.io/master/pending/``): listed as problems only by
  ``check(..., settled=True)`` (the default): after a request returns there should be none.

Loaders: ``load_etcdctl(etcdctl)`` (any callable running ``etcdctl`` and returning stdout: the
fixtures' ``etcd_server.etcdctl`` or ``Testbed.etcdctl``) and ``await load_kv(kv)`` (a KVStore).
``assert_consistent(snapshot)`` raises AssertionError listing every problem.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Callable
from typing import Any

ROOT = "/contiv.io/"
OBJ = ROOT + "obj/modeldb/"
LINKS = ROOT + "obj/links/"
NETS = ROOT + "state/nets/"
EPS = ROOT + "state/eps/"
EPGS = ROOT + "state/endpointGroups/"
SVC = ROOT + "state/serviceLB/"
ALLOC = ROOT + "state/addrAlloc/"
EPGID = ROOT + "master/epgid/"
PENDING = ROOT + "master/pending/"
ADDR_INDEX = ROOT + "index/addr/"
AUTO_VLAN = (ROOT + "state/auto-vlan/global", ROOT + "oper/auto-vlan/global")
AUTO_VXLAN = (ROOT + "state/auto-vxlan/global", ROOT + "oper/auto-vxlan/global")

Snapshot = dict[str, str]


# --- loading ------------------------------------------------------------------------------------


def load_etcdctl(etcdctl: Callable[..., str]) -> Snapshot:
    """Every key under /contiv.io via ``etcdctl get --prefix -w json`` (one consistent revision)."""
    out = json.loads(etcdctl("get", "--prefix", ROOT, "-w", "json"))
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
        for kv in out.get("kvs") or []
    }


async def load_kv(kv: Any) -> Snapshot:
    items, _ = await kv.get_prefix(ROOT)
    return {i.key: i.value for i in items}


# --- Go bitsets (Go JSON: url-safe base64 of a big-endian uint64 length + big-endian words) -------


def decode_bits(text: str | None) -> int:
    """The set bits of an encoded bitset as a Python int (bit i = offset i)."""
    if not text:
        return 0
    raw = base64.urlsafe_b64decode(text)
    length = int.from_bytes(raw[:8], "big")
    words = raw[8 : 8 + 8 * ((length + 63) // 64)]
    bits = 0
    for i in range(len(words) // 8):
        bits |= int.from_bytes(words[8 * i : 8 * i + 8], "big") << (64 * i)
    return bits


def bit_list(bits: int) -> list[int]:
    """Offsets of the set bits, lowest first."""
    text = bin(bits)[2:][::-1]
    return [i for i, c in enumerate(text) if c == "1"]


# --- the checker ----------------------------------------------------------------------------------


class _Problems(list):
    def add(self, msg: str) -> None:
        self.append(msg)


def _json(snap: Snapshot, key: str, problems: _Problems) -> Any:
    try:
        return json.loads(snap[key])
    except (ValueError, KeyError):
        problems.add(f"{key}: not JSON")
        return None


def _by_prefix(snap: Snapshot, prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: v for k, v in snap.items() if k.startswith(prefix)}


# (object type, link name, target type, reverse link-set on the target or "")
_LINK_RELATIONS = [
    ("network", "Tenant", "tenant", "Networks"),
    ("endpointGroup", "Tenant", "tenant", "EndpointGroups"),
    ("endpointGroup", "Network", "network", "EndpointGroups"),
    ("endpointGroup", "NetProfile", "netprofile", "EndpointGroups"),
    ("endpointGroup", "AppProfile", "appProfile", "EndpointGroups"),
    ("policy", "Tenant", "tenant", "Policies"),
    ("netprofile", "Tenant", "tenant", "NetProfiles"),
    ("appProfile", "Tenant", "tenant", "AppProfiles"),
    ("serviceLB", "Tenant", "tenant", "Servicelbs"),
    ("serviceLB", "Network", "network", "Servicelbs"),
    ("rule", "MatchEndpointGroup", "endpointGroup", "MatchRules"),
]
# Link sets netmaster derives on read instead of storing (a tenant's members: docs/decisions.md):
# the stored record must not hold them, and there is no stored back-reference to compare.
_DERIVED = {
    ("tenant", "Networks"), ("tenant", "EndpointGroups"), ("tenant", "Policies"),
    ("tenant", "NetProfiles"), ("tenant", "AppProfiles"), ("tenant", "Servicelbs"),
}  # fmt: skip
# (object type, link-set, target type, link-set on the target pointing back)
_SET_RELATIONS = [
    ("endpointGroup", "Policies", "policy", "EndpointGroups"),
    ("rule", "Policies", "policy", "Rules"),
]


def _objects(snap: Snapshot, problems: _Problems) -> dict[tuple[str, str], dict]:
    objs: dict[tuple[str, str], dict] = {}
    for rest, raw in _by_prefix(snap, OBJ).items():
        otype, _, key = rest.partition("/")
        try:
            obj = json.loads(raw)
        except ValueError:
            problems.add(f"object {otype}/{key}: not JSON")
            continue
        if not isinstance(obj, dict):
            problems.add(f"object {otype}/{key}: not a JSON object")
            continue
        if obj.get("key") != key:
            problems.add(f"object {otype}/{key}: its key field is {obj.get('key')!r}")
        objs[(otype, key)] = obj
    # indexed link sets (a network's groups, a policy's rules, ...) are one key per member under
    # /contiv.io/obj/links/<owner type>/<owner key>/<set>/<member key> = <member type>: fold them
    # into their owner's link-sets as netmaster does on read
    for rest, mtype in _by_prefix(snap, LINKS).items():
        parts = rest.split("/")
        if len(parts) != 4 or not all(parts):
            problems.add(f"link key {rest}: malformed")
            continue
        otype, okey, sname, mkey = parts
        owner = objs.get((otype, okey))
        if owner is None:
            problems.add(f"link key {rest}: owner {otype}/{okey} does not exist")
            continue
        sets = owner.setdefault("link-sets", {})
        if not isinstance(sets, dict):
            continue
        members = sets.setdefault(sname, {})
        if mkey in members:
            problems.add(f"link key {rest}: {otype}/{okey} also stores the member in link-sets.{sname}")
        members[mkey] = {"type": mtype, "key": mkey}
    return objs


def _link_target(ref: Any) -> tuple[str, str] | None:
    if not isinstance(ref, dict) or not ref:
        return None
    return str(ref.get("type", "")), str(ref.get("key", ""))


def check_links(snap: Snapshot, problems: _Problems) -> dict[tuple[str, str], dict]:
    objs = _objects(snap, problems)
    for (otype, key), obj in sorted(objs.items()):
        for name, ref in sorted((obj.get("links") or {}).items()):
            tgt = _link_target(ref)
            if tgt is not None and tgt not in objs:
                problems.add(f"object {otype}/{key}: links.{name} -> {tgt[0]}/{tgt[1]} does not exist")
        for name, members in sorted((obj.get("link-sets") or {}).items()):
            for mkey, ref in sorted((members or {}).items()):
                tgt = _link_target(ref)
                if tgt is None or tgt[1] != mkey:
                    problems.add(f"object {otype}/{key}: link-sets.{name}[{mkey}] is malformed: {ref!r}")
                elif tgt not in objs:
                    problems.add(
                        f"object {otype}/{key}: link-sets.{name} -> {tgt[0]}/{tgt[1]} does not exist"
                    )
    for (otype, key), obj in sorted(objs.items()):
        for name in sorted(obj.get("link-sets") or {}):
            if (otype, name) in _DERIVED:
                problems.add(f"object {otype}/{key}: stores the derived link-sets.{name}")
    # both directions of the relations netmaster maintains
    for otype, link, ttype, rset in _LINK_RELATIONS:
        if (ttype, rset) in _DERIVED:
            continue
        for (t, key), obj in objs.items():
            if t != otype:
                continue
            tgt = _link_target((obj.get("links") or {}).get(link))
            if tgt is None or tgt not in objs:
                continue
            back = (objs[tgt].get("link-sets") or {}).get(rset) or {}
            if key not in back:
                problems.add(f"object {otype}/{key}: links.{link} -> {tgt[1]} but {ttype}/{tgt[1]} "
                             f"has no link-sets.{rset}[{key}]")  # fmt: skip
        for (t, tkey), target in objs.items():
            if t != ttype:
                continue
            for mkey in (target.get("link-sets") or {}).get(rset) or {}:
                src = objs.get((otype, mkey))
                if src is None:
                    continue  # (reported above as unresolved)
                tgt = _link_target((src.get("links") or {}).get(link))
                if tgt != (ttype, tkey):
                    problems.add(f"object {ttype}/{tkey}: link-sets.{rset}[{mkey}] but {otype}/{mkey} "
                                 f"has links.{link} = {tgt}")  # fmt: skip
    for otype, sname, ttype, rset in _SET_RELATIONS:
        for (t, key), obj in objs.items():
            if t != otype:
                continue
            for mkey in (obj.get("link-sets") or {}).get(sname) or {}:
                target = objs.get((ttype, mkey))
                if target is not None and key not in ((target.get("link-sets") or {}).get(rset) or {}):
                    problems.add(f"object {otype}/{key}: link-sets.{sname}[{mkey}] but {ttype}/{mkey} "
                                 f"has no link-sets.{rset}[{key}]")  # fmt: skip
        for (t, tkey), target in objs.items():
            if t != ttype:
                continue
            for mkey in (target.get("link-sets") or {}).get(rset) or {}:
                src = objs.get((otype, mkey))
                if src is not None and tkey not in ((src.get("link-sets") or {}).get(sname) or {}):
                    problems.add(f"object {ttype}/{tkey}: link-sets.{rset}[{mkey}] but {otype}/{mkey} "
                                 f"has no link-sets.{sname}[{tkey}]")  # fmt: skip
    # a group's policies field and its Policies link-set agree
    for (t, key), obj in objs.items():
        if t == "endpointGroup":
            tenant = obj.get("tenantName", "")
            want = {f"{tenant}:{p}" for p in obj.get("policies") or []}
            have = set((obj.get("link-sets") or {}).get("Policies") or {})
            if want != have:
                problems.add(f"object endpointGroup/{key}: policies {sorted(want)} but link-sets.Policies "
                             f"{sorted(have)}")  # fmt: skip
    return objs


def _net_geometry(st: dict) -> tuple[int, int, int, int]:
    """(base int, size, first usable offset of the range, last offset of the range)."""
    base = int(ipaddress.IPv4Address(st["subnetIP"]))
    size = 1 << (32 - int(st["subnetLen"]))
    lo_s, _, hi_s = (st.get("ipAddrRange") or "").partition("-")
    lo = int(ipaddress.IPv4Address(lo_s)) - base if lo_s else 1
    hi = int(ipaddress.IPv4Address(hi_s)) - base if hi_s else size - 2
    return base, size, lo, hi


def _pool_offsets(pool: str, base: int) -> tuple[int, int]:
    a, _, b = pool.partition("-")
    lo = int(ipaddress.IPv4Address(a)) - base
    hi = (int(ipaddress.IPv4Address(b)) - base) if b else lo
    return lo, hi


def check_ipam(snap: Snapshot, objs: dict[tuple[str, str], dict], problems: _Problems) -> None:
    nets = {k: _json(snap, NETS + k, problems) for k in _by_prefix(snap, NETS)}
    epgs = {k: _json(snap, EPGS + k, problems) for k in _by_prefix(snap, EPGS)}
    eps = {k: _json(snap, EPS + k, problems) for k in _by_prefix(snap, EPS)}
    svcs = {k: _json(snap, SVC + k, problems) for k in _by_prefix(snap, SVC)}
    recs: dict[str, dict[str, dict]] = {}
    for rest, raw in _by_prefix(snap, ALLOC).items():
        net_id, _, ip = rest.rpartition("/")
        try:
            recs.setdefault(net_id, {})[ip] = json.loads(raw)
        except ValueError:
            problems.add(f"allocation record {rest}: not JSON")

    # objects <-> state records
    for (t, key), obj in objs.items():
        tenant = obj.get("tenantName", "")
        if t == "network" and f"{obj.get('networkName')}.{tenant}" not in nets:
            problems.add(f"network {key}: no state record {obj.get('networkName')}.{tenant}")
        if t == "endpointGroup" and f"{obj.get('groupName')}:{tenant}" not in epgs:
            problems.add(f"endpointGroup {key}: no state record {obj.get('groupName')}:{tenant}")
        if t == "serviceLB" and f"{obj.get('serviceName')}:{tenant}" not in svcs:
            problems.add(f"serviceLB {key}: no state record {obj.get('serviceName')}:{tenant}")
    for (t, _key), obj in objs.items():  # a group's QoS state follows its netprofile
        g = epgs.get(f"{obj.get('groupName')}:{obj.get('tenantName')}") if t == "endpointGroup" else None
        if g is None:
            continue
        prof = (
            objs.get(("netprofile", f"{obj.get('tenantName')}:{obj['netProfile']}"))
            if obj.get("netProfile")
            else {}
        )
        want = ((prof or {}).get("DSCP", 0), (prof or {}).get("bandwidth", ""), (prof or {}).get("burst", 0))
        have = (g.get("DSCP", 0), g.get("Bandwidth", ""), g.get("Burst", 0))
        if want != have:
            problems.add(
                f"group state {g.get('id')}: DSCP/bandwidth/burst {have} but its netprofile says {want}"
            )
    for nid, st in nets.items():
        if st and ("network", f"{st.get('tenant')}:{st.get('networkName')}") not in objs:
            problems.add(f"network state {nid}: no network object {st.get('tenant')}:{st.get('networkName')}")
    for gid, g in epgs.items():
        if g and ("endpointGroup", f"{g.get('tenantName')}:{g.get('groupName')}") not in objs:
            problems.add(f"group state {gid}: no endpointGroup object")
    for sid, s in svcs.items():
        if s and ("serviceLB", f"{s.get('tenantname')}:{s.get('servicename')}") not in objs:
            problems.add(f"serviceLB state {sid}: no serviceLB object")

    # endpoints: their network and group exist; counts
    ep_count: dict[str, int] = {}
    grp_count: dict[str, int] = {}
    for eid, ep in eps.items():
        if not ep:
            continue
        if ep.get("id") != eid:
            problems.add(f"endpoint {eid}: id field {ep.get('id')!r}")
        nid = ep.get("netID", "")
        if nid not in nets:
            problems.add(f"endpoint {eid}: network state {nid} does not exist")
        if not eid.startswith(nid + "-"):
            problems.add(f"endpoint {eid}: key is not under its network {nid}")
        ep_count[nid] = ep_count.get(nid, 0) + 1
        gk = ep.get("endpointGroupKey", "")
        if gk:
            g = epgs.get(gk)
            if g is None:
                problems.add(f"endpoint {eid}: group state {gk} does not exist")
            elif f"{g.get('networkName')}.{g.get('tenantName')}" != nid:
                problems.add(f"endpoint {eid}: group {gk} belongs to network "
                             f"{g.get('networkName')}.{g.get('tenantName')}, endpoint to {nid}")  # fmt: skip
            grp_count[gk] = grp_count.get(gk, 0) + 1
    for nid, st in nets.items():
        if st and int(st.get("epCount") or 0) != ep_count.get(nid, 0):
            problems.add(f"network {nid}: epCount {st.get('epCount')} but {ep_count.get(nid, 0)} endpoints")
    for gid, g in epgs.items():
        if g and int(g.get("epCount") or 0) != grp_count.get(gid, 0):
            problems.add(f"group {gid}: epCount {g.get('epCount')} but {grp_count.get(gid, 0)} endpoints")

    for nid, st in sorted(nets.items()):
        if st:
            _check_network(nid, st, epgs, eps, svcs, recs.get(nid, {}), problems)
    for nid in recs:
        if nid not in nets:
            problems.add(f"allocation records of {nid}: network state does not exist")


def _check_network(nid, st, epgs, eps, svcs, recs, problems: _Problems) -> None:
    try:
        base, size, rlo, rhi = _net_geometry(st)
    except (KeyError, ValueError, TypeError) as exc:
        problems.add(f"network {nid}: unreadable geometry ({exc!r})")
        return
    tenant, name = st.get("tenant", ""), st.get("networkName", "")

    def off(ip: str) -> int | None:
        try:
            o = int(ipaddress.IPv4Address(ip)) - base
        except ValueError:
            return None
        return o if 0 <= o < size else None

    def span(lo: int, hi: int) -> int:  # mask of offsets lo..hi
        return ((1 << (hi - lo + 1)) - 1) << lo if hi >= lo else 0

    full = span(0, size - 1)
    pools = {
        g["groupName"]: g
        for g in epgs.values()
        if g and g.get("IPPool") and (g.get("networkName"), g.get("tenantName")) == (name, tenant)
    }
    maps: dict[str, int] = {"": decode_bits(st.get("ipAllocMap"))}
    reserved: dict[str, int] = {"": 1 | 1 << (size - 1) | span(0, rlo - 1) | span(rhi + 1, size - 1)}
    if st.get("gateway"):
        gw = off(st["gateway"])
        if gw is None:
            problems.add(f"network {nid}: gateway {st['gateway']} outside the subnet")
        else:
            reserved[""] |= 1 << gw
    pool_masks: dict[str, int] = {}
    for gname, g in sorted(pools.items()):
        try:
            plo, phi = _pool_offsets(g["IPPool"], base)
        except ValueError:
            problems.add(f"group {gname}:{tenant}: unreadable ipPool {g['IPPool']!r}")
            continue
        pool = span(plo, phi)
        if pool & reserved[""]:
            problems.add(f"network {nid}: pool {g['IPPool']} of group {gname} overlaps "
                         f"{bit_list(pool & reserved[''])[:3]} (reserved or another pool)")  # fmt: skip
        pool_masks[gname] = pool
        reserved[""] |= pool
        maps[gname] = decode_bits(g.get("epgIpAllocMap"))
        reserved[gname] = full & ~pool

    why: dict[str, dict[int, list[str]]] = {m: {} for m in maps}
    for eid, ep in eps.items():
        if not ep or ep.get("netID") != nid or not ep.get("ipAddress"):
            continue
        o = off(ep["ipAddress"])
        if o is None:
            problems.add(f"endpoint {eid}: address {ep['ipAddress']} outside network {nid}")
            continue
        grp = (ep.get("endpointGroupKey") or "").rpartition(":")[0]
        m = grp if grp in maps else ""
        why[m].setdefault(o, []).append(f"endpoint {eid}")
    for sid, s in svcs.items():
        if not s or (s.get("tenantname"), s.get("subnet")) != (tenant, name) or not s.get("ipaddress"):
            continue
        o = off(s["ipaddress"])
        if o is None:
            problems.add(f"service {sid}: VIP {s['ipaddress']} outside network {nid}")
            continue
        why[""].setdefault(o, []).append(f"service VIP {sid}")
    for ip, rec in recs.items():
        o = off(ip)
        if o is None:
            problems.add(f"allocation record {nid}/{ip}: address outside the network")
            continue
        m = rec.get("group") if rec.get("group") in maps else ""
        if m and not pool_masks.get(m, 0) >> o & 1:
            m = ""  # its group now has another pool: the address is in the network map
        if maps[m] >> o & 1 and not reserved[m] >> o & 1:  # else stale: it explains nothing
            why[m].setdefault(o, []).append(f"allocation record {ip}")

    used = 0
    for m, bits in maps.items():
        label = f"network {nid}" + (f" pool of group {m}" if m else "")

        def ip_of(o: int) -> str:
            return str(ipaddress.IPv4Address(base + o))

        if bits >> size:
            extra = [size + o for o in bit_list(bits >> size)[:5]]
            problems.add(f"{label}: bits set beyond the subnet (offsets {extra})")
        explained = 0
        for o, reasons in sorted(why[m].items()):
            explained |= 1 << o
            if reserved[m] >> o & 1:
                problems.add(f"{label}: reserved address {ip_of(o)} held by {', '.join(reasons)}")
            elif not bits >> o & 1:
                problems.add(f"{label}: address {ip_of(o)} is clear but held by {', '.join(reasons)}")
            elif len(reasons) > 1:
                problems.add(f"{label}: address {ip_of(o)} held twice: {', '.join(reasons)}")
        for o in bit_list(bits & full & ~reserved[m] & ~explained)[:20]:
            problems.add(
                f"{label}: ipAllocMap extra bit {ip_of(o)} (no endpoint, VIP, record or reservation)"
            )
        for o in bit_list(reserved[m] & ~bits)[:20]:
            problems.add(f"{label}: reserved address {ip_of(o)} is not marked used")
        used += (bits & full & ~reserved[m]).bit_count()
    if int(st.get("epAddrCount") or 0) != used:
        problems.add(f"network {nid}: epAddrCount {st.get('epAddrCount')} but {used} addresses in use")

    # IPv6: gateway + endpoints
    if st.get("ipv6SubnetIP"):
        try:
            net6 = ipaddress.IPv6Network(f"{st['ipv6SubnetIP']}/{st['ipv6SubnetLen']}", strict=False)
        except ValueError:
            problems.add(f"network {nid}: unreadable IPv6 subnet")
            return
        want: dict[str, list[str]] = {}

        def hid6(a: str) -> str:
            return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(a)) - int(net6.network_address)))

        if st.get("ipv6Gateway"):
            want.setdefault(hid6(st["ipv6Gateway"]), []).append("gateway")
        for eid, ep in eps.items():
            if ep and ep.get("netID") == nid and ep.get("ipv6Address"):
                want.setdefault(hid6(ep["ipv6Address"]), []).append(f"endpoint {eid}")
        have = set((st.get("ipv6AllocMap") or {}).keys())
        for h in sorted(have - set(want)):
            problems.add(f"network {nid}: ipv6AllocMap extra host id {h}")
        for h, who in sorted(want.items()):
            if h not in have:
                problems.add(f"network {nid}: IPv6 host id {h} held by {who} but not allocated")
            elif len(who) > 1:
                problems.add(f"network {nid}: IPv6 host id {h} held twice: {who}")


def check_tags(snap: Snapshot, objs, problems: _Problems) -> None:
    nets = [json.loads(v) for k, v in snap.items() if k.startswith(NETS)]
    glob = objs.get(("global", "global")) or {}
    aci = glob.get("networkInfraType") == "aci"
    vlan_users: dict[int, list[str]] = {}
    vni_users: dict[int, list[str]] = {}
    local_users: dict[int, list[str]] = {}
    for st in nets:
        if st.get("pktTagType") == "vlan":
            vlan_users.setdefault(int(st.get("pktTag") or 0), []).append(f"network {st.get('id')}")
        elif st.get("pktTagType") == "vxlan":
            vni_users.setdefault(int(st.get("extPktTag") or 0), []).append(f"network {st.get('id')}")
            local_users.setdefault(int(st.get("pktTag") or 0), []).append(f"network {st.get('id')}")
    if aci:
        for k, v in snap.items():
            if k.startswith(EPGS):
                g = json.loads(v)
                if g.get("pktTagType") == "vlan":
                    vlan_users.setdefault(int(g.get("pktTag") or 0), []).append(f"group {g.get('id')}")

    def compare(what: str, cfg: int, free: int, users: dict[int, list[str]], shift: int = 0) -> None:
        if free & ~cfg:
            problems.add(f"{what}: free bits outside the configured range {bit_list(free & ~cfg)[:5]}")
        in_use = {b + shift for b in bit_list(cfg & ~free)}
        for tag, who in sorted(users.items()):
            if len(who) > 1:
                problems.add(f"{what} {tag} held twice: {', '.join(who)}")
            if tag not in in_use:
                problems.add(f"{what} {tag} of {', '.join(who)} is not marked in use")
        for tag in sorted(in_use - set(users)):
            problems.add(f"{what} {tag} marked in use but no network holds it")

    st_key, op_key = AUTO_VLAN
    if st_key in snap and op_key in snap:
        cfg = decode_bits(json.loads(snap[st_key]).get("vlans"))
        free = decode_bits(json.loads(snap[op_key]).get("freeVLANs"))
        compare("vlan", cfg, free, vlan_users)
    elif vlan_users:
        problems.add(f"vlan networks exist ({sorted(vlan_users)}) but no auto-vlan records")
    st_key, op_key = AUTO_VXLAN
    if st_key in snap and op_key in snap:
        s, o = json.loads(snap[st_key]), json.loads(snap[op_key])
        start = int(s.get("FreeVXLANsStart") or 0)
        compare("vxlan VNI", decode_bits(s.get("vxlans")), decode_bits(o.get("freeVXLANs")), vni_users, start)
        compare(
            "vxlan local vlan",
            decode_bits(s.get("LocalVLANs")),
            decode_bits(o.get("freeLocalVLANs")),
            local_users,
        )
    elif vni_users:
        problems.add(f"vxlan networks exist ({sorted(vni_users)}) but no auto-vxlan records")


def check_epg_ids(snap: Snapshot, problems: _Problems) -> None:
    epgs = {k[len(EPGS) :]: json.loads(v) for k, v in snap.items() if k.startswith(EPGS)}
    ids = _by_prefix(snap, EPGID)
    for num, owner in ids.items():
        g = epgs.get(owner)
        if g is None:
            problems.add(f"epg id {num}: reserved for {owner}, which does not exist")
        elif str(g.get("endpointGroupId")) != num:
            problems.add(f"epg id {num}: reserved for {owner}, whose id is {g.get('endpointGroupId')}")
    for gid, g in epgs.items():
        num = str(g.get("endpointGroupId"))
        if ids.get(num) != gid:
            problems.add(f"group {gid}: id {num} reserved for {ids.get(num)!r}")


def check_addr_index(snap: Snapshot, problems: _Problems) -> None:
    want: dict[str, str] = {}
    for ep_id, raw in _by_prefix(snap, EPS).items():
        try:
            ep = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(ep, dict) or not ep.get("netID"):
            continue
        for fam, field in (("v4", "ipAddress"), ("v6", "ipv6Address")):
            if ep.get(field):
                want[f"{ADDR_INDEX}{ep['netID']}/{fam}/{ep[field]}/{ep_id}"] = ep_id
    have = {k: v for k, v in snap.items() if k.startswith(ADDR_INDEX) and k != ADDR_INDEX + "built"}
    for k in sorted(have):
        if want.get(k) != have[k]:
            problems.add(f"address index: {k} = {have[k]!r} names no endpoint state holding that address")
    if ADDR_INDEX + "built" in snap:
        for k in sorted(set(want) - set(have)):
            problems.add(f"address index: endpoint {want[k]} has no entry {k}")


def check(snap: Snapshot, settled: bool = True) -> list[str]:
    """Every problem found in ``snap`` (a {key: value} of /contiv.io), [] if consistent."""
    problems = _Problems()
    objs = check_links(snap, problems)
    check_ipam(snap, objs, problems)
    check_tags(snap, objs, problems)
    check_epg_ids(snap, problems)
    check_addr_index(snap, problems)
    if settled:
        for k in sorted(snap):
            if k.startswith(PENDING):
                problems.add(f"follow-up job still pending: {k[len(PENDING) :]}")
    return list(problems)


def assert_consistent(snap: Snapshot, settled: bool = True, context: str = "") -> None:
    problems = check(snap, settled)
    if problems:
        head = (
            f"etcd state inconsistent{(' after ' + context) if context else ''}: {len(problems)} problem(s)"
        )
        raise AssertionError("\n  ".join([head, *problems[:40]]))


__all__ = ["check", "assert_consistent", "load_etcdctl", "load_kv", "decode_bits", "Snapshot"]
