"""Concurrent OVSDB port additions share one transaction (netplugin/ovsdb.py, "Group commit"),
and a request that fails (its bridge is missing) fails only its own caller.

Real ovsdb-server + ovs-vswitchd (userspace datapath) in a private netns; rows read back with ovs-vsctl.
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.errors import ExternalServiceError
from contivpy.netplugin.ovsdb import OvsdbClient

pytestmark = [pytest.mark.root, pytest.mark.ovs]

OVS_PREFIX = "tgc"


async def test_concurrent_port_adds_share_transactions_and_a_bad_one_fails_alone(ovs_instance):
    ovs = ovs_instance
    client = OvsdbClient(f"unix:{ovs.dir}/db.sock")
    try:
        await client.ensure_bridge("tgcBr", None, datapath_type="netdev")
        await client.ensure_bridge("tgcBr2", None, datapath_type="netdev")
        ovs.vsctl("add-port", "tgcBr2", "tgcMoved", "--", "set", "port", "tgcMoved", "tag=9")
        b0 = client._adds.batches

        def add(bridge, name, tag):
            return client.ensure_port(
                bridge, name, tag=tag, vlan_mode="access", external_ids={"endpoint-id": name}
            )

        res = await asyncio.gather(
            *(add("tgcBr", f"tgcp{i}", 10 + i) for i in range(8)),
            add("tgcNoSuchBr", "tgcLost", 3),
            add("tgcBr", "tgcMoved", 7),  # a port of another bridge: moved in the same transaction
            return_exceptions=True,
        )
        assert res[:8] == [True] * 8 and res[9] is True, res
        assert isinstance(res[8], ExternalServiceError) and "tgcNoSuchBr does not exist" in str(res[8])
        batches = client._adds.batches - b0
        assert batches <= 3, batches  # the first alone, the others in the next one (or two)
        assert sorted(ovs.vsctl("list-ports", "tgcBr").split()) == sorted(
            [f"tgcp{i}" for i in range(8)] + ["tgcMoved"]
        )
        assert ovs.vsctl("list-ports", "tgcBr2").split() == []
        for i in range(8):
            assert ovs.vsctl("get", "port", f"tgcp{i}", "tag").strip() == str(10 + i)
            assert ovs.vsctl("get", "port", f"tgcp{i}", "external_ids:endpoint-id").strip() == f"tgcp{i}"
        assert ovs.vsctl("get", "port", "tgcMoved", "tag").strip() == "7"
        assert "tgcLost" not in ovs.vsctl("--columns=name", "list", "port")
        # unchanged settings: nothing written
        b1 = client._adds.batches
        assert await add("tgcBr", "tgcp0", 10) is False
        assert client._adds.batches == b1
    finally:
        await client.close()
