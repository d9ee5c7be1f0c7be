"""Actions of ``service`` (service LB) (conventions as in commands_net: parse, one request, print)."""

from __future__ import annotations

from contivpy.netctl.api import Api
from contivpy.netctl.api import dump_structs as dump_list
from contivpy.netctl.commands_net import inspect, need, table
from contivpy.netctl.output import go_slice, out


def create_service(ctx) -> None:
    need(ctx, 1, "Service name required")
    name, tenant = ctx.args[0], ctx.string("tenant") or "default"
    obj = {
        "serviceName": name,
        "tenantName": tenant,
        "networkName": ctx.string("network"),
        "ipAddress": ctx.string("preferred-ip"),
        "selectors": ctx.slice("selector"),
        "ports": ctx.slice("port"),
    }
    if ctx.slice("node-port"):  # contivpy addition; absent otherwise (the original's body)
        obj["nodePorts"] = ctx.slice("node-port")
    Api(ctx).post("ServiceLB", "serviceLBs", f"{tenant}:{name}", obj)
    out(f"Creating ServiceLB {tenant}:{name}\n")


def delete_service(ctx) -> None:
    need(ctx, 1, "Service name required")
    name, tenant = ctx.args[0], ctx.string("tenant") or "default"
    out(f"Deleting Service  {name},{tenant}\n")
    Api(ctx).delete("serviceLBs", f"{tenant}:{name}")


def list_services(ctx) -> None:
    tenant = ctx.string("tenant") or "default"
    api = Api(ctx)
    api.get("Tenant", "tenants", tenant)
    items = api.list("ServiceLB", "serviceLBs")
    if ctx.bool("all"):
        filtered = items
    else:
        filtered = [s for s in items or [] if s.get("tenantName", "") == tenant]
    if ctx.bool("json"):
        return dump_list("ServiceLB", filtered)
    if ctx.bool("quiet"):
        return out("".join(s.get("serviceName", "") + "\n" for s in filtered or []))
    text = "ServiceName\tTenant\tNetwork\tSelectors\n---------\t--------\t-------\t-------\n"
    for s in filtered or []:
        text += (
            f"{s.get('serviceName', '')}\t{s.get('tenantName', '')}\t{s.get('networkName', '')}\t"
            f"{go_slice(s.get('selectors'))}\t\n"
        )
    table(text)


def inspect_service(ctx) -> None:
    need(ctx, 1, "Service group name required")
    inspect(ctx, "ServiceLB", "serviceLBs", f"{ctx.string('tenant')}:{ctx.args[0]}")
