"""An agent receives only the endpoints of the networks it serves (netplugin/served.py), on the
two-host test bed (real etcd, netmaster, OVS, agents).

- endpoints on a network with no endpoint on host 2 produce no flows and no endpoint watch events
  there (``contiv_netplugin_watch_events_total{prefix="/contiv.io/oper/eps/"}`` on its /metrics);
- host 2's first endpoint on that network: when its create returns, host 2 already has the flows of
  host 1's endpoints, and the containers ping across;
- a restart of host 2's agent keeps them (the served set is derived from the restored endpoints);
- host 2's last endpoint leaving removes them, and later endpoints of host 1 do not reach it.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.fixtures.testbed import http_json, wait_for
from tests.integration import test_dataplane_basic as basic
from tests.integration.test_dataplane_basic import create_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

NET, SUBNET = "srvnet", "10.131.1.0/24"
LABEL = 'contiv_netplugin_watch_events_total{prefix="/contiv.io/oper/eps/"}'


def metric(host, label: str) -> float:
    with urllib.request.urlopen(host.debug_url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(label + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def ep_events(host) -> float:
    return metric(host, LABEL)


def make_ep(host, ep_id: str) -> dict:
    return create_ep(host, NET, ep_id)


def delete_ep(host, ep_id: str) -> None:
    basic.delete_ep(host, NET, ep_id)


def remote_flows(host, info: dict) -> list[str]:
    """host's flows for a remote endpoint: dst_group (table 4) on its IP, mac_dest (table 9) on its MAC."""
    return [
        f
        for f in host.flows()
        if ("table=4" in f and re.search(rf"nw_dst={re.escape(info['ip_address'])}[ ,]", f))
        or ("table=9" in f and f"dl_dst={info['mac_address']}" in f)
    ]


def test_endpoints_reach_only_the_hosts_that_serve_their_network():
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network(NET, SUBNET)
        ev0 = ep_events(h2)
        remote = [make_ep(h1, f"srv{i}") for i in range(3)]
        cs = [h1.container(i["port_name"], f"{i['ip_address']}/{i['prefix_len']}") for i in remote]
        wait_for(lambda: all(remote_flows(h1, i) for i in remote), 10, what="local flows on h1")
        # h2 has no endpoint on the network: nothing of them reaches it (h1's records are in etcd)
        assert bed.etcdctl("get", "--prefix", "--keys-only", f"/contiv.io/oper/eps/{NET}.default-").count(
            NET
        ) == len(remote)
        for i in remote:
            assert remote_flows(h2, i) == []
        assert ep_events(h2) == ev0
        assert metric(h2, "contiv_netplugin_served_networks") == 0
        assert metric(h1, "contiv_netplugin_served_networks") == 1

        # h2's first endpoint on the network: the flows are there when the create returns
        mine = make_ep(h2, "srvlocal")
        for i in remote:
            got = remote_flows(h2, i)
            assert any("table=4" in f for f in got) and any("table=9" in f for f in got), (i, got)
        assert ep_events(h2) - ev0 >= len(remote)  # the network's listing
        c2 = h2.container(mine["port_name"], f"{mine['ip_address']}/{mine['prefix_len']}")
        for c in cs:
            assert c2.ping(c.ip), f"h2 -> {c.ip}"
        assert cs[0].ping(c2.ip)

        # a restart converges to the same served set: the flows stay, traffic goes on
        h2.stop_netplugin()
        h2.start_netplugin()
        for i in remote:
            assert remote_flows(h2, i), i
        assert c2.ping(cs[1].ip)
        late = make_ep(h1, "srvlate")  # a new endpoint of the network reaches h2 by its watch
        wait_for(lambda: remote_flows(h2, late), 10, what="late endpoint's flows on h2")

        # the last local endpoint leaves: the network's remote endpoints go from h2
        delete_ep(h2, "srvlocal")
        wait_for(lambda: not any(remote_flows(h2, i) for i in [*remote, late]), 10, what="flows removed")
        ev1 = ep_events(h2)
        gone = make_ep(h1, "srvgone")
        wait_for(lambda: remote_flows(h1, gone), 10, what="local flows on h1")
        assert remote_flows(h2, gone) == [] and ep_events(h2) == ev1
        for ep in ("srv0", "srv1", "srv2", "srvlate", "srvgone"):
            delete_ep(h1, ep)


def test_routing_mode_serves_every_network_of_the_tenant():
    """Routing mode routes between a tenant's networks: host 2's endpoint on network B receives, by
    the time its create returns, host 1's endpoints on network A of the same tenant (and pings them),
    but not those of another tenant."""
    from tests.fixtures.testbed import Testbed

    with Testbed(2) as bed:
        bed.netctl("global", "set", "--fwd-mode", "routing")
        bed.start_all("--netmode", "vxlan", "--fwdmode", "routing")
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("srva", "10.132.1.0/24", gateway="10.132.1.254")
        bed.create_network("srvb", "10.132.2.0/24", gateway="10.132.2.254")
        bed.create_network("srvz", "10.132.3.0/24", tenant="srvt2", gateway="10.132.3.254")

        def mk(host, net, ep, tenant="default"):
            st, info = http_json(
                "POST",
                host.debug_url + "/debug/endpoints",
                {"tenant": tenant, "network": net, "endpointID": ep},
                timeout=30,
            )
            assert st == 200, info
            return info

        a1 = mk(h1, "srva", "ra1")
        z1 = mk(h1, "srvz", "rz1", tenant="srvt2")
        ca1 = h1.container(a1["port_name"], f"{a1['ip_address']}/{a1['prefix_len']}", a1["gateway"])
        wait_for(lambda: remote_flows(h1, a1) and remote_flows(h1, z1), 10, what="local flows on h1")
        assert remote_flows(h2, a1) == [] and remote_flows(h2, z1) == []
        b2 = mk(h2, "srvb", "rb2")
        assert any("table=4" in f for f in remote_flows(h2, a1)), h2.flows()
        assert remote_flows(h2, z1) == []  # another tenant: not served
        cb2 = h2.container(b2["port_name"], f"{b2['ip_address']}/{b2['prefix_len']}", b2["gateway"])
        assert cb2.ping(ca1.ip), "h2 (srvb) -> h1 (srva), routed"
        st, _ = http_json("DELETE", f"{h2.debug_url}/debug/endpoints/default/srvb/rb2", timeout=30)
        assert st == 200
        wait_for(lambda: not remote_flows(h2, a1), 10, what="srva's endpoints removed from h2")
