"""EPG-policy state: contiv rules expanded to ofnet rules (docs/original.md §6.5), kept by a follow-up job.

Keys (written only here):
- ``/contiv.io/state/policy/<tenant>:<group>:<tenant>:<policy>`` = EpgPolicy
  ``{"id","EpgPolicyKey","EndpointGroupID","RuleMaps":{<ruleKey>:{"Rule":<rule>,"OfnetRules":{id: r}}}}``
- ``/contiv.io/state/policyRule/<ofnetRuleId>`` = ``{"id":"", <OfnetPolicyRule fields>}`` with
  ``ofnetRuleId = <epgPolicyKey>:<ruleKey>:<dir>`` (so every ofnet rule of a (group, policy) pair
  lies under the prefix ``<epgPolicyKey>:``; names cannot hold ':').

Bounded txns (etcd refuses > 128 ops): this state grows with rules x groups, so the hooks never
write it in the request's txn. They call ``schedule(ctx, plan, tenant, policy)``, which puts the
intent key ``/contiv.io/master/pending/policy/<tenant>:<policy>`` into the request's txn
(``netmaster.followup``); a group attached to or detached from a policy schedules only its own
pair (``schedule_pair``, intent ``/contiv.io/master/pending/policypair/<tenant>:<group>:<policy>``,
``pair_ops``: O(rules), so the 1,000th group of a policy costs what the first did), and a rule
created or deleted only its own ofnet rules and ``RuleMaps`` entry in each pair (``schedule_rule``,
intent ``.../policyrule/<tenant>:<policy>:<ruleId>``, ``rule_ops``: no other rule is recomputed); after the commit ``sync_policy`` recomputes every (group, policy) pair
of that policy from the committed model (a pure function of the policy's ``EndpointGroups`` and
``Rules`` link-sets, the rule objects, the groups' EPG ids and the networks' subnets), diffs it
against the stored records (one prefix read per pair) and writes only the difference in bounded
txns: a rule-add writes the new rule's 1-2 ofnet rules and the pair record per group, a rule
delete one prefix delete per group, a detach one record delete + one prefix delete. A failure
part-way leaves the intent key; the job is idempotent and is re-run by the next leader start
(or the next change of the policy).

Reads here are plain (not compare-fenced): they run under the crud lock, after the commit, and
the values used (EPG ids, subnets, rule bodies) never change during an object's life.
"""

from __future__ import annotations

import json

from contivpy.common.errors import ResourceExhaustedError
from contivpy.common.kv.base import Delete, KVStore, Put
from contivpy.model import codec, keys
from contivpy.model.state import EndpointGroupState, PolicyRuleState
from contivpy.netmaster import followup
from contivpy.netmaster.txn import read_members

# A (group, policy) record lists every rule of the policy (the original's layout: 1.1 kB a rule
# with short names, 3.2 kB with 64-character ones) and is written in one request; etcd refuses
# requests over 1.5 MiB (--max-request-bytes). So a rule added to a policy that has groups, and a
# group attached to a policy that has rules, are refused with a clear message when the record
# would pass MAX_PAIR_BYTES. _rule_bytes bounds one rule's entry from the name lengths (measured:
# tests/integration/test_netmaster_txn_bounds.py checks the bound against real entries).
MAX_PAIR_BYTES = 1_250_000


def _rule_bytes(tenant: str, policy: str, group_len: int, rule_id_len: int) -> int:
    return 900 + 10 * (len(tenant) + len(policy) + group_len + rule_id_len)


def check_pair_size(tenant: str, policy: str, rule_keys: list[str], group_keys: list[str]) -> None:
    """Refuse a policy whose (group, policy) records would not fit one etcd request."""
    if not rule_keys or not group_keys:
        return
    per = _rule_bytes(
        tenant,
        policy,
        max(len(g.split(":", 1)[-1]) for g in group_keys),
        max(len(r.rsplit(":", 1)[-1]) for r in rule_keys),
    )
    n = len(rule_keys)
    if n * per > MAX_PAIR_BYTES:
        raise ResourceExhaustedError(
            f"too many rules in policy {policy} for its endpoint groups ({n} rules; with these names "
            f"at most {MAX_PAIR_BYTES // per}): the policy state of each group would pass etcd's request size limit"
        )


_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "igmp": 2, "": 0}
KIND = "policy"
PAIR_KIND = "policypair"  # one (group, policy) pair: ``<tenant>:<group>:<policy>``
RULE_KIND = "policyrule"  # one rule in every pair of its policy: ``<tenant>:<policy>:<ruleId>``


def epg_policy_key(tenant: str, group: str, policy: str) -> str:
    return f"{tenant}:{group}:{tenant}:{policy}"


