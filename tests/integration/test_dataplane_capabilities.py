"""netplugin runs with only the capabilities its systemd unit leaves it (systemd/netplugin.service:
``CapabilityBoundingSet=CAP_NET_ADMIN``, ``NoNewPrivileges=yes``; docs/deployment.md).

The unit's bounding set is reproduced with ``setpriv``: for a root process without file
capabilities, the permitted and effective sets after exec are the bounding set, which is what
systemd gives the service. Two hosts of the test bed then build a network, endpoints on both and
cross-host traffic: everything the agent does in production on a host (veth pairs, MTU/MAC,
SIOCETHTOOL, OVSDB, OpenFlow, etcd, the plugin socket) works without CAP_SYS_ADMIN, CAP_NET_RAW or
CAP_DAC_OVERRIDE.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.testbed import http_json

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

ROOT = Path(__file__).resolve().parents[2]
CAP_NET_ADMIN = 12


def unit_caps() -> list[str]:
    for line in (ROOT / "systemd/netplugin.service").read_text().splitlines():
        if line.startswith("CapabilityBoundingSet="):
            return line.split("=", 1)[1].split()
    raise AssertionError("no CapabilityBoundingSet in netplugin.service")


def caps_of(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs"):
            out[k] = int(v.strip(), 16) if k != "NoNewPrivs" else int(v)
    return out


def test_netplugin_works_with_the_units_capabilities_only():
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is absent")
    from tests.fixtures.testbed import Testbed

    caps = unit_caps()
    assert caps == ["CAP_NET_ADMIN"]
    keep = ",".join("+" + c.removeprefix("CAP_").lower() for c in caps)
    wrap = ["setpriv", f"--bounding-set=-all,{keep}", "--inh-caps=-all", "--no-new-privs", "--"]
    with Testbed(2) as bed:
        for h in bed.hosts.values():
            h.netplugin_wrap = wrap
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        for h in (h1, h2):
            c = caps_of(h.netplugin.pid)
            assert c == {"CapPrm": 1 << CAP_NET_ADMIN, "CapEff": 1 << CAP_NET_ADMIN,
                         "CapBnd": 1 << CAP_NET_ADMIN, "NoNewPrivs": 1}, c  # fmt: skip

        bed.create_network("capnet", "10.106.1.0/24")
        eps = []
        for h, ep in ((h1, "cap1"), (h2, "cap2")):
            st, info = http_json(
                "POST", h.debug_url + "/debug/endpoints",
                {"tenant": "default", "network": "capnet", "group": "", "endpointID": ep}, timeout=30,
            )  # fmt: skip
            assert st == 200, (info, h.log_tail())
            eps.append(h.container(info["port_name"], f"{info['ip_address']}/{info['prefix_len']}"))
        assert eps[0].ping(eps[1].ip), "ping h1->h2 failed with the unit's capabilities"
        assert eps[1].tcp_ok(eps[0]), "TCP h2->h1 failed with the unit's capabilities"
        for h, ep in ((h1, "cap1"), (h2, "cap2")):
            st, out = http_json("DELETE", f"{h.debug_url}/debug/endpoints/default/capnet/{ep}", timeout=30)
            assert st == 200, out
        for h in (h1, h2):
            assert h.netplugin.poll() is None, h.log_tail()
            assert "Operation not permitted" not in h.log_tail(200)
