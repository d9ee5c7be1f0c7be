"""Agent restart and host membership: restart (SIGTERM and kill -9) keeps containers reachable and the
flow tables identical; a third host joining gets tunnels to both others, leaving removes them; an
unreachable OVSDB or etcd at start gives a clear error and retries (the agent does not die).
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from contivpy.netplugin.managers.vtep import REMOVE_GRACE
from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import has_flow, make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]


def snapshot(h) -> dict:
    return {
        "vxlan": h.flows("contivVxlanBridge"),
        "vlan": h.flows("contivVlanBridge"),
        "groups": sorted(h.ofctl("dump-groups", "contivVxlanBridge").splitlines()[1:]),
        "ports": h.ports("contivVxlanBridge") + h.ports("contivVlanBridge"),
    }


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_restart_keeps_reachability_and_flows(sig):
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("rnet", "10.110.1.0/24")
        i1, c1 = make_ep(h1, "rnet", "r1")
        i2, c2 = make_ep(h2, "rnet", "r2")
        _, c1b = make_ep(h1, "rnet", "r1b")
        assert c1.ping(c2.ip) and c1.ping(c1b.ip)
        wait_for(lambda: has_flow(h1, f"dl_dst={i2['mac_address']}"), 10, what="remote flow")
        before1, before2 = snapshot(h1), snapshot(h2)
        drv_before = json.loads(bed.etcdctl("get", "/contiv.io/oper/ovs-driver/h1", "--print-value-only"))

        h1.stop_netplugin(sig)
        assert c1.ping(c2.ip, budget=3), "data plane must keep working while the agent is down"
        h1.start_netplugin()
        # converged: identical flows/groups/ports on both hosts, same ofports, counter untouched
        wait_for(lambda: snapshot(h1) == before1, 15, what="h1 flow table identical after restart")
        assert snapshot(h2) == before2
        drv_after = json.loads(bed.etcdctl("get", "/contiv.io/oper/ovs-driver/h1", "--print-value-only"))
        assert drv_after == drv_before
        assert c1.ping(c2.ip) and c2.ping(c1.ip) and c1.ping(c1b.ip)
        assert c1.tcp_ok(c2, port=7401) and c2.tcp_ok(c1, port=7402)
        # the restarted agent still knows its endpoints: a new one gets the next port, and deletes work
        i3, c3 = make_ep(h1, "rnet", "r3")
        assert int(i3["port_name"][5:]) == drv_before["currPortNum"] + 1
        assert c3.ping(c2.ip)


def test_third_host_joins_and_leaves():
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("jnet", "10.111.1.0/24")
        _, c1 = make_ep(h1, "jnet", "j1")
        h3 = bed.add_host(3)
        vx = {h.idx: "vxif" + h.ip.replace(".", "") for h in (h1, h2, h3)}
        for h in (h1, h2):
            wait_for(lambda h=h: vx[3] in h.ports("contivVxlanBridge"), 15, what=f"tunnel to h3 on {h.name}")
        assert {vx[1], vx[2]} <= set(h3.ports("contivVxlanBridge"))
        i3, c3 = make_ep(h3, "jnet", "j3")
        assert c3.ping(c1.ip) and c1.ping(c3.ip)
        # leaving: the agent stops and its registration lease (10 s TTL) expires; the peers keep the
        # tunnel for REMOVE_GRACE more seconds (a restarting agent would be back by then), then remove it
        h3.stop_netplugin(signal.SIGKILL)
        key = f"/contiv.io/service/netplugin.vtep/{h3.ip}:4789"
        wait_for(
            lambda: not bed.etcdctl("get", key, "--print-value-only").strip(), 15, 0.2, "h3's lease to expire"
        )
        t0 = time.monotonic()
        time.sleep(2)
        assert vx[3] in h1.ports("contivVxlanBridge") and vx[3] in h2.ports("contivVxlanBridge")
        for h in (h1, h2):
            wait_for(
                lambda h=h: vx[3] not in h.ports("contivVxlanBridge"),
                REMOVE_GRACE + 10,
                what=f"tunnel to h3 gone on {h.name}",
            )
        assert REMOVE_GRACE - 1 < time.monotonic() - t0 < REMOVE_GRACE + 10
        assert vx[2] in h1.ports("contivVxlanBridge")


def test_unreachable_ovsdb_and_etcd_at_start():
    with Testbed(1) as bed:
        h = bed.hosts[1]
        # OVSDB socket that does not exist: clear error, keeps retrying, never exits
        h.start_netplugin("--ovsdb", f"unix:{h.dir}/missing.sock", wait=False)
        wait_for(lambda: "cannot connect to OVSDB" in h.log_tail(50), 15, what="OVSDB error logged")
        assert h.netplugin.poll() is None
        assert "Traceback" not in h.log_tail(200)
        h.stop_netplugin()
        # etcd unreachable: clear error, keeps retrying
        h.start_netplugin("--etcd-endpoints", "http://192.168.213.254:1", wait=False)
        wait_for(lambda: "cannot reach the state store" in h.log_tail(50), 20, what="etcd error logged")
        assert h.netplugin.poll() is None
        h.stop_netplugin()
        # both fine again -> starts normally
        h.start_netplugin()


def test_seed_command_line_starts_without_vlan_if():
    """`netplugin --etcd-endpoints ... --mode docker --netmode vlan --fwdmode bridge` (+ test bed OVS flags)."""
    with Testbed(1) as bed:
        h = bed.hosts[1]
        h.start_netplugin(uplink=False)
        assert "no --vlan-if given in vlan mode" in h.log_tail(50)
        # no uplink; only the vlan bridge's host port (docs/ovs-pipeline.md, "Host access", vlan bridge)
        wait_for(lambda: h.ports("contivVlanBridge") == ["contivh0v"], 10, what="contivh0v only")
        assert h.vsctl("get", "bridge", "contivVxlanBridge", "fail_mode").strip() == "secure"
        assert h.vsctl("get", "bridge", "contivVlanBridge", "datapath_type").strip() == "netdev"
        ctl = h.vsctl("get-controller", "contivVlanBridge").strip()
        assert ctl == "tcp:127.0.0.1:6634"
        # service registration with the original's keys and value (registered concurrently with
        # the bridges: the agent may answer /inspect/driver before its keys are written)
        vtep_key = f"/contiv.io/service/netplugin.vtep/{h.ip}:4789"
        wait_for(lambda: bed.etcdctl("get", vtep_key, "--print-value-only").strip(), 15, what="vtep key")
        wait_for(
            lambda: (
                len(bed.etcdctl("get", "--prefix", "/contiv.io/service/netplugin/", "--keys-only").split())
                == 2
            ),
            15,
            what="netplugin keys",
        )
        v = json.loads(
            bed.etcdctl("get", f"/contiv.io/service/netplugin.vtep/{h.ip}:4789", "--print-value-only")
        )
        assert v["ServiceName"] == "netplugin.vtep" and v["HostAddr"] == h.ip and v["Port"] == 4789
        keys_ = bed.etcdctl("get", "--prefix", "/contiv.io/service/netplugin/", "--keys-only").split()
        assert sorted(keys_) == [
            f"/contiv.io/service/netplugin/{h.ip}:9002",
            f"/contiv.io/service/netplugin/{h.ip}:9003",
        ]