def _dirs(rule: dict) -> list[str]:
    ported = rule.get("protocol") in ("tcp", "udp") and rule.get("port", 0) != 0
    if rule.get("direction") == "in":
        return ["inRx", "inTx"] if ported else ["inRx"]
    if rule.get("direction") == "out":
        return ["outRx", "outTx"] if ported else ["outTx"]
    return []


def _proto(p: str) -> int:
    if p in _PROTO:
        return _PROTO[p]
    try:
        n = int(p)
    except ValueError:
        return 0
    return n if 0 <= n < 256 else 0


class Lookup:
    """Memoised reads of EPG ids and network subnets (one store read per distinct name)."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self._epg: dict[str, int | None] = {}
        self._subnet: dict[str, str | None] = {}

    async def epg_id(self, tenant: str, group: str) -> int | None:
        sid = keys.epg_id(group, tenant)
        if sid not in self._epg:
            kv = await self.kv.get(keys.epg_state(sid))
            self._epg[sid] = int(EndpointGroupState.from_json(kv.value).endpointGroupId) if kv else None
        return self._epg[sid]

    async def subnet(self, tenant: str, net: str) -> str | None:
        k = f"{tenant}:{net}"
        if k not in self._subnet:
            kv = await self.kv.get(keys.obj_key("network", k))
            self._subnet[k] = json.loads(kv.value).get("subnet", "") if kv else None
        return self._subnet[k]


async def _remote(look: Lookup, rule: dict) -> tuple[int, str, str]:
    """(remote EPG id, from-ip, to-ip) with networks replaced by their subnets."""
    tenant = rule.get("tenantName", "")
    frm, to = rule.get("fromIpAddress", ""), rule.get("toIpAddress", "")
    group = rule.get("fromEndpointGroup") or rule.get("toEndpointGroup")
    if group:
        return (await look.epg_id(tenant, group) or 0), frm, to
    if rule.get("fromNetwork"):
        frm = await look.subnet(tenant, rule["fromNetwork"]) or frm
    elif rule.get("toNetwork"):
        to = await look.subnet(tenant, rule["toNetwork"]) or to
    return 0, frm, to


async def ofnet_rules(look: Lookup, gp_key: str, epg_id: int, rule: dict) -> dict[str, PolicyRuleState]:
    remote, frm, to = await _remote(look, rule)
    port = int(rule.get("port", 0))
    tcp0 = rule.get("protocol") == "tcp" and port == 0
    # a deny icmp rule stops requests only (echo, ...): replies to the group's own pings pass
    icmp_req = "request" if rule.get("protocol") == "icmp" and rule.get("action") == "deny" else ""
    out: dict[str, PolicyRuleState] = {}
    for d in _dirs(rule):
        r = PolicyRuleState(
            RuleId=f"{gp_key}:{rule['key']}:{d}",
            Priority=int(rule.get("priority", 1)),
            IpProtocol=_proto(rule.get("protocol", "")),
            Action=rule.get("action", ""),
        )
        if d in ("inRx", "outRx"):
            r.DstEndpointGroup, r.SrcEndpointGroup = epg_id, remote
        else:
            r.SrcEndpointGroup, r.DstEndpointGroup = epg_id, remote
        if d == "inRx":
            r.SrcIpAddr, r.DstIpAddr, r.DstPort = frm, to, port
            r.TcpFlags = "syn,!ack" if tcp0 else ""
            r.IcmpType = icmp_req
        elif d == "inTx":
            r.DstIpAddr, r.SrcIpAddr, r.SrcPort = frm, to, port
        elif d == "outRx":  # fromIpAddress of an out rule (contivpy: one member of the group)
            r.SrcIpAddr, r.DstIpAddr, r.SrcPort = to, frm, port
        else:
            r.DstIpAddr, r.SrcIpAddr, r.DstPort = to, frm, port
            r.TcpFlags = "syn,!ack" if tcp0 else ""
            r.IcmpType = icmp_req
        out[r.RuleId] = r
    return out


def _dumps(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))


async def _pair_ops(look: Lookup, tenant: str, group: str, epg_id: int, policy: str, rules: list[dict]):
    """Ops turning the stored (group, policy) records into the ones computed from ``rules``."""
    gp_key = epg_policy_key(tenant, group, policy)
    rule_maps: dict[str, dict] = {}
    want: dict[str, str] = {}
    for rule in rules:
        ofr = await ofnet_rules(look, gp_key, epg_id, rule)
        ofnet = {rid: r.rule_dict() for rid, r in ofr.items()}
        rule_maps[rule["key"]] = {"Rule": codec.canonical("rule", rule), "OfnetRules": ofnet}
        want.update({keys.POLICY_RULE + rid: r.to_json() for rid, r in ofr.items()})
    have_items, _ = await look.kv.get_prefix(keys.POLICY_RULE + gp_key + ":")
    have = {i.key: i.value for i in have_items}
    ops: list[Put | Delete] = [Put(k, v) for k, v in sorted(want.items()) if have.get(k) != v]
    state = {"id": gp_key, "EpgPolicyKey": gp_key, "EndpointGroupID": epg_id, "RuleMaps": rule_maps}
    cur = await look.kv.get(keys.POLICY + gp_key)
    if cur is None or cur.value != _dumps(state):
        ops.append(Put(keys.POLICY + gp_key, _dumps(state)))
    ops += [Delete(k) for k in sorted(set(have) - set(want))]
    return ops


def _pair_delete_ops(gp_key: str) -> list[Put | Delete]:
    return [Delete(keys.POLICY + gp_key), Delete(keys.POLICY_RULE + gp_key + ":", prefix=True)]


async def policy_ops(kv: KVStore, tenant: str, policy: str) -> list[Put | Delete]:
    """Every op that brings the EPG-policy state of ``tenant:policy`` in line with the model."""
    look = Lookup(kv)
    pkv = await kv.get(keys.obj_key("policy", f"{tenant}:{policy}"))
    pobj = json.loads(pkv.value) if pkv else {}
    pkey = f"{tenant}:{policy}"
    linked_rules = set(await read_members(kv, "policy", pkey, "Rules", pobj))
    rule_items, _ = await kv.get_prefix(keys.obj_key("rule", f"{tenant}:{policy}:"))
    rules = [r for r in (json.loads(i.value) for i in rule_items) if r.get("key") in linked_rules]
    rules.sort(key=lambda r: r["key"])
    want_groups: dict[str, int] = {}
    for epg_key in await read_members(kv, "policy", pkey, "EndpointGroups", pobj):
        group = epg_key.split(":", 1)[1]
        epg_id = await look.epg_id(tenant, group)
        if epg_id is not None:  # a group without state is going away: its pair goes too
            want_groups[group] = epg_id
    ops: list[Put | Delete] = []
    for group, epg_id in want_groups.items():
        ops += await _pair_ops(look, tenant, group, epg_id, policy, rules)
    suffix = f":{tenant}:{policy}"
    items, _ = await kv.get_prefix(f"{keys.POLICY}{tenant}:")
    for item in items:
        rest = item.key[len(keys.POLICY) + len(tenant) + 1 :]
        if rest.endswith(suffix) and ":" not in rest[: -len(suffix)]:
            group = rest[: -len(suffix)]
            if group not in want_groups:
                ops += _pair_delete_ops(epg_policy_key(tenant, group, policy))
    return ops


async def pair_ops(kv: KVStore, tenant: str, group: str, policy: str) -> list[Put | Delete]:
    """The ops for ONE (group, policy) pair: its records computed from the policy's rules if the
    group is attached (its link key, or a member the policy record stores) and has an EPG id,
    else their deletion. Costs O(rules of the policy), whatever the number of its groups."""
    pkey, epg_key = f"{tenant}:{policy}", f"{tenant}:{group}"
    look = Lookup(kv)
    linked = await kv.get(keys.link_key("policy", pkey, "EndpointGroups", epg_key)) is not None
    if not linked:
        pkv = await kv.get(keys.obj_key("policy", pkey))
        pobj = json.loads(pkv.value) if pkv else {}
        linked = epg_key in ((pobj.get("link-sets") or {}).get("EndpointGroups") or {})
    epg_id = await look.epg_id(tenant, group) if linked else None
    if epg_id is None:
        return _pair_delete_ops(epg_policy_key(tenant, group, policy))
    pkv = await kv.get(keys.obj_key("policy", pkey))
    pobj = json.loads(pkv.value) if pkv else {}
    linked_rules = set(await read_members(kv, "policy", pkey, "Rules", pobj))
    rule_items, _ = await kv.get_prefix(keys.obj_key("rule", f"{pkey}:"))
    rules = sorted(
        (r for r in (json.loads(i.value) for i in rule_items) if r.get("key") in linked_rules),
        key=lambda r: r["key"],
    )
    return await _pair_ops(look, tenant, group, epg_id, policy, rules)


async def rule_ops(kv: KVStore, tenant: str, policy: str, rule_id: str) -> list[Put | Delete]:
    """The ops for ONE rule of a policy (created or deleted) in every (group, policy) pair: its
    ofnet rules added or removed and its ``RuleMaps`` entry set or dropped in each pair record.
    No other rule is read or recomputed; the pair record, which lists every rule (the original's
    layout), is still rewritten. A pair without a record yet gets its full rebuild."""
    pkey = f"{tenant}:{policy}"
    rkey = f"{pkey}:{rule_id}"
    look = Lookup(kv)
    pkv = await kv.get(keys.obj_key("policy", pkey))
    pobj = json.loads(pkv.value) if pkv else {}
    groups = await read_members(kv, "policy", pkey, "EndpointGroups", pobj)
    rkv = await kv.get(keys.obj_key("rule", rkey))
    rule = json.loads(rkv.value) if rkv is not None and pkv is not None else None
    ops: list[Put | Delete] = []
    for epg_key in groups:
        group = epg_key.split(":", 1)[1]
        epg_id = await look.epg_id(tenant, group)
        if epg_id is None:  # the group is going away: its own pair job removes the pair
            continue
        gp_key = epg_policy_key(tenant, group, policy)
        cur = await kv.get(keys.POLICY + gp_key)
        if cur is None:
            ops += await pair_ops(kv, tenant, group, policy)
            continue
        state = json.loads(cur.value)
        rule_maps = dict(state.get("RuleMaps") or {})
        want: dict[str, str] = {}
        if rule is not None:
            ofr = await ofnet_rules(look, gp_key, epg_id, rule)
            ofnet = {rid: r.rule_dict() for rid, r in ofr.items()}
            rule_maps[rkey] = {"Rule": codec.canonical("rule", rule), "OfnetRules": ofnet}
            want = {keys.POLICY_RULE + rid: r.to_json() for rid, r in ofr.items()}
        else:
            rule_maps.pop(rkey, None)
        have_items, _ = await kv.get_prefix(f"{keys.POLICY_RULE}{gp_key}:{rkey}:")
        have = {i.key: i.value for i in have_items}
        ops += [Put(k, v) for k, v in sorted(want.items()) if have.get(k) != v]
        new = {
            "id": gp_key,
            "EpgPolicyKey": gp_key,
            "EndpointGroupID": epg_id,
            "RuleMaps": {k: rule_maps[k] for k in sorted(rule_maps)},  # as a full rebuild orders them
        }
        if cur.value != _dumps(new):
            ops.append(Put(keys.POLICY + gp_key, _dumps(new)))
        ops += [Delete(k) for k in sorted(set(have) - set(want))]
    return ops


async def sync_policy(crud, tenant: str, policy: str) -> int:
    """Write ``policy_ops`` in bounded txns; returns the number of txns used."""
    return await followup.write_ops(crud, await policy_ops(crud.kv, tenant, policy))


@followup.job(KIND)
async def _job(crud, job_id: str) -> None:
    tenant, policy = job_id.split(":", 1)
    await sync_policy(crud, tenant, policy)


def schedule(ctx, plan, tenant: str, policy: str) -> None:
    """Rebuild the EPG-policy state of ``tenant:policy`` after this request's commit."""
    followup.schedule(ctx, plan, KIND, f"{tenant}:{policy}")


