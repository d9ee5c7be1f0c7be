"""VRF ids survive an agent restart (netplugin/vrf.py, docs/ovs-pipeline.md "VRF ids").

Two tenants whose networks replay in the opposite order of their creation (etcd key order: ``anet.vat``
before ``znet.vzt``, created second): the ids are the ones given at first sight and recorded in
``/contiv.io/oper/ovs-driver/<host>``; a restart (SIGTERM and kill -9) leaves ``ovs-ofctl dump-flows``
identical (without counters) and traffic flowing in both tenants; the last network of a tenant leaving
releases its id, which the next tenant reuses.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.fixtures.testbed import Testbed, wait_for
from tests.integration.test_dataplane_basic import delete_ep, make_ep

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

VRF_MASK = 0xFF00000000


def vrf_ids(bed, host) -> dict:
    v = bed.etcdctl("get", f"/contiv.io/oper/ovs-driver/{host.name}", "--print-value-only").strip()
    return json.loads(v).get("vrfIds", {}) if v else {}


def vrf_metadata(host) -> set[int]:
    """The VRF values the flows write or match (``write_metadata:V/M``, ``metadata=V/M`` with M & VRF)."""
    out = set()
    for f in host.flows():
        for part in f.replace(" ", ",").split(","):
            for prefix in ("write_metadata:", "metadata="):
                if part.startswith(prefix) and "/" in part:
                    v, m = (int(x, 16) for x in part[len(prefix) :].split("/"))
                    if m & VRF_MASK:
                        out.add((v & VRF_MASK) >> 32)
    return out


def test_vrf_ids_stable_across_restart():
    with Testbed(2) as bed:
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        bed.create_network("znet", "10.120.1.0/24", tenant="vzt")  # first seen: id 1
        wait_for(lambda: vrf_ids(bed, h1).get("vzt") == 1, 10, what="vzt's VRF id recorded")
        bed.create_network("anet", "10.120.2.0/24", tenant="vat")  # replays first after a restart
        wait_for(lambda: vrf_ids(bed, h1) == {"vzt": 1, "vat": 2}, 10, what="both VRF ids recorded")
        _, z1 = make_ep(h1, "znet", "vz1", tenant="vzt")
        _, z2 = make_ep(h2, "znet", "vz2", tenant="vzt")
        _, a1 = make_ep(h1, "anet", "va1", tenant="vat")
        _, a2 = make_ep(h2, "anet", "va2", tenant="vat")
        assert z1.ping(z2.ip) and a1.ping(a2.ip)
        assert vrf_metadata(h1) == {1, 2}
        before = {b: h1.flows(b) for b in ("contivVxlanBridge", "contivVlanBridge")}
        ids_before = vrf_ids(bed, h1)

        for sig in (signal.SIGTERM, signal.SIGKILL):
            h1.stop_netplugin(sig)
            h1.start_netplugin()
            for b, flows in before.items():
                wait_for(
                    lambda b=b, flows=flows: h1.flows(b) == flows, 15, what=f"{b} identical ({sig.name})"
                )
            assert vrf_ids(bed, h1) == ids_before
            assert z1.ping(z2.ip) and z2.ping(z1.ip) and a1.ping(a2.ip) and a2.ping(a1.ip)
            assert not z1.ping(a1.ip, budget=2), "tenants stay isolated"

        # the last network of tenant vzt leaves h1: its id is released, and reused by the next tenant
        delete_ep(h1, "znet", "vz1", tenant="vzt")
        delete_ep(h2, "znet", "vz2", tenant="vzt")
        bed.delete_network("znet", tenant="vzt")
        wait_for(lambda: vrf_ids(bed, h1) == {"vat": 2}, 15, what="vzt's VRF id released")
        bed.create_network("bnet", "10.120.3.0/24", tenant="vbt")
        wait_for(lambda: vrf_ids(bed, h1) == {"vat": 2, "vbt": 1}, 10, what="id 1 reused")
        _, b1 = make_ep(h1, "bnet", "vb1", tenant="vbt")
        _, b2 = make_ep(h2, "bnet", "vb2", tenant="vbt")
        assert b1.ping(b2.ip) and a1.ping(a2.ip)
        assert vrf_metadata(h1) == {1, 2}
