"""``netctl trace`` on the real test bed (two netns hosts, their own OVS, real etcd/netmaster/agents).

The real netctl CLI asks netmaster which endpoint the source is, then the endpoint's agent
(``--agent`` = that host's debug REST) runs ``ofproto/trace`` on its own vswitchd.  Covers: allowed
traffic between two endpoints of one host (output port, default policy), a policy deny (the
denying rule named), cross-host traffic (tunnel to the other host's VTEP), ``--json``, and bad input
(clear error, exit status, no traceback), including the wrong host's agent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.testbed import http_json, wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


@pytest.fixture(scope="module")
def bed():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as b:
        b.start_all()
        yield b


def netctl(bed, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def trace_json(bed, host, src: str, dst: str, *extra: str) -> dict:
    r = netctl(bed, "trace", "--agent", host.debug_url, "--json", *extra, src, dst)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def eps(bed):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.netctl("network", "create", "--subnet", "10.131.1.0/24", "trnet")
    bed.netctl("policy", "create", "trpol")
    bed.netctl(
        "policy", "rule-add", "trpol", "1", "--direction", "in", "--protocol", "tcp", "--port", "8080",
        "--action", "deny",
    )  # fmt: skip
    bed.netctl("group", "create", "-p", "trpol", "trnet", "trweb")
    ia, a = make_ep(h1, "trnet", "tra")
    ib, b = make_ep(h1, "trnet", "trb", group="trweb")
    ic, c = make_ep(h2, "trnet", "trc")
    for h in (h1, h2):
        wait_for(lambda h=h: has_flow(h, "table=5", "tp_dst=8080", "actions=drop"), 10, what="deny rule")
    wait_for(lambda: has_flow(h1, "table=9", f"dl_dst={ic['mac_address']}"), 10, what="remote ep on h1")
    return {"a": (ia, a), "b": (ib, b), "c": (ic, c)}


def test_same_host_allowed_shows_output_port(bed, eps):
    h1 = bed.hosts[1]
    (ia, a), (ib, b) = eps["a"], eps["b"]
    res = trace_json(bed, h1, "tra", ib["ip_address"], "--proto", "tcp", "--port", "80")
    assert res["host"] == "h1" and res["bridge"] == "contivVxlanBridge"
    assert res["source"]["ip"] == ia["ip_address"] and res["source"]["port"] == ia["ovs_port"]
    assert res["destination"]["mac"] == ib["mac_address"]
    names = [s["tableName"] for s in res["steps"]]
    assert names[0] == "input" and "policy" in names and names[-1] == "mac_dest"
    assert res["final"] == {"kind": "output", "port": ib["ovs_port"], "ofport": ib["ofport"]}
    assert res["policy"]["verdict"] == "allow" and res["policy"]["rule"] is None
    # the flows that matched are named by their owners (cookies mapped back)
    owners = {s["tableName"]: s["owner"] for s in res["steps"]}
    assert owners["vlan"] == f"lep:{ia['ofport']}" and owners["mac_dest"] == f"lep:{ib['ofport']}"
    # and it is true: the same TCP connection works
    assert a.tcp_ok(b, port=80)
    # the text form shows the same path with contiv's table names
    r = netctl(
        bed, "trace", "--agent", h1.debug_url, "--proto", "tcp", "--port", "80", "tra", ib["ip_address"]
    )
    assert r.returncode == 0, r.stderr
    assert "mac_dest" in r.stdout and f"output to port {ib['ovs_port']}" in r.stdout
    assert "Result:" in r.stdout and "allowed" in r.stdout


def test_policy_deny_shows_rule(bed, eps):
    h1 = bed.hosts[1]
    (_, a), (ib, b) = eps["a"], eps["b"]
    res = trace_json(bed, h1, "tra", ib["ip_address"], "--proto", "tcp", "--port", "8080")
    assert res["policy"]["verdict"] == "deny"
    rule = res["policy"]["rule"]
    assert rule["policy"] == "trpol" and rule["ruleId"] == "1" and rule["action"] == "deny"
    assert rule["group"] == "trweb" and rule["id"].startswith("default:trweb:default:trpol:")
    assert res["final"]["kind"] == "drop" and res["final"]["table"] == "policy"
    assert res["steps"][-1]["owner"] == f"rule:{rule['id']}"
    assert not a.tcp_ok(b, port=8080, budget=3)
    r = netctl(
        bed, "trace", "--agent", h1.debug_url, "--proto", "tcp", "--port", "8080", "tra", ib["ip_address"]
    )
    assert "denied by rule 1 of policy default/trpol" in r.stdout and "drop in table policy" in r.stdout
    # an allow rule that matches is named too
    bed.netctl(
        "policy", "rule-add", "trpol", "2", "--direction", "in", "--protocol", "tcp", "--port", "8081",
        "--priority", "2", "--action", "allow",
    )  # fmt: skip
    wait_for(lambda: has_flow(h1, "table=5", "priority=12", "tp_dst=8081"), 10, what="allow rule")
    res = trace_json(bed, h1, "tra", ib["ip_address"], "--proto", "tcp", "--port", "8081")
    assert res["policy"]["verdict"] == "allow" and res["policy"]["rule"]["ruleId"] == "2"
    assert res["policy"]["rule"]["action"] == "allow" and res["final"]["kind"] == "output"


def test_cross_host_shows_tunnel(bed, eps):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    (ia, a), (ic, c) = eps["a"], eps["c"]
    res = trace_json(bed, h1, "tra", ic["ip_address"])
    assert res["protocol"] == "icmp" and res["destination"]["mac"] == ic["mac_address"]
    f = res["final"]
    assert f["kind"] == "tunnel" and f["vtep"] == h2.ip and f["port"].startswith("vxif") and f["vni"] > 0
    assert a.ping(c.ip)
    # from the other side: the endpoint on h2, traced by h2's agent
    res2 = trace_json(bed, h2, "trc", ia["ip_address"], "--proto", "udp", "--port", "5300")
    assert res2["host"] == "h2" and res2["final"]["kind"] == "tunnel" and res2["final"]["vtep"] == h1.ip
    # DNS goes to the agent's name server (the input table's punt), wherever it is addressed
    res3 = trace_json(bed, h2, "trc", ia["ip_address"], "--proto", "udp", "--port", "53")
    assert res3["final"]["kind"] == "controller" and res3["final"]["table"] == "input"
    assert "name server" in res3["final"]["why"]


def test_vlan_network_is_switched_by_ovs_normal(bed, eps):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("trvlan", "10.131.2.0/24", encap="vlan", pktTag=131)
    i1, c1 = make_ep(h1, "trvlan", "trv1")
    i2, c2 = make_ep(h2, "trvlan", "trv2")
    wait_for(lambda: has_flow(h1, "table=4", f"nw_dst={i2['ip_address']}", bridge="contivVlanBridge"), 10)
    res = trace_json(bed, h1, "trv1", i2["ip_address"], "--proto", "tcp", "--port", "7931")
    assert res["bridge"] == "contivVlanBridge" and res["destination"]["mac"] == i2["mac_address"]
    assert [s["tableName"] for s in res["steps"]][-1] == "mac_dest"
    assert res["final"]["kind"] == "normal" and res["policy"]["verdict"] == "allow"
    assert c1.tcp_ok(c2, port=7931)
    # off the subnet of a vlan network the next hop is an external router: refused, clearly
    r = netctl(bed, "trace", "--agent", h1.debug_url, "trv1", "198.51.100.10")
    assert r.returncode == 3 and "external router" in r.stderr


def test_service_vip_punt_then_conntrack_nat(bed, eps):
    """A VIP's first packet goes to the agent (svc_dnat); once the agent chose a provider for this
    client, the trace follows the conntrack NAT (a recirculation) into dst_group and policy with the
    provider's address and port."""
    from contivpy.model import keys
    from contivpy.model.state import ProviderState, ServiceLBState

    h1 = bed.hosts[1]
    (ia, a), (ib, _) = eps["a"], eps["b"]
    sid, vip = "trsvc:default", "10.131.1.200"
    lb = ServiceLBState(
        id=sid, servicename="trsvc", tenantname="default", subnet="trnet", ports=["80:8080:TCP"],
        selectors={"app": "tr"}, ipaddress=vip,
    )  # fmt: skip
    try:
        bed.etcdctl("put", keys.SERVICE_LB + sid, lb.to_json())
        bed.etcdctl("put", keys.PROVIDER + sid, ProviderState(sid, [ib["ip_address"]]).to_json())
        wait_for(lambda: has_flow(h1, "table=3", "priority=10,", f"nw_dst={vip}", "CONTROLLER"), 15)
        res = trace_json(bed, h1, "tra", vip, "--proto", "tcp", "--port", "80")
        assert res["destination"]["macFrom"] == f"service VIP {vip}"
        assert res["final"]["kind"] == "controller" and res["final"]["table"] == "svc_dnat"
        assert "service VIP" in res["final"]["why"]
        # a real first packet: the agent installs this client's NAT flows (the provider answers RST)
        a.exec("timeout", "3", sys.executable, "-c", f"import socket; socket.create_connection(('{vip}', 80), 2)",
               check=False)  # fmt: skip
        wait_for(lambda: has_flow(h1, "table=3", "priority=100", f"nw_src={ia['ip_address']}"), 10)
        res = trace_json(bed, h1, "tra", vip, "--proto", "tcp", "--port", "80")
        dnat = next(s for s in res["steps"] if s["tableName"] == "svc_dnat")
        assert dnat["owner"].startswith("svcc:") and any("ct(" in x for x in dnat["actions"])
        # after the recirculation the packet is addressed to the provider, b:8080, and the policy of
        # b's group (tcp/8080 in: deny) applies to it: the trace names that rule
        after = [s["tableName"] for s in res["steps"][res["steps"].index(dnat) + 1 :]]
        assert after[:2] == ["dst_group", "policy"]
        assert res["policy"]["verdict"] == "deny" and res["policy"]["rule"]["ruleId"] == "1"
        assert res["final"]["kind"] == "drop" and res["final"]["table"] == "policy"
    finally:
        bed.etcdctl("del", keys.SERVICE_LB + sid)
        bed.etcdctl("del", keys.PROVIDER + sid)