@followup.job(PAIR_KIND)
async def _pair_job(crud, job_id: str) -> None:
    tenant, group, policy = job_id.split(":", 2)
    await followup.write_ops(crud, await pair_ops(crud.kv, tenant, group, policy))


@followup.job(RULE_KIND)
async def _rule_job(crud, job_id: str) -> None:
    tenant, policy, rule_id = job_id.split(":", 2)
    await followup.write_ops(crud, await rule_ops(crud.kv, tenant, policy, rule_id))


def schedule_rule(ctx, plan, tenant: str, policy: str, rule_id: str) -> None:
    """Apply one rule's creation or deletion to the policy's pairs after this request's commit."""
    followup.schedule(ctx, plan, RULE_KIND, f"{tenant}:{policy}:{rule_id}")


def schedule_pair(ctx, plan, tenant: str, group: str, policy: str) -> None:
    """Rebuild only the (group, policy) pair after this request's commit (a group attached to or
    detached from the policy): the other groups' records do not change."""
    followup.schedule(ctx, plan, PAIR_KIND, f"{tenant}:{group}:{policy}")


__all__ = [
    "epg_policy_key",
    "ofnet_rules",
    "policy_ops",
    "pair_ops",
    "rule_ops",
    "schedule_rule",
    "RULE_KIND",
    "MAX_PAIR_BYTES",
    "check_pair_size",
    "sync_policy",
    "schedule",
    "schedule_pair",
    "Lookup",
    "KIND",
    "PAIR_KIND",
]
