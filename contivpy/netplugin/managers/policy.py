"""PolicyManager: ``/contiv.io/state/policyRule/<ruleId>`` (written by netmaster) -> ofnet policy rules.

The original delivered these rules through the ofnet master RPC and ignored the etcd copies; contivpy
reads the etcd records (``contivpy.model.state.PolicyRuleState``, the original's OfnetPolicyRule JSON)
and installs each rule on both bridges (table 5, priority 10 + rule priority). A rule whose fields change is
removed and re-added (ofnet refuses a different rule under an existing id).
"""

from __future__ import annotations

import logging

from contivpy.model.state import PolicyRuleState
from contivpy.netplugin.datapath import Datapath

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

    def on_update(self, rule_id: str, value: str | None) -> None:
        if value is None:
            self.desired.pop(rule_id, None)
            return
        fields = rule_fields(value)
        if fields is None:
            log.warning("ignoring malformed policy rule %s", rule_id)
            return
        self.desired[rule_id] = fields

    async def apply(self) -> None:
        for rid in list(self.applied):
            if self.desired.get(rid) != self.applied[rid]:
                await self.dp.remove_rule(rid)
                del self.applied[rid]
        for rid, fields in self.desired.items():
            if rid in self.applied:
                continue
            err = await self.dp.add_rule(fields)
            if err:
                if self.failed.get(rid) != err:
                    log.error("policy rule %s not installed: %s", rid, err)
                self.failed[rid] = err
                continue
            self.failed.pop(rid, None)
            self.applied[rid] = fields
