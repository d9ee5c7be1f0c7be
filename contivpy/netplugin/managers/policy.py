"""PolicyManager: ``/contiv.io/state/policyRule/<ruleId>`` (written by netmaster) -> ofnet policy rules.

The original delivered these rules through the ofnet master RPC and ignored the etcd copies; contivpy
reads the etcd records (``contivpy.model.state.PolicyRuleState``, the original's OfnetPolicyRule JSON)
and installs each rule on both bridges (table 5, priority 10 + rule priority). A rule whose fields change is
removed and re-added (ofnet refuses a different rule under an existing id). One reconciler key per rule
id; a rule the switch side refuses as bad data is ``failed`` in the status until it changes.
"""

from __future__ import annotations

import logging

from contivpy.common.errors import ValidationError
from contivpy.common.reconcile import Reconciler
from contivpy.model.state import PolicyRuleState
from contivpy.netplugin.dpapi import Datapath

log = logging.getLogger(__name__)

_FIELDS = {
    "RuleId": "rule_id",
    "Priority": "priority",
    "SrcEndpointGroup": "src_epg",
    "DstEndpointGroup": "dst_epg",
    "SrcIpAddr": "src_ip",
    "DstIpAddr": "dst_ip",
    "IpProtocol": "protocol",
    "SrcPort": "src_port",
    "DstPort": "dst_port",
    "TcpFlags": "tcp_flags",
    "Action": "action",
    "IcmpType": "icmp_type",
}


def rule_fields(value: str) -> dict | None:
    """The ofnet ``add_rule`` arguments of a ``PolicyRuleState`` record; None when malformed."""
    try:
        rec = PolicyRuleState.from_json(value)
    except ValueError:
        return None
    out = {py: getattr(rec, js) for js, py in _FIELDS.items() if getattr(rec, js) not in (None, "")}
    return out if out.get("rule_id") else None


class PolicyManager:
    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.desired: dict[str, dict] = {}
        self.applied: dict[str, dict] = {}
        self.failed: dict[str, str] = {}
        self.rec: Reconciler[str] = Reconciler(
            "policyRules",
            self.reconcile,
            permanent=(ValidationError,),
            desired=lambda rid: rid in self.desired or rid in self.applied,
        )

    def on_update(self, rule_id: str, value: str | None) -> None:
        if value is None:
            self.desired.pop(rule_id, None)
        else:
            fields = rule_fields(value)
            if fields is None:
                log.warning("ignoring malformed policy rule %s", rule_id)
                return
            self.desired[rule_id] = fields
        self.rec.enqueue(rule_id)

    async def reconcile(self, rid: str) -> None:
        fields, cur = self.desired.get(rid), self.applied.get(rid)
        if cur == fields:
            return
        if cur is not None:
            await self.dp.remove_rule(rid)
            del self.applied[rid]
        if fields is None:
            self.failed.pop(rid, None)
            return
        err = await self.dp.add_rule(fields)
        if err:
            if self.failed.get(rid) != err:
                log.error("policy rule %s not installed: %s", rid, err)
            self.failed[rid] = err
            raise ValidationError(err)
        self.failed.pop(rid, None)
        self.applied[rid] = fields

    async def apply(self) -> None:
        for rid in sorted(set(self.desired) | set(self.applied)):
            try:
                await self.reconcile(rid)
            except ValidationError:
                continue
