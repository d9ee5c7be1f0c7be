"""The typed structs netctl decodes responses into (field order = Go struct order).

Each spec lists the JSON field names in the order of the original client structs
(``key`` first, then the config fields alphabetically by Go field name, then ``link-sets``,
``links``). Kinds: ``s`` string (default), ``i`` int, ``ls`` []string, ``S:T`` nested
struct T (always emitted), ``LS:T`` []T, ``M`` map[string]Link. Everything but nested
structs is ``omitempty``. Fields a struct does not list are dropped, exactly as Go drops
unknown keys (e.g. the ``key`` the server adds to an endpoint's oper object).

The fields agree with netmaster's tables in model/objects.py (checked by
tests/unit/test_schema_agreement.py); netctl keeps this copy so that it starts without
importing the model layer.
"""

_SPECS = {
    "Link": "type key",
    # ---- config objects
    "AciGw": "key enforcePolicies includeCommonTenant name nodeBindings pathBindings physicalDomain",
    "AppProfile": "key appProfileName endpointGroups:ls tenantName link-sets:S:AppProfileLinkSets"
    " links:S:AppProfileLinks",
    "AppProfileLinkSets": "EndpointGroups:M",
    "AppProfileLinks": "Tenant:S:Link",
    "Bgp": "key as hostname neighbor neighbor-as routerip",
    "EndpointGroup": "key cfgdTag extContractsGrps:ls groupName ipPool netProfile networkName policies:ls"
    " tenantName link-sets:S:EndpointGroupLinkSets links:S:EndpointGroupLinks",
    "EndpointGroupLinkSets": "ExtContractsGrps:M MatchRules:M Policies:M Services:M",
    "EndpointGroupLinks": "AppProfile:S:Link NetProfile:S:Link Network:S:Link Tenant:S:Link",
    "ExtContractsGroup": "key contracts:ls contractsGroupName contractsType tenantName"
    " link-sets:S:ExtContractsGroupLinkSets",
    "ExtContractsGroupLinkSets": "EndpointGroups:M",
    "Global": "key arpMode fwdMode name networkInfraType pvtSubnet vlans vxlans",
    "Netprofile": "key DSCP:i bandwidth burst:i profileName tenantName link-sets:S:NetprofileLinkSets"
    " links:S:NetprofileLinks",
    "NetprofileLinkSets": "EndpointGroups:M",
    "NetprofileLinks": "Tenant:S:Link",
    "Network": "key cfgdTag encap gateway ipv6Gateway ipv6Subnet networkName nwType pktTag:i subnet"
    " tenantName link-sets:S:NetworkLinkSets links:S:NetworkLinks",
    "NetworkLinkSets": "EndpointGroups:M Servicelbs:M Services:M",
    "NetworkLinks": "Tenant:S:Link",
    "Policy": "key policyName tenantName link-sets:S:PolicyLinkSets links:S:PolicyLinks",
    "PolicyLinkSets": "EndpointGroups:M Rules:M",
    "PolicyLinks": "Tenant:S:Link",
    "Rule": "key action direction fromEndpointGroup fromIpAddress fromNetwork policyName port:i priority:i"
    " protocol ruleId tenantName toEndpointGroup toIpAddress toNetwork link-sets:S:RuleLinkSets"
    " links:S:RuleLinks",
    "RuleLinkSets": "Policies:M",
    "RuleLinks": "MatchEndpointGroup:S:Link",
    "ServiceLB": "key ipAddress networkName nodePorts:ls ports:ls selectors:ls serviceName tenantName links:S:ServiceLBLinks",
    "ServiceLBLinks": "Network:S:Link Tenant:S:Link",
    "Tenant": "key defaultNetwork tenantName link-sets:S:TenantLinkSets",
    "TenantLinkSets": "AppProfiles:M EndpointGroups:M NetProfiles:M Networks:M Policies:M Servicelbs:M"
    " VolumeProfiles:M Volumes:M",
    # ---- oper objects
    "AciGwOper": "numAppProfiles:i",
    "BgpOper": "adminStatus neighborStatus numRoutes:i routes:ls",
    "EndpointOper": "containerID containerName endpointGroupId:i endpointGroupKey endpointID homingHost"
    " intfName ipAddress:ls labels macAddress network serviceName virtualPort vtepIP",
    "EndpointGroupOper": "allocatedIPAddresses availableIPAddresses endpoints:LS:EndpointOper"
    " externalPktTag:i groupTag numEndpoints:i pktTag:i",
    "GlobalOper": "clusterMode defaultNetwork freeVXLANsStart:i numNetworks:i vlansInUse vxlansInUse",
    "NetworkOper": "allocatedAddressesCount:i allocatedIPAddresses availableIPAddresses"
    " endpoints:LS:EndpointOper externalPktTag:i networkTag numEndpoints:i pktTag:i",
    "PolicyOper": "endpoints:LS:EndpointOper numEndpoints:i policyViolations:i",
    "ServiceLBOper": "numProviders:i providers:LS:EndpointOper serviceVip",
    "TenantOper": "endpointGroups:LS:EndpointGroupOper endpoints:LS:EndpointOper networks:LS:NetworkOper"
    " policies:LS:PolicyOper servicelbs:LS:ServiceLBOper totalAppProfiles:i totalEPGs:i"
    " totalEndpoints:i totalNetprofiles:i totalNetworks:i totalPolicies:i totalServicelbs:i",
    # ---- inspect wrappers (no json tags: capitalised keys, never omitted)
    "AciGwInspect": "Config:S:AciGw Oper:S:AciGwOper",
    "AppProfileInspect": "Config:S:AppProfile",
    "BgpInspect": "Config:S:Bgp Oper:S:BgpOper",
    "EndpointInspect": "Oper:S:EndpointOper",
    "EndpointGroupInspect": "Config:S:EndpointGroup Oper:S:EndpointGroupOper",
    "ExtContractsGroupInspect": "Config:S:ExtContractsGroup",
    "GlobalInspect": "Config:S:Global Oper:S:GlobalOper",
    "NetprofileInspect": "Config:S:Netprofile",
    "NetworkInspect": "Config:S:Network Oper:S:NetworkOper",
    "PolicyInspect": "Config:S:Policy Oper:S:PolicyOper",
    "RuleInspect": "Config:S:Rule",
    "ServiceLBInspect": "Config:S:ServiceLB Oper:S:ServiceLBOper",
    "TenantInspect": "Config:S:Tenant Oper:S:TenantOper",
    # ---- netmaster /version
    "VersionInfo": "Version GitCommit BuildTime",
}


def _parse(spec: str) -> list[tuple[str, str, str | None]]:
    fields = []
    for item in spec.split():
        parts = item.split(":")
        name = parts[0]
        kind = parts[1] if len(parts) > 1 else "s"
        sub = parts[2] if len(parts) > 2 else None
        fields.append((name, kind, sub))
    return fields


class _Structs(dict):
    """Specs are parsed on first use (netctl touches two or three types per run)."""

    def __missing__(self, name: str) -> list[tuple[str, str, str | None]]:
        fields = _parse(_SPECS[name])
        self[name] = fields
        return fields


STRUCTS: dict[str, list[tuple[str, str, str | None]]] = _Structs()
