"""One key that keeps failing does not stall the agent (issue 7, defect 11).

A VTEP registration that OVS cannot take (``remote_ip`` is not an address: OVSDB/vswitchd refuses the
VXLAN interface) is written to etcd. The agent retries that one key with backoff; meanwhile a remote
endpoint added afterwards is programmed, a delete is carried out, a new network is programmed, the
debug API shows the failing key, and deleting the bad registration clears it (port gone, key no longer
retrying). Real etcd, netmaster, two netplugins, OVS in namespaces.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.testbed import Testbed, http_json, wait_for
from tests.integration.test_dataplane_basic import delete_ep, has_flow, make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

BAD_PEER = "rkbad-peer"  # not an IP address: the VXLAN interface is refused by OVS
BAD_KEY = f"/contiv.io/service/netplugin.vtep/{BAD_PEER}:4789"


def reconcile_status(host) -> dict:
    st, body = http_json("GET", host.debug_url + "/inspect/reconcile")
    assert st == 200, body
    return body


def test_failing_key_does_not_block_other_keys_or_its_delete():
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("rk-a", "10.113.1.0/24")
        try:
            bed.etcdctl("put", BAD_KEY, json.dumps({"ServiceName": "netplugin.vtep", "HostAddr": BAD_PEER}))

            def failing():
                k = reconcile_status(h1)["vteps"].get(BAD_PEER)
                return k if k and k["state"] == "retrying" and k["attempts"] >= 2 else None

            st = wait_for(failing, 20, what="bad VTEP key retrying on h1")
            assert st["lastError"] and "Traceback" not in st["lastError"]
            assert st["nextRetryIn"] is not None and st["nextRetryIn"] >= 0

            # an endpoint added after the bad key is learnt by h1 (remote flows to h2's VTEP); h1
            # serves the network once it has an endpoint on it (netplugin/served.py)
            i1, c1 = make_ep(h1, "rk-a", "rk1")
            i2, c2 = make_ep(h2, "rk-a", "rk2")
            wait_for(
                lambda: has_flow(h1, "table=9", f"dl_dst={i2['mac_address']}"), 15, what="remote flow on h1"
            )
            assert c1.ping(c2.ip), "ping h1->h2 while a VTEP key keeps failing"
            # a new network is programmed (a local endpoint can only be plugged into a programmed one)
            bed.create_network("rk-b", "10.113.2.0/24")
            wait_for(
                lambda: reconcile_status(h1)["networks"].get("rk-b.default", {}).get("state") == "ok",
                15,
                what="rk-b programmed on h1",
            )
            ib, _ = make_ep(h1, "rk-b", "rkb1")
            assert has_flow(h1, "table=1", f"in_port={ib['ofport']}")
            # a delete is carried out
            h2.containers.remove(c2)
            delete_ep(h2, "rk-a", "rk2")
            wait_for(
                lambda: not has_flow(h1, "table=9", f"dl_dst={i2['mac_address']}"),
                15,
                what="remote flow removed",
            )
            assert reconcile_status(h1)["vteps"][BAD_PEER]["state"] in ("retrying", "pending")
            assert h1.netplugin.poll() is None
        finally:
            bed.etcdctl("del", BAD_KEY)
        # the delete of the bad key is carried out at once (not after its backoff): the key and its
        # half-made port go
        wait_for(lambda: BAD_PEER not in reconcile_status(h1)["vteps"], 15, what="bad VTEP key cleared")
        assert not any("rkbad" in p for p in h1.ports("contivVxlanBridge"))
        assert all(s["state"] == "ok" for r in reconcile_status(h1).values() for s in r.values())
