"""The JSON records netmaster and netplugin share through etcd: one class per record, used by every
writer and every reader (nobody parses these values by hand).

Field names and order are the original's (docs/original.md R5.2, §5.3); every field is
always emitted (the original's state structs have no ``omitempty``). Bitmaps stay encoded strings
here (``contivpy.netmaster.bitset`` decodes them): this module is importable by netplugin too.

    NetworkState        /contiv.io/state/nets/<net>.<tenant>                 netmaster
    EndpointGroupState  /contiv.io/state/endpointGroups/<group>:<tenant>     netmaster
    EndpointState       /contiv.io/state/eps/<net>.<tenant>-<endpointID>     netmaster
    PolicyRuleState     /contiv.io/state/policyRule/<ruleId>                 netmaster (follow-up job)
    GlobalConfig        /contiv.io/master/config/global                      netmaster
    DocknetState        /contiv.io/oper/docknet/<tenant>.<net>.<group>       netmaster
    OperEndpoint        /contiv.io/oper/eps/<net>.<tenant>-<endpointID>      netplugin (owning host)
    OvsDriverOper       /contiv.io/oper/ovs-driver/<host>                    netplugin (CAS only)
    ServiceLBState      /contiv.io/state/serviceLB/<service>:<tenant>        netmaster
    ProviderState       /contiv.io/state/provider/<service>:<tenant>         netmaster
    ProviderCandidate   /contiv.io/state/svcProvider/<tenant>/<endpoint id>  netmaster (contivpy addition)
    ProviderGeneration  /contiv.io/state/svcProviderGen/<tenant>             netmaster (contivpy addition)
    AddrAllocRecord     /contiv.io/state/addrAlloc/<net>.<tenant>/<ip>       netmaster (contivpy addition)

``from_json`` ignores unknown fields, fills missing ones with defaults and raises ``ValueError``
for text that is not a JSON object; ``parse`` returns None instead. The ``_Record`` base and
``GlobalConfig`` live in ``model/record.py`` (re-exported here): netmaster's leader start writes only
that record, and creating the thirteen dataclasses of this module costs ~8 ms of its start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from contivpy.model.record import GlobalConfig, _Record  # noqa: F401  (GlobalConfig: re-exported)


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
    #: contivpy addition: the container's other DNS names (``docker run --network-alias``); written
    #: only when there are some, so the record is the original's otherwise
    aliases: list[str] | None = None
    OMITEMPTY = ("aliases",)


@dataclass
class DocknetState(_Record):
    id: str = ""
    tenantName: str = ""
    networkName: str = ""
    serviceName: str = ""
    docknetUUID: str = ""


@dataclass
class PolicyRuleState(_Record):
    """An ofnet policy rule (the original's ``OfnetPolicyRule`` with ``CommonState`` embedded).

    ``RuleId`` is ``<tenant>:<group>:<tenant>:<policy>:<ruleKey>:<dir>``; ``Action`` allow|deny.
    The same rule without ``id`` sits in the EPG policy record's ``RuleMaps`` (``rule_dict``).
    """

    id: str = ""
    RuleId: str = ""
    Priority: int = 0
    SrcEndpointGroup: int = 0
    DstEndpointGroup: int = 0
    SrcIpAddr: str = ""
    DstIpAddr: str = ""
    IpProtocol: int = 0
    SrcPort: int = 0
    DstPort: int = 0
    TcpFlags: str = ""
    Action: str = ""
    #: contivpy addition: "request" on a deny icmp rule without port (only ICMP requests match, so
    #: replies pass, as TcpFlags "syn,!ack" for tcp); written only when set
    IcmpType: str = ""
    OMITEMPTY = ("IcmpType",)

    def rule_dict(self) -> dict[str, Any]:
        d = self.to_dict()
        del d["id"]
        return d


@dataclass
class OperEndpoint(_Record):
    """What the owning host plugged: it exists only once veth, OVS port and flows are in place, and
    every other host learns the endpoint (with the VTEP to reach it) from it.

    ``endpointGroupId``/``endpointGroupKey`` are a contivpy addition (the original sent a remote
    endpoint's group through the ofnet RPC, decisions.md); the rest is the original's record.
    """

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


@dataclass
class OvsDriverOper(_Record):
    """The host's persisted OVS port counter and its local endpoints
    (``LocalEpInfo{<ep id>: {"Ovsportname", "EpgKey", "BridgeType"}}``), and (contivpy addition,
    ignored by the original's readers) ``vrfIds{<tenant>: 1..255}``: the OpenFlow metadata VRF id
    of each tenant on this host, so that a restarted agent writes the same flows (netplugin/vrf.py)."""

    id: str = ""
    currPortNum: int = 0
    LocalEpInfo: dict[str, dict[str, str]] = field(default_factory=dict)
    vrfIds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.currPortNum = int(self.currPortNum or 0)
        self.LocalEpInfo = self.LocalEpInfo or {}
        if not isinstance(self.vrfIds, dict):
            raise ValueError("OvsDriverOper: vrfIds must be an object")
        self.vrfIds = {str(k): int(v) for k, v in self.vrfIds.items()}


@dataclass
class ServiceLBState(_Record):
    """A service load balancer: VIP ``ipaddress`` in network ``subnet`` (the network *name*) of
    ``tenantname``; ``ports`` ``"<svcPort>:<provPort>:<TCP|UDP>"``; ``selectors`` ``{k: v}``;
    ``providers`` ``{"<ip>:<tenant>": {provider record}}`` (bookkeeping of netmaster);
    ``nodeports`` ``"<nodePort>:<svcPort>:<TCP|UDP>"`` (contivpy addition: every netplugin DNATs the host's
    ``nodePort`` to ``ipaddress:svcPort``; a Kubernetes Service's ``spec.ports[].nodePort``)."""

    id: str = ""
    servicename: str = ""
    tenantname: str = ""
    subnet: str = ""
    ports: list[str] = field(default_factory=list)
    selectors: dict[str, str] = field(default_factory=dict)
    ipaddress: str = ""
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodeports: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = list(self.ports or [])
        self.nodeports = list(self.nodeports or [])

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not self.nodeports:  # the original's record, byte for byte, for services without node ports
            del d["nodeports"]
        return d
        self.selectors = dict(self.selectors or {})
        self.providers = dict(self.providers or {})


@dataclass
class ProviderState(_Record):
    """The provider IPs of one service (``ServiceName`` = ``<service>:<tenant>``), sorted: what
    every netplugin programs the service's backends from."""

    ServiceName: str = ""
    Providers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.Providers = list(self.Providers or [])


@dataclass
class ProviderCandidate(_Record):
    """An endpoint whose container started with labels (the original's in-memory provider DB,
    persisted): the original's ``Provider`` field names. The same dict, without ``Services``,
    is the bookkeeping entry of every service it provides (``ServiceLBState.providers``)."""

    EpIDKey: str = ""
    IPAddress: str = ""
    ContainerID: str = ""
    Container: str = ""
    Tenant: str = ""
    Network: str = ""
    Labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.Labels = dict(self.Labels or {})


@dataclass
class ProviderGeneration(_Record):
    """Per-tenant counter bumped (CAS) by every txn that changes the tenant's provider candidates
    or service provider lists."""

    tenant: str = ""
    generation: int = 0


@dataclass
class AddrAllocRecord(_Record):
    """An address /plugin/allocAddress handed out that no endpoint has claimed yet: it explains the
    address's bit in the network (or pool group) bitmap until an endpoint claims it (the record is
    deleted in that endpoint's txn), /plugin/releaseAddress frees it, or the leader's reclaimer
    frees it after ``expires`` (unix seconds). ``group`` is the group named in the NetworkID
    (``<net>:<group>.<tenant>``), "" for the plain network."""

    networkId: str = ""
    address: str = ""
    group: str = ""
    created: float = 0.0
    expires: float = 0.0


__all__ = [
    "AddrAllocRecord",
    "ProviderCandidate",
    "ProviderGeneration",
    "ServiceLBState",
    "ProviderState",
    "NetworkState",
    "EndpointGroupState",
    "EndpointState",
    "PolicyRuleState",
    "GlobalConfig",
    "DocknetState",
    "OperEndpoint",
    "OvsDriverOper",
]
