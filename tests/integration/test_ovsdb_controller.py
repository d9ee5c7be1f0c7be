"""The agent's bridges tolerate a busy controller: Controller ``inactivity_probe`` (netplugin/ovsdb.py).

Found by bench/bench_mesh.py at 100 agents on 2 cores: with OVS's default 5 s probe, vswitchd
dropped the OpenFlow connection of agents too busy to answer ("no response to inactivity probe
after 5 seconds, disconnecting", 1,030 times in one run), and each reconnect re-synced every flow.
Real OVS (userspace datapath) in a private netns; the row is read back with ovs-vsctl.
"""

from __future__ import annotations

from contivpy.netplugin.ovsdb import CONTROLLER_INACTIVITY_PROBE_MS, OvsdbClient

OVS_PREFIX = "tpc"


def _controller(ovs, bridge: str) -> dict[str, str]:
    out = ovs.vsctl("--columns=target,max_backoff,inactivity_probe", "list", "controller", bridge)
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines() if ":" in ln)}


async def test_new_and_existing_bridge_get_the_long_inactivity_probe(ovs_instance):
    ovs = ovs_instance
    ovs.vsctl("add-br", "tpcOld", "--", "set", "bridge", "tpcOld", "datapath_type=netdev")
    ovs.vsctl("set-controller", "tpcOld", "tcp:127.0.0.1:6699")  # an existing bridge with OVS defaults
    assert _controller(ovs, "tpcOld")["inactivity_probe"] == "[]"
    client = OvsdbClient(f"unix:{ovs.dir}/db.sock")
    try:
        await client.ensure_bridge("tpcNew", "tcp:127.0.0.1:6698", datapath_type="netdev")
        await client.ensure_bridge("tpcOld", "tcp:127.0.0.1:6699", datapath_type="netdev")
    finally:
        await client.close()
    assert CONTROLLER_INACTIVITY_PROBE_MS >= 30_000
    for br, target in (("tpcNew", "6698"), ("tpcOld", "6699")):
        row = _controller(ovs, br)
        assert row["target"] == f'"tcp:127.0.0.1:{target}"'
        assert row["inactivity_probe"] == str(CONTROLLER_INACTIVITY_PROBE_MS)
        assert row["max_backoff"] == "1000"
