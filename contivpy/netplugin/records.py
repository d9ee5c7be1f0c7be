"""The agent's API result type ``EndpointInfo``: what ``create_endpoint`` returns to the Docker plugin and
tests. The etcd records the agent writes (``OperEndpoint``, ``OvsDriverOper``) live with the other shared
records in ``contivpy.model.state``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
