"""Actions of ``network``, ``tenant``, ``group``, ``policy`` (with rules) and ``endpoint``.

Each action mirrors the original step by step: argument checks (exit 1 + help), then the
requests in the original's order (``ls`` first GETs the tenant), then the output: the
"Creating ..." line after success, "Deleting ..." *before* the request, ``--json`` as
indented Go JSON, ``--quiet`` names only, otherwise a tabwriter table.
"""

from contivpy.netctl.api import EXIT_HELP, Api, dump_json, dump_structs
from contivpy.netctl.gojson import to_go
from contivpy.netctl.output import fail, out
from contivpy.netctl.tabwriter import format_table


def go_parse_ip(s: str) -> bool:
    """Go ``net.ParseIP(s) != nil``."""
    if not s or "%" in s or "/" in s:
        return False
    import ipaddress

    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def need(ctx, n: int, msg: str) -> None:
    if len(ctx.args) != n:
        fail(EXIT_HELP, msg, ctx)


def inspect(ctx, type_name: str, collection: str, key: str) -> None:
    obj = Api(ctx).inspect(type_name, collection, key)
    dump_json(to_go(type_name + "Inspect", obj))


def table(text: str) -> None:
    out(format_table(text))


def tenant_filtered(ctx, type_name: str, collection: str, tenant: str):
    """GET the tenant (must exist), list ``collection`` and keep the tenant's items (or all)."""
    api = Api(ctx)
    api.get("Tenant", "tenants", tenant)
    items = api.list(type_name, collection)
    return [x for x in items or [] if x.get("tenantName", "") == tenant or ctx.bool("all")]


# ------------------------------------------------------------------ network


def create_network(ctx) -> None:
    need(ctx, 1, "Network name required")
    subnet, gateway = ctx.string("subnet"), ctx.string("gateway")
    subnetv6, gatewayv6 = ctx.string("subnetv6"), ctx.string("gatewayv6")
    if subnet == "":
        fail(EXIT_HELP, "Subnet is required", ctx)
    if gateway and not go_parse_ip(gateway):
        fail(EXIT_HELP, "Invalid gateway - Enter in A.B.C.D format", ctx)
    if gatewayv6 and not go_parse_ip(gatewayv6):
        fail(EXIT_HELP, "Invalid IPv6 gateway ", ctx)
    tenant, network = ctx.string("tenant"), ctx.args[0]
    obj = {
        "tenantName": tenant,
        "networkName": network,
        "encap": ctx.string("encap"),
        "subnet": subnet,
        "gateway": gateway,
        "ipv6Subnet": subnetv6,
        "ipv6Gateway": gatewayv6,
        "pktTag": ctx.int("pkt-tag"),
        "nwType": ctx.string("nw-type"),
        "cfgdTag": ctx.string("nw-tag"),
    }
    Api(ctx).post("Network", "networks", f"{tenant}:{network}", obj)
    out(f"Creating network {tenant}:{network}\n")


def delete_network(ctx) -> None:
    need(ctx, 1, "Network name required")
    tenant, network = ctx.string("tenant"), ctx.args[0]
    out(f"Deleting network {tenant}:{network}\n")
    Api(ctx).delete("networks", f"{tenant}:{network}")


def inspect_network(ctx) -> None:
    need(ctx, 1, "Network name required")
    inspect(ctx, "Network", "networks", f"{ctx.string('tenant')}:{ctx.args[0]}")


