"""netplugin runs with only what its systemd unit leaves it (systemd/netplugin.service:
``CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN``, ``NoNewPrivileges=yes``, ``ProtectSystem=full``,
``ProtectHome=yes``; docs/deployment.md).

systemd is not PID 1 here, so the unit's sandbox is rebuilt around the agent of each test-bed host:
``unshare --mount --propagation slave`` (as systemd: mounts made later on the host, such as a
pod's /run/netns entry, are seen inside) with ``/usr``, ``/boot`` and ``/etc`` remounted read-only and ``/home``, ``/root`` hidden, then ``setpriv`` with the unit's bounding set and
``no_new_privs`` (for a root process without file capabilities the permitted and effective sets
after exec are the bounding set, as systemd gives the service). ``PrivateTmp`` is left out: the test
bed keeps its OVS sockets under /tmp. Two hosts then build a network, endpoints on both and
cross-host traffic: what the agent does on a host (veth pairs, MTU/MAC, SIOCETHTOOL, OVSDB,
OpenFlow, etcd, the plugin socket, host access: contivh0, ip_forward and the iptables nat rules, and
a CNI ADD that configures a pod's netns) works without CAP_SYS_ADMIN, CAP_NET_RAW or CAP_DAC_OVERRIDE
and without writing to the protected paths.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.cni import PodNs, cni, net_conf
from tests.fixtures.testbed import http_json, wait_for

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

ROOT = Path(__file__).resolve().parents[2]
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


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


def test_netplugin_works_in_the_units_sandbox():
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        pytest.skip("setpriv/unshare (util-linux) are absent")
    from tests.fixtures.testbed import Testbed

    caps = unit_caps()
    assert caps == ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    want = (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN)
    keep = ",".join("+" + c.removeprefix("CAP_").lower() for c in caps)
    sandbox = (
        "set -e; "
        "for d in /usr /boot /etc; do "
        '[ -d "$d" ] || continue; mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done; '
        'for d in /home /root; do [ -d "$d" ] && mount -t tmpfs -o ro,mode=0 tpcap "$d"; done; '
        'exec "$@"'
    )
    wrap = [
        "unshare", "--mount", "--propagation", "slave", "sh", "-c", sandbox, "sh",
        "setpriv", f"--bounding-set=-all,{keep}", "--inh-caps=-all", "--no-new-privs", "--",
    ]  # fmt: skip
    with Testbed(2) as bed:
        for h in bed.hosts.values():
            h.netplugin_wrap = wrap
            h.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")  # host access must turn it on itself
        bed.start_all()
        h1, h2 = bed.hosts[1], bed.hosts[2]
        for h in (h1, h2):
            mounts = Path(f"/proc/{h.netplugin.pid}/mounts").read_text().splitlines()
            ro = {m.split()[1] for m in mounts if "ro" in m.split()[3].split(",")}
            assert {"/usr", "/etc"} <= ro, ro
            c = caps_of(h.netplugin.pid)
            assert c == {"CapPrm": want, "CapEff": want, "CapBnd": want, "NoNewPrivs": 1}, c

        for h in (h1, h2):  # host access under the unit's capabilities
            wait_for(lambda h=h: "172.19.255.254/16" in h.exec("ip", "-o", "addr", "show", "contivh0", check=False),
                     20, what=f"contivh0 on {h.name}")  # fmt: skip
            assert h.exec("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
            nat = h.exec("iptables", "-w", "-t", "nat", "-S")
            assert (
                "-A POSTROUTING -s 172.19.0.0/16 ! -o contivh0 -m comment --comment contivpy -j MASQUERADE"
                in nat
            )
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
        # the CNI server enters the pod's netns (setns needs CAP_SYS_ADMIN)
        pod = PodNs("tnpcap1")
        try:
            r = cni(h1, "ADD", "ctr-cap1", pod.path, conf=net_conf(h1, args={"io.contiv.network": "capnet"}))
            assert r.rc == 0, (r, h1.log_tail())
            addr = r.out["ips"][0]["address"].split("/")[0]
            assert addr in pod.exec("ip", "-o", "addr", "show", "dev", "eth0")
            assert pod.ping(eps[1].ip), "CNI pod on h1 -> endpoint on h2"
            assert cni(h1, "DEL", "ctr-cap1", pod.path, conf=net_conf(h1)).rc == 0
        finally:
            pod.delete()
        assert eps[1].tcp_ok(eps[0]), "TCP h2->h1 failed with the unit's capabilities"
        for h, ep in ((h1, "cap1"), (h2, "cap2")):
            st, out = http_json("DELETE", f"{h.debug_url}/debug/endpoints/default/capnet/{ep}", timeout=30)
            assert st == 200, out
        for h in (h1, h2):
            assert h.netplugin.poll() is None, h.log_tail()
            assert "Operation not permitted" not in h.log_tail(200)
