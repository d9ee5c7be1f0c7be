"""The iptables adapter (netplugin/iptables.py) against real iptables-nft, in a network namespace of the
test's own (``tnpipt<pid>``): converging is idempotent, removes stale (old pvtSubnet) and duplicated tagged
rules, never touches a foreign rule, and ``remove_all`` leaves only foreign rules."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from contivpy.common.errors import ValidationError
from contivpy.netplugin import iptables

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables is not installed"),
]

MASQ = "-A POSTROUTING -s {} ! -o contivh0 -m comment --comment contivpy -j MASQUERADE"
JUMP = "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment contivpy -j CONTIV-NODEPORT"


@pytest.fixture
def ns(monkeypatch):
    name = f"tnpipt{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    monkeypatch.setattr(iptables, "IPTABLES", ("ip", "netns", "exec", name, "iptables"))
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def nat(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


async def test_converge_idempotent_stale_duplicate_and_foreign(ns):
    assert await iptables.ensure("172.19.0.0/16") == {"added": 2, "removed": 0}
    assert await iptables.ensure("172.19.0.0/16") == {"added": 0, "removed": 0}
    rules = nat(ns, "-S").splitlines()
    assert rules.count(MASQ.format("172.19.0.0/16")) == 1 and rules.count(JUMP) == 1
    assert "-N CONTIV-NODEPORT" in rules
    # a foreign rule and a duplicate of ours; then a new pvtSubnet
    nat(ns, "-A", "POSTROUTING", "-s", "10.9.9.0/24", "-j", "MASQUERADE")
    nat(ns, *MASQ.format("172.19.0.0/16").split())
    assert await iptables.ensure("172.20.0.0/16") == {"added": 1, "removed": 2}
    rules = nat(ns, "-S").splitlines()
    assert MASQ.format("172.20.0.0/16") in rules and MASQ.format("172.19.0.0/16") not in rules
    assert "-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE" in rules
    with pytest.raises(ValidationError):
        await iptables.ensure("not-a-subnet")
    # clean uninstall: only the foreign rule stays, our chain is gone
    assert await iptables.remove_all() == 2
    rules = nat(ns, "-S").splitlines()
    assert [r for r in rules if r.startswith(("-A", "-N"))] == ["-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE"]
    assert await iptables.remove_all() == 0
