"""Records the netplugin agent reads and writes in etcd (original field names), plus its API result type.

- ``OperEndpoint``  ``/contiv.io/oper/eps/<id>``: written by the owning host once the endpoint is really
  plugged (veth + OVS port + flows); every other agent learns remote endpoints from these keys.
- ``OvsDriverOper`` ``/contiv.io/oper/ovs-driver/<host>``: the persisted port counter ``currPortNum`` and
  ``LocalEpInfo{epid: {Ovsportname, EpgKey, BridgeType}}`` -- updated only by compare-and-swap.
- ``EndpointInfo``: what ``create_endpoint`` returns to the Docker plugin and tests.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class OperEndpoint:
    id: str = ""
    netID: str = ""
    endpointID: str = ""
    serviceName: str = ""
    endpointGroupId: int = 0
    endpointGroupKey: str = ""
    contUUID: str = ""
    ipAddress: str = ""
    ipv6Address: str = ""
    macAddress: str = ""
    homingHost: str = ""
    intfName: str = ""
    portName: str = ""
    vtepIP: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OperEndpoint:
        d = json.loads(text)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class OvsDriverOper:
    id: str = ""
    currPortNum: int = 0
    LocalEpInfo: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> OvsDriverOper:
        d = json.loads(text)
        return cls(
            id=d.get("id", ""),
            currPortNum=int(d.get("currPortNum", 0)),
            LocalEpInfo=d.get("LocalEpInfo") or {},
        )


@dataclass(frozen=True)
class EndpointInfo:
    """Result of ``create_endpoint``/``get_endpoint``.

    ``port_name`` is the container-side veth (``vportN``) Docker moves into the sandbox; ``ovs_port`` is
    its OVS-side peer (``vvportN``). ``ip_address`` has no prefix length; ``prefix_len`` and ``gateway``
    come from the network.
    """

    id: str  # endpoint state id <net>.<tenant>-<endpointID>
    endpoint_id: str
    tenant: str
    network: str
    group: str
    ip_address: str
    prefix_len: int
    ipv6_address: str
    mac_address: str
    gateway: str
    port_name: str
    ovs_port: str
    ofport: int
    bridge: str
    mtu: int
    vtep_ip: str
    host: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
