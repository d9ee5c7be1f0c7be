"""contivpy.ofnet: Contiv's OpenFlow 1.3 pipeline and controller (imports only contivpy.common; its OpenFlow and packet codecs are its own).

Public entry point: :class:`OfnetAgent` (one per bridge) with the input values from :mod:`.types`.
See docs/ovs-pipeline.md for the table-by-table description.
"""

from .agent import DEFAULT_PORTS, OfnetAgent
from .switch import OpenFlowError, SwitchDisconnected
from .types import LocalEndpoint, Network, RemoteEndpoint, Rule, Service, Vtep

__all__ = [
    "OfnetAgent",
    "DEFAULT_PORTS",
    "LocalEndpoint",
    "RemoteEndpoint",
    "Network",
    "Vtep",
    "Rule",
    "Service",
    "OpenFlowError",
    "SwitchDisconnected",
]
