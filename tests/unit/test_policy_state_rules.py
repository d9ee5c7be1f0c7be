"""Contiv rules -> ofnet rule records (netmaster/hooks/policy_state.py) -> flows (ofnet/builders.py):
the ICMP request match of a deny icmp rule and an out rule scoped to one member (fromIpAddress)."""

from __future__ import annotations

import asyncio

from contivpy.netmaster.hooks import policy_state as PS
from contivpy.netplugin.managers.policy import rule_fields
from contivpy.ofnet import builders as B
from contivpy.ofnet.types import Rule


def _ofnet(rule: dict) -> dict:
    look = PS.Lookup(kv=None)  # no group or network in these rules: nothing is read
    recs = asyncio.run(PS.ofnet_rules(look, "t:g:t:p", 7, dict(rule, key="t:p:r", tenantName="t")))
    return {rid.rsplit(":", 1)[1]: r for rid, r in recs.items()}


def test_deny_icmp_matches_requests_only():
    recs = _ofnet(
        {"direction": "in", "action": "deny", "protocol": "icmp", "priority": 1, "toIpAddress": "10.0.0.2"}
    )
    assert (
        set(recs) == {"inRx"} and recs["inRx"].IcmpType == "request" and recs["inRx"].DstIpAddr == "10.0.0.2"
    )
    flows = B.rule_flows(Rule(**rule_fields(recs["inRx"].to_json())))
    assert sorted(f.match.get("icmpv4_type") for f in flows) == [8, 13, 15, 17]
    allow = _ofnet({"direction": "in", "action": "allow", "protocol": "icmp", "priority": 2})["inRx"]
    assert allow.IcmpType == "" and "IcmpType" not in allow.to_json()  # the original's record
    out = _ofnet({"direction": "out", "action": "deny", "protocol": "icmp", "priority": 1})["outTx"]
    assert out.IcmpType == "request"


def test_out_rule_scoped_to_a_member():
    recs = _ofnet({"direction": "out", "action": "allow", "protocol": "tcp", "port": 53, "priority": 2,
                   "fromIpAddress": "10.0.0.2", "toIpAddress": "10.0.1.0/24"})  # fmt: skip
    assert (recs["outTx"].SrcIpAddr, recs["outTx"].DstIpAddr, recs["outTx"].DstPort) == (
        "10.0.0.2",
        "10.0.1.0/24",
        53,
    )
    assert (recs["outRx"].SrcIpAddr, recs["outRx"].DstIpAddr, recs["outRx"].SrcPort) == (
        "10.0.1.0/24",
        "10.0.0.2",
        53,
    )
    plain = _ofnet({"direction": "out", "action": "deny", "protocol": "tcp", "priority": 1})["outTx"]
    assert plain.SrcIpAddr == "" and plain.TcpFlags == "syn,!ack"
