"""Fallback flow programmer: a minimal Contiv-shaped L2 pipeline written with ``ovs-ofctl``.

Used only when the ofnet package's agent is not importable. It keeps the desired state (networks,
local endpoints, VTEPs, remote endpoints) and, after every change, rebuilds the bridge's whole flow set
and applies it with ``ovs-ofctl --bundle replace-flows`` (atomic), groups first (``mod-group
--may-create``), stale groups last. ARP is flooded (no proxy), there is no policy or service LB.

vxlan bridge, per network (local VLAN v, VNI n) -- the table numbers are ofnet's:
  0: multicast source -> drop; else -> 1
  1: in_port=<local port> -> push VLAN v -> 9; in_port=<vtep>,tun_id=n -> push VLAN v, metadata 1/1 -> 9; miss drop
  9: dl_vlan=v,dl_dst=<local mac> -> pop, output port; dl_vlan=v,dl_dst=<remote mac> -> pop, tun_id=n, output vtep;
     broadcast/multicast from local -> group 2v (local ports + all VTEPs); from a VTEP -> group 2v+1 (local only)
vlan bridge: a single NORMAL flow (access tags and the trunk uplink do the switching).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from typing import Any

from contivpy.common.errors import ExternalServiceError

log = logging.getLogger(__name__)


class OfctlFlows:
    def __init__(self, bridge: str, target: str, vxlan: bool) -> None:
        self.bridge = bridge
        self.target = target
        self.vxlan = vxlan
        self.nets: dict[str, Any] = {}
        self.local: dict[str, Any] = {}
        self.remote: dict[str, Any] = {}
        self.vteps: dict[str, int] = {}
        self._groups: set[int] = set()
        self._lock = asyncio.Lock()
        self._ok = False

    async def _ofctl(self, *args: str) -> str:
        p = await asyncio.create_subprocess_exec(
            "ovs-ofctl", "-O", "OpenFlow13", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await p.communicate()
        if p.returncode != 0:
            raise ExternalServiceError(f"ovs-ofctl {args[0]} failed: {err.decode().strip()}")
        return out.decode()

    async def start(self) -> None:
        pass

    async def wait_ready(self) -> None:
        await self._sync()
        self._ok = True

    async def stop(self) -> None:
        self._ok = False

    def connected(self) -> bool:
        return self._ok

    def _build(self) -> tuple[list[str], dict[int, str]]:
        if not self.vxlan:
            return ["table=0,priority=1,actions=NORMAL"], {}
        flows = [
            "table=0,priority=100,dl_src=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop",
            "table=0,priority=1,actions=goto_table:1",
            "table=1,priority=1,actions=drop",
            "table=9,priority=1,actions=drop",
        ]
        groups: dict[int, str] = {}
        for net in self.nets.values():
            v, n = net.vlan, net.vni
            push = f"push_vlan:0x8100,set_field:{0x1000 | v}->vlan_vid"
            locs = [ep for ep in self.local.values() if ep.net.id == net.id]
            for ep in locs:
                flows.append(f"table=1,priority=100,in_port={ep.ofport},actions={push},goto_table:9")
                flows.append(
                    f"table=9,priority=100,dl_vlan={v},dl_dst={ep.mac},actions=pop_vlan,output:{ep.ofport}"
                )
            for ofp in self.vteps.values():
                flows.append(
                    f"table=1,priority=100,in_port={ofp},tun_id={n},actions={push},write_metadata:0x1/0x1,goto_table:9"
                )
            for ep in self.remote.values():
                ofp = self.vteps.get(ep.vtep_ip)
                if ep.net.id == net.id and ofp:
                    flows.append(
                        f"table=9,priority=100,dl_vlan={v},dl_dst={ep.mac},"
                        f"actions=pop_vlan,set_field:{n}->tun_id,output:{ofp}"
                    )
            local_b = [f"bucket=output:{ep.ofport}" for ep in locs]
            vtep_b = [f"bucket=set_field:{n}->tun_id,output:{ofp}" for ofp in self.vteps.values()]
            ga, gl = 2 * v, 2 * v + 1
            groups[ga] = ",".join([f"group_id={ga},type=all", *local_b, *vtep_b])
            groups[gl] = ",".join([f"group_id={gl},type=all", *local_b])
            bc = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"
            flows.append(f"table=9,priority=10,dl_vlan={v},{bc},metadata=0x0/0x1,actions=pop_vlan,group:{ga}")
            flows.append(f"table=9,priority=10,dl_vlan={v},{bc},metadata=0x1/0x1,actions=pop_vlan,group:{gl}")
        return flows, groups

    async def _sync(self) -> None:
        async with self._lock:
            flows, groups = self._build()
            for g in groups.values():
                await self._ofctl("--may-create", "mod-group", self.target, g)
            fd, path = tempfile.mkstemp(prefix="tnp-flows-")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write("\n".join(flows) + "\n")
                await self._ofctl("--bundle", "replace-flows", self.target, path)
            finally:
                os.unlink(path)
            for gid in self._groups - set(groups):
                await self._ofctl("del-groups", self.target, f"group_id={gid}")
            self._groups = set(groups)

    async def add_network(self, net) -> None:
        self.nets[net.id] = net
        await self._sync()

    async def remove_network(self, net) -> None:
        self.nets.pop(net.id, None)
        await self._sync()

    async def add_local_endpoint(self, ep) -> None:
        self.local[ep.id] = ep
        await self._sync()

    async def remove_local_endpoint(self, ep) -> None:
        self.local.pop(ep.id, None)
        await self._sync()

    async def add_vtep(self, ip: str, ofport: int) -> None:
        self.vteps[ip] = ofport
        await self._sync()

    async def remove_vtep(self, ip: str) -> None:
        self.vteps.pop(ip, None)
        await self._sync()

    async def add_remote_endpoint(self, ep) -> None:
        self.remote[ep.id] = ep
        await self._sync()

    async def remove_remote_endpoint(self, ep) -> None:
        self.remote.pop(ep.id, None)
        await self._sync()

    def inspect(self) -> dict[str, Any]:
        return {
            "DpName": "vxlan" if self.vxlan else "vlan",
            "IsConnected": self._ok,
            "VtepTable": dict(self.vteps),
            "EndpointDb": {
                **{
                    k: {"EndpointID": k, "IpAddr": e.ip, "MacAddrStr": e.mac, "PortNo": e.ofport}
                    for k, e in self.local.items()
                },
                **{
                    k: {"EndpointID": k, "IpAddr": e.ip, "MacAddrStr": e.mac, "OriginatorIp": e.vtep_ip}
                    for k, e in self.remote.items()
                },
            },
        }
