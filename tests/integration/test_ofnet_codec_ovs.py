"""Our OpenFlow decoder on replies encoded by a real ovs-vswitchd (not by us).

Every flow and group shape the builders make is installed with ``ovs-ofctl add-flows`` /
``add-group`` from its canonical text, so OVS's own parser and encoder make the bytes; our
controller then reads them back with a flow-stats and a group-desc request (multipart replies,
NXM-named ``move`` operands, OVS's NAT range form) and must get the very values the text came
from. Also checks FEATURES, ECHO and an ERROR for a bad FLOW_MOD on the same connection.
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.ofnet import codec
from contivpy.ofnet.flows import Flow, Group, GroupAction, Output
from contivpy.ofnet.pipeline import MAC_DEST
from contivpy.ofnet.switch import OfController
from tests.fixtures.ofnet_shapes import all_built_flows, flood_groups

pytestmark = [pytest.mark.ovs, pytest.mark.root, pytest.mark.timeout(120)]
OVS_PREFIX = "toc"
BR = "tocBridge"


@pytest.fixture
async def switch(ovs_instance):
    ctl = OfController(BR, sock=ovs_instance.listen_socket(0), echo_interval=0.5, echo_timeout=5)
    await ctl.start()
    try:
        await asyncio.to_thread(ovs_instance.add_bridge, BR, ctl.port)
        sw = await ctl.wait_connected(20)
        yield ovs_instance, sw
    finally:
        await ctl.stop()


async def test_replies_encoded_by_ovs_decode_to_the_built_values(switch, tmp_path):
    ovs, sw = switch
    assert sw.dpid != 0 and sw.n_tables >= 11  # FEATURES_REPLY decoded
    flows = all_built_flows()
    gids = {a.group_id for f in flows for a in f.actions if isinstance(a, GroupAction)}
    groups = flood_groups() + [Group(g, ((Output(1),),)) for g in sorted(gids)]
    for g in groups:
        await asyncio.to_thread(ovs.ofctl, "add-group", BR, str(g))
    txt = tmp_path / "flows.txt"
    txt.write_text("".join(f"cookie={f.cookie:#x}," + f.text(names=False) + "\n" for f in flows))
    await asyncio.to_thread(ovs.ofctl, "add-flows", BR, str(txt))
    want = {f.key: f for f in flows}  # same key twice: the later add replaces the earlier one
    stats = await sw.flow_stats()
    assert len(stats) == len(want)
    got = {(f := codec.flow_from_stats(s)).key: f for s in stats}
    assert got == want
    descs = await sw.group_desc()
    assert sorted((codec.group_from_desc(d) for d in descs), key=lambda g: g.group_id) == sorted(
        groups, key=lambda g: g.group_id
    )
    # only our cookies, through the cookie mask of the request
    one = list(want.values())[5]
    only = await sw.flow_stats(one.cookie, (1 << 64) - 1)
    assert [codec.flow_from_stats(s) for s in only] == [one]
    # echo round trip, then an error for a FLOW_MOD OVS refuses
    await sw.request(codec.echo_request(b"ping"), 5)
    bad = Flow(MAC_DEST, 7).with_cookie(1)
    raw = bytearray(codec.encode_flow_mod(bad, codec.ADD, 1))
    raw[24] = 0xFF  # table id 255 (OFPTT_ALL) is not a table a flow can be added to
    errs = await sw.batch([(0x7777, bytes(raw[:4]) + (0x7777).to_bytes(4, "big") + bytes(raw[8:]))])
    assert (
        len(errs) == 1 and errs[0][0] == 0x7777 and errs[0][3] == "OFPET_FLOW_MOD_FAILED code=2"
    )  # BAD_TABLE_ID
    assert not sw.closed
