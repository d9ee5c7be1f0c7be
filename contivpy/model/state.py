"""Desired-state records netmaster writes under /contiv.io/state (and docknet oper), as JSON.

Field names and order are the original's (original-transcripts §5.2, §5.3); every field is
always emitted (the original's state structs have no ``omitempty``). Bitmaps stay encoded strings
here (``contivpy.netmaster.bitset`` decodes them): this module is importable by netplugin too.

    NetworkState        /contiv.io/state/nets/<net>.<tenant>
    EndpointGroupState  /contiv.io/state/endpointGroups/<group>:<tenant>
    EndpointState       /contiv.io/state/eps/<net>.<tenant>-<endpointID>
    DocknetState        /contiv.io/oper/docknet/<tenant>.<net>.<group>
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar


class _Record:
    """JSON <-> dataclass with an explicit python-name -> JSON-name table."""

    JSON: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {self.JSON.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        kwargs = {}
        for f in fields(cls):  # type: ignore[arg-type]
            name = cls.JSON.get(f.name, f.name)
            if name in data:
                kwargs[f.name] = data[name]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


@dataclass
class NetworkState(_Record):
    id: str = ""
    tenant: str = ""
    networkName: str = ""
    nwType: str = ""
    pktTagType: str = ""
    pktTag: int = 0
    extPktTag: int = 0
    subnetIP: str = ""
    subnetLen: int = 0
    gateway: str = ""
    ipAddrRange: str = ""
    epAddrCount: int = 0
    epCount: int = 0
    ipAllocMap: str = ""
    ipv6SubnetIP: str = ""
    ipv6SubnetLen: int = 0
    ipv6Gateway: str = ""
    ipv6AllocMap: dict[str, bool] | None = None
    ipv6LastHost: str = ""
    networkTag: str = ""


@dataclass
class EndpointGroupState(_Record):
    JSON: ClassVar[dict[str, str]] = {
        "dscp": "DSCP",
        "bandwidth": "Bandwidth",
        "burst": "Burst",
        "ipPool": "IPPool",
    }

    id: str = ""
    groupName: str = ""
    tenantName: str = ""
    networkName: str = ""
    endpointGroupId: int = 0
    pktTagType: str = ""
    pktTag: int = 0
    extPktTag: int = 0
    epCount: int = 0
    dscp: int = 0
    bandwidth: str = ""
    burst: int = 0
    ipPool: str = ""
    epgIpAllocMap: str = "AAAAAAAAAAA="
    groupTag: str = ""


@dataclass
class EndpointState(_Record):
    id: str = ""
    netID: str = ""
    endpointID: str = ""
    serviceName: str = ""
    endpointGroupId: int = 0
    endpointGroupKey: str = ""
    ipAddress: str = ""
    ipv6Address: str = ""
    macAddress: str = ""
    homingHost: str = ""
    intfName: str = ""
    vtepIP: str = ""
    labels: dict[str, str] | None = None
    containerId: str = ""
    epCommonName: str = ""


@dataclass
class DocknetState(_Record):
    id: str = ""
    tenantName: str = ""
    networkName: str = ""
    serviceName: str = ""
    docknetUUID: str = ""


__all__ = ["NetworkState", "EndpointGroupState", "EndpointState", "DocknetState"]