def test_off_subnet_uses_router_mac(bed, eps):
    res = trace_json(bed, bed.hosts[1], "tra", "198.51.100.10")
    assert res["destination"]["mac"] == "00:00:11:11:11:11"
    assert [s["tableName"] for s in res["steps"]][0] == "input"


def test_bad_input_clear_errors(bed, eps):
    h1, h2 = bed.hosts[1], bed.hosts[2]
    ib = eps["b"][0]
    cases = [
        (["tra"], 1, "Source endpoint and destination IP address required"),
        (["tra", "10.131.1.300"], 1, "Invalid destination IP address"),
        (["--proto", "sctp", "tra", ib["ip_address"]], 1, "Invalid protocol"),
        (["--proto", "tcp", "tra", ib["ip_address"]], 1, "needs --port"),
        (["--port", "80", "tra", ib["ip_address"]], 1, "A port needs --proto tcp or udp"),
        (["--agent", "h1:9090", "tra", ib["ip_address"]], 1, "Invalid agent URL"),
        (["--agent", h1.debug_url, "nosuchep", ib["ip_address"]], 3, "endpoint not found"),
        # the endpoint lives on h1: h2's agent says so and names the host to ask
        (["--agent", h2.debug_url, "tra", ib["ip_address"]], 3, "is on host h1, not on this host (h2)"),
        (["--agent", h1.debug_url, "tra", "10.131.1.250"], 3, "no endpoint has address 10.131.1.250"),
        (["--agent", "http://127.0.0.1:1", "tra", ib["ip_address"]], 2, "cannot reach the agent"),
    ]
    for args, code, msg in cases:
        r = netctl(bed, "trace", *args)
        assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr + r.stdout
    # the agent's REST refuses malformed bodies with a plain message, and stays up
    st, body = http_json("POST", h1.debug_url + "/debug/trace", {"endpoint": 5})
    assert st == 500 and "cannot unmarshal number" in str(body)
    st, body = http_json(
        "POST", h1.debug_url + "/debug/trace", {"endpoint": "x", "destination": "10.131.1.9"}
    )
    assert st == 500 and "not a local endpoint of host h1" in str(body)
    assert h1.netplugin.poll() is None
