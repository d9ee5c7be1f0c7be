"""Service node ports and the host as a service client, on the real test bed (docs/ovs-pipeline.md
"Host access", "Infra networks and contivh1"; netplugin/iptables.py).

Two hosts with the infra network ``contivh1``, the "outside" namespace behind the router, one TCP provider
container on host 2 (a server answering its name and the peer address it sees). The service is created
with the real ``netctl service create --node-port`` (netmaster stores ``nodeports``); its provider list is
written into etcd (debug endpoints carry no labels). Checks:
- the cluster-IP range (``SVC_SUBNET`` of ``--k8s-config``) is routed through contivh1, and the host reaches
  the VIP through it (bridge mode: the contivh1 port is a routed service
  client, its reply is routed back to the port);
- from the outside namespace, TCP to <host address>:<nodePort> of either host reaches the provider, which
  sees the host's contivh1 address (MASQUERADE of the DNATed connection);
- the tagged rules exist once; an agent restart converges a duplicate and a stale rule away; ``service rm``
  removes them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from contivpy.model import keys
from contivpy.model.state import ProviderState
from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep
from tests.integration.test_dataplane_infra import addr
from tests.integration.test_dataplane_service import connect_from as connect
from tests.integration.test_dataplane_service import servers

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd, pytest.mark.timeout(400)]

NODE_PORT, SVC_PORT, PROV_PORT = 30080, 80, 8080
SID = "npsvc:default"
SVC_SUBNET, VIP = "10.134.1.240/28", "10.134.1.241"  # cluster-IP range inside the service network


def nat(h) -> list[str]:
    return h.exec("iptables", "-w", "-t", "nat", "-S").splitlines()


def np_rules(h) -> list[str]:
    return [r for r in nat(h) if "--comment contivpy-nodeport" in r]


def test_node_port_and_host_to_vip():
    with Testbed(2) as bed, servers() as srv:
        _run(bed, srv)


def _run(bed, srv):
    bed.add_outside()
    k8s_cfg = bed.dir / "contiv.json"  # no API server: only the cluster-IP range (SVC_SUBNET)
    k8s_cfg.write_text(json.dumps({"SVC_SUBNET": SVC_SUBNET}))
    extra = ("--k8s-config", str(k8s_cfg))
    bed.start_all(*extra)
    h1, h2 = bed.hosts[1], bed.hosts[2]
    bed.create_network("npnet", "10.134.1.0/24", gateway="10.134.1.254")
    bed.create_network("contivh1", "10.134.100.0/24", nwType="infra")
    via = {}
    for h in (h1, h2):
        wait_for(lambda h=h: addr(h, "contivh1"), 15, what=f"contivh1 address on {h.name}")
        via[h.idx] = addr(h, "contivh1")
        want = f"{SVC_SUBNET} via {via[h.idx]} dev contivh1 proto 77"
        wait_for(
            lambda h=h, want=want: want in h.exec("ip", "-4", "route"), 15, what="cluster-IP range route"
        )
    info, pv = make_ep(h2, "npnet", "npp")
    srv.start("prov", pv.name)

    # bad node ports are refused by netmaster with the rule, nothing stored
    bad = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", bed.netmaster_url, "service", "create", "npbad",
         "--network", "npnet", "--selector", "app=np", "--port", "80:8080:TCP", "--node-port", "30081:81:TCP"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "Invalid NodePort mapping" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
    bed.netctl(
        "service", "create", "npsvc", "--network", "npnet", "--selector", "app=np",
        "--port", f"{SVC_PORT}:{PROV_PORT}:TCP", "--node-port", f"{NODE_PORT}:{SVC_PORT}:TCP", "--preferred-ip", VIP,
    )  # fmt: skip
    st = bed.etcdctl("get", keys.SERVICE_LB + SID, "--print-value-only")
    assert f'"nodeports":["{NODE_PORT}:{SVC_PORT}:TCP"]' in st, st
    vip = json.loads(st)["ipaddress"]
    assert vip == VIP
    bed.etcdctl("put", keys.PROVIDER + SID, ProviderState(SID, [info["ip_address"]]).to_json())
    dnat = (
        f"-A CONTIV-NODEPORT -p tcp -m tcp --dport {NODE_PORT} -m comment --comment contivpy-nodeport "
        f"-j DNAT --to-destination {vip}:{SVC_PORT}"
    )
    masq = "-A POSTROUTING -o contivh1 -m conntrack --ctstate DNAT -m comment --comment contivpy-nodeport -j MASQUERADE"
    for h in (h1, h2):
        wait_for(lambda h=h: np_rules(h) == [masq, dnat], 15, what=f"node port rules on {h.name}")
        wait_for(lambda h=h: has_flow(h, "table=3", "priority=10,", f"nw_dst={vip}"), 15, what="watch flow")

    # the host reaches the VIP through the contivh1 route of the cluster-IP range (provider remote for
    # host 1, local for host 2)
    assert f"{SVC_SUBNET} via {via[1]} dev contivh1" in h1.exec("ip", "-4", "route", "show", "match", VIP)
    assert connect(h1.netns, vip, SVC_PORT) == f"{vip} {SVC_PORT} prov {via[1]}"
    assert connect(h2.netns, vip, SVC_PORT) == f"{vip} {SVC_PORT} prov {via[2]}"
    assert has_flow(h1, "table=6", "priority=100", f"nw_dst={via[1]}", "ct(table=9,zone=65000,nat)")

    # outside -> <host>:<nodePort> -> the provider, which sees the host's contivh1 address
    outside = "tnpo"
    assert connect(outside, h1.ip, NODE_PORT) == f"{h1.ip} {NODE_PORT} prov {via[1]}"
    assert connect(outside, h2.ip, NODE_PORT) == f"{h2.ip} {NODE_PORT} prov {via[2]}"

    # restart converges: a duplicate and a stale rule (a service deleted while the agent was down) go
    h1.stop_netplugin()
    h1.exec("iptables", "-w", "-t", "nat", *dnat.split())
    stale = dnat.replace(str(NODE_PORT), "30099")
    h1.exec("iptables", "-w", "-t", "nat", *stale.split())
    h1.start_netplugin(*extra)
    wait_for(lambda: np_rules(h1) == [masq, dnat], 20, what="node port rules converged after restart")
    assert connect(outside, h1.ip, NODE_PORT) == f"{h1.ip} {NODE_PORT} prov {via[1]}"

    # the service goes: so do its rules
    bed.netctl("service", "rm", "npsvc")
    for h in (h1, h2):
        wait_for(lambda h=h: np_rules(h) == [], 15, what=f"node port rules gone on {h.name}")
        assert "-N CONTIV-NODEPORT" in nat(h)
        assert (
            "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment contivpy -j CONTIV-NODEPORT"
            in nat(h)
        )
