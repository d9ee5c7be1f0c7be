"""The endpoint veth pair as ``links.ensure_veth`` leaves it, read back with ``ethtool -k`` and ``ip``.

Run inside a private network namespace (``tlv<pid>``), removed at the end: the container side gets the
MTU, the MAC, GRO on (its stack receives coalesced segments) and, for the userspace datapath, TX
checksum offload off; the OVS side is up, NOARP, and keeps GRO off (the userspace datapath reads its
frames one by one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root]

SCRIPT = """
import asyncio, sys
from contivpy.netplugin import links
asyncio.run(links.ensure_veth("vport7", "vvport7", mac="02:02:0a:01:01:07", mtu=1400,
                              tx_off=sys.argv[1] == "1"))
"""


def _in_ns(ns: str, *cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True
    ).stdout


def _features(ns: str, dev: str) -> dict[str, str]:
    out = {}
    for line in _in_ns(ns, "ethtool", "-k", dev).splitlines()[1:]:
        k, _, v = line.strip().partition(": ")
        out[k] = v.split()[0] if v else ""
    return out


@pytest.fixture
def ns():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = f"tlv{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize("tx_off", [True, False])
def test_container_side_has_gro_and_the_datapaths_checksum_setting(ns, tx_off):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT, "1" if tx_off else "0"],
                   check=True, env=env, timeout=30)  # fmt: skip
    cont, ovs = _features(ns, "vport7"), _features(ns, "vvport7")
    assert cont["generic-receive-offload"] == "on"
    assert cont["tx-checksumming"] == ("off" if tx_off else "on")
    assert ovs["generic-receive-offload"] == "off"
    links = {ln["ifname"]: ln for ln in json.loads(_in_ns(ns, "ip", "-j", "link", "show"))}
    assert links["vport7"]["mtu"] == 1400 and links["vport7"]["address"] == "02:02:0a:01:01:07"
    assert "NOARP" in links["vvport7"]["flags"] and "UP" in links["vvport7"]["flags"]
    # idempotent: a second call on the existing pair changes nothing
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT, "1" if tx_off else "0"],
                   check=True, env=env, timeout=30)  # fmt: skip
    assert _features(ns, "vport7")["generic-receive-offload"] == "on"