def list_networks(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    tenant = ctx.string("tenant")
    api = Api(ctx)
    api.get("Tenant", "tenants", tenant)
    nets = api.list("Network", "networks")
    if ctx.bool("all"):
        filtered = nets
    else:
        filtered = [n for n in nets or [] if n.get("tenantName", "") == tenant]
    if ctx.bool("json"):
        return dump_structs("Network", filtered)
    if ctx.bool("quiet"):
        return out("".join(n.get("networkName", "") + "\n" for n in filtered or []))
    text = (
        "Tenant\tNetwork\tNw Type\tEncap type\tPacket tag\tSubnet\tGateway\tIPv6Subnet\tIPv6Gateway\tCfgd Tag \n"
        "------\t-------\t-------\t----------\t----------\t-------\t------\t----------\t-----------\t---------\n"
    )
    for n in filtered or []:
        g = n.get
        text += (
            f"{g('tenantName', '')}\t{g('networkName', '')}\t{g('nwType', '')}\t{g('encap', '')}\t"
            f"{g('pktTag', 0)}\t{g('subnet', '')}\t{g('gateway', '')}\t{g('ipv6Subnet', '')}\t"
            f"{g('ipv6Gateway', '')}\t{g('cfgdTag', '')}\n"
        )
    table(text)


# ------------------------------------------------------------------ tenant


def create_tenant(ctx) -> None:
    need(ctx, 1, "Tenant name required")
    tenant = ctx.args[0]
    Api(ctx).post("Tenant", "tenants", tenant, {"tenantName": tenant})
    out(f"Creating tenant: {tenant}\n")


def delete_tenant(ctx) -> None:
    need(ctx, 1, "Tenant name required")
    tenant = ctx.args[0]
    out(f"Deleting tenant {tenant}\n")
    Api(ctx).delete("tenants", tenant)


def inspect_tenant(ctx) -> None:
    need(ctx, 1, "Tenant name required")
    inspect(ctx, "Tenant", "tenants", ctx.args[0])


def list_tenants(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    tenants = Api(ctx).list("Tenant", "tenants")
    if ctx.bool("json"):
        return dump_structs("Tenant", tenants)
    if ctx.bool("quiet"):
        return out("".join(t.get("tenantName", "") + "\n" for t in tenants or []))
    text = "Name\t\n------\t\n" + "".join(f"{t.get('tenantName', '')}\t\n" for t in tenants or [])
    table(text)


# ------------------------------------------------------------------ endpoint group


def create_group(ctx) -> None:
    need(ctx, 2, "Network and group name required")
    tenant, network, group = ctx.string("tenant"), ctx.args[0], ctx.args[1]
    obj = {
        "tenantName": tenant,
        "networkName": network,
        "groupName": group,
        "netProfile": ctx.string("networkprofile"),
        "ipPool": ctx.string("ip-pool"),
        "policies": ctx.slice("policy"),
        "extContractsGrps": ctx.slice("external-contract"),
        "cfgdTag": ctx.string("tag"),
    }
    Api(ctx).post("EndpointGroup", "endpointGroups", f"{tenant}:{group}", obj)
    out(f"Creating EndpointGroup {tenant}:{group}\n")


def inspect_group(ctx) -> None:
    need(ctx, 1, "EndpointGroup name required")
    inspect(ctx, "EndpointGroup", "endpointGroups", f"{ctx.string('tenant')}:{ctx.args[0]}")


def delete_group(ctx) -> None:
    need(ctx, 1, "EndpointGroup name required")
    Api(ctx).delete("endpointGroups", f"{ctx.string('tenant')}:{ctx.args[0]}")


def list_groups(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    groups = tenant_filtered(ctx, "EndpointGroup", "endpointGroups", ctx.string("tenant"))
    if ctx.bool("json"):
        return dump_structs("EndpointGroup", groups)
    if ctx.bool("quiet"):
        return out("".join(g.get("groupName", "") + "\n" for g in groups))
    text = (
        "Tenant\tGroup\tNetwork\tIP Pool\tCfgdTag\tPolicies\tNetwork profile\n"
        "------\t-----\t-------\t-------\t-------\t--------\t---------------\n"
    )
    for g in groups:
        text += (
            f"{g.get('tenantName', '')}\t{g.get('groupName', '')}\t{g.get('networkName', '')}\t"
            f"{g.get('ipPool', '')}\t{g.get('cfgdTag', '')}\t{','.join(g.get('policies', []))}\t"
            f"{g.get('netProfile', '')}\n"
        )
    table(text)


# ------------------------------------------------------------------ policy and rules


def create_policy(ctx) -> None:
    need(ctx, 1, "Policy name required")
    tenant, policy = ctx.string("tenant"), ctx.args[0]
    Api(ctx).post("Policy", "policys", f"{tenant}:{policy}", {"policyName": policy, "tenantName": tenant})
    out(f"Creating policy {tenant}:{policy}\n")


def delete_policy(ctx) -> None:
    need(ctx, 1, "Policy name required")
    tenant, policy = ctx.string("tenant"), ctx.args[0]
    out(f"Deleting policy {tenant}:{policy}\n")
    Api(ctx).delete("policys", f"{tenant}:{policy}")


def inspect_policy(ctx) -> None:
    need(ctx, 1, "Policy name required")
    inspect(ctx, "Policy", "policys", f"{ctx.string('tenant')}:{ctx.args[0]}")


def list_policies(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    policies = tenant_filtered(ctx, "Policy", "policys", ctx.string("tenant"))
    if ctx.bool("json"):
        return dump_structs("Policy", policies)
    if ctx.bool("quiet"):
        return out("".join(p.get("policyName", "") + "\n" for p in policies))
    text = "Tenant\tPolicy\n------\t------\n"
    text += "".join(f"{p.get('tenantName', '')}\t{p.get('policyName', '')}\n" for p in policies)
    table(text)


def add_rule(ctx) -> None:
    need(ctx, 2, "Policy name and Rule ID required")
    s = ctx.string
    direction = s("direction")
    if direction == "in":
        if s("to-group"):
            fail(EXIT_HELP, "Cant specify to-group for incoming rule")
        if s("to-network"):
            fail(EXIT_HELP, "Cant specify to-network for incoming rule")
        if s("from-group") and s("from-network"):
            fail(EXIT_HELP, "Can't specify both from-group argument and -from-network ")
    elif direction == "out":
        if s("from-group"):
            fail(EXIT_HELP, "Cant specify from-group for outgoing rule")
        if s("from-network"):
            fail(EXIT_HELP, "Cant specify from-network for outgoing rule")
        if s("from-ip-address"):
            fail(EXIT_HELP, "Cant specify from-ip-address for outgoing rule")
        if s("to-group") and s("to-network"):
            fail(EXIT_HELP, "Can't specify both -to-group and -to-network")
    else:
        fail(EXIT_HELP, "Unknown direction")
    tenant, policy, rule_id = s("tenant"), ctx.args[0], ctx.args[1]
    obj = {
        "tenantName": tenant,
        "policyName": policy,
        "ruleId": rule_id,
        "priority": ctx.int("priority"),
        "direction": direction,
        "fromEndpointGroup": s("from-group"),
        "toEndpointGroup": s("to-group"),
        "fromNetwork": s("from-network"),
        "toNetwork": s("to-network"),
        "fromIpAddress": s("from-ip-address"),
        "toIpAddress": s("to-ip-address"),
        "protocol": s("protocol"),
        "port": ctx.int("port"),
        "action": s("action"),
    }
    Api(ctx).post("Rule", "rules", f"{tenant}:{policy}:{rule_id}", obj)


def delete_rule(ctx) -> None:
    need(ctx, 2, "Policy name and Rule ID required")
    Api(ctx).delete("rules", f"{ctx.string('tenant')}:{ctx.args[0]}:{ctx.args[1]}")


def list_rules(ctx) -> None:
    need(ctx, 1, "Policy name required")
    tenant, policy = ctx.string("tenant"), ctx.args[0]
    api = Api(ctx)
    api.get("Tenant", "tenants", tenant)
    api.get("Policy", "policys", f"{tenant}:{policy}")
    rules = api.list("Rule", "rules")
    by_prio: dict[int, list] = {}
    for r in rules or []:
        if r.get("tenantName", "") == tenant and r.get("policyName", "") == policy:
            by_prio.setdefault(r.get("priority", 0), []).append(r)
    results = [r for prio in sorted(by_prio) for r in by_prio[prio]]
    if ctx.bool("json"):
        return dump_structs("Rule", results)
    if ctx.bool("quiet"):
        return out("".join(r.get("ruleId", "") + "\n" for r in results))
    subnets: dict[str, str] = {}
    if any(r.get("fromNetwork") or r.get("toNetwork") for r in results):
        # like the original, a from/to-network rule shows the network's subnet as its address
        for n in api.list("Network", "networks") or []:
            subnets[f"{n.get('tenantName', '')}:{n.get('networkName', '')}"] = n.get("subnet", "")

    def addr(r: dict, side: str) -> str:
        net = r.get(f"{side}Network", "")
        return r.get(f"{side}IpAddress", "") or (subnets.get(f"{tenant}:{net}", "") if net else "")

    g = dict.get
    text = (
        "Incoming Rules:\n"
        "Rule\tPriority\tFrom EndpointGroup\tFrom Network\tFrom IpAddress\tTo IpAddress\tProtocol\tPort\tAction\n"
        "----\t--------\t------------------\t------------\t---------\t------------\t--------\t----\t------\n"
    )
    for r in results:
        if r.get("direction") == "in":
            text += (
                f"{g(r, 'ruleId', '')}\t{g(r, 'priority', 0)}\t{g(r, 'fromEndpointGroup', '')}\t"
                f"{g(r, 'fromNetwork', '')}\t{addr(r, 'from')}\t{addr(r, 'to')}\t"
                f"{g(r, 'protocol', '')}\t{g(r, 'port', 0)}\t{g(r, 'action', '')}\n"
            )
    text += (
        "Outgoing Rules:\n"
        "Rule\tPriority\tTo EndpointGroup\tTo Network\tTo IpAddress\tProtocol\tPort\tAction\n"
        "----\t--------\t----------------\t----------\t---------\t--------\t----\t------\n"
    )
    for r in results:
        if r.get("direction") == "out":
            text += (
                f"{g(r, 'ruleId', '')}\t{g(r, 'priority', 0)}\t{g(r, 'toEndpointGroup', '')}\t"
                f"{g(r, 'toNetwork', '')}\t{addr(r, 'to')}\t{g(r, 'protocol', '')}\t"
                f"{g(r, 'port', 0)}\t{g(r, 'action', '')}\n"
            )
    table(text)


# ------------------------------------------------------------------ endpoint


def inspect_endpoint(ctx) -> None:
    need(ctx, 1, "Endpoint name required")
    inspect(ctx, "Endpoint", "endpoints", ctx.args[0])
