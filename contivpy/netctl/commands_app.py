"""Actions of ``app-profile`` and ``external-contracts`` (conventions as in commands_net: parse, one request, print)."""

from __future__ import annotations

from contivpy.netctl.api import EXIT_HELP, Api, dump_json
from contivpy.netctl.api import dump_structs as dump_list
from contivpy.netctl.commands_net import need, table, tenant_filtered
from contivpy.netctl.gojson import to_go
from contivpy.netctl.output import fail, go_slice, out


def _post_app_profile(ctx) -> tuple[str, str]:
    need(ctx, 1, "Profile name required")
    tenant, prof = ctx.string("tenant"), ctx.args[0]
    groups = ctx.string("group").split(",") if ctx.string("group") else []
    obj = {"tenantName": tenant, "appProfileName": prof, "endpointGroups": groups}
    Api(ctx).post("AppProfile", "appProfiles", f"{tenant}:{prof}", obj)
    return tenant, prof


def create_app_profile(ctx) -> None:
    tenant, prof = _post_app_profile(ctx)
    out(f"Creating AppProfile {tenant}:{prof}\n")


def update_app_profile(ctx) -> None:
    _post_app_profile(ctx)


def delete_app_profile(ctx) -> None:
    need(ctx, 1, "Profile name required")
    Api(ctx).delete("appProfiles", f"{ctx.string('tenant')}:{ctx.args[0]}")


def list_app_profiles(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    profs = tenant_filtered(ctx, "AppProfile", "appProfiles", ctx.string("tenant"))
    if ctx.bool("json"):
        return dump_list("AppProfile", profs)
    if ctx.bool("quiet"):
        return out("".join(p.get("appProfileName", "") + "\n" for p in profs))
    text = "Tenant\tAppProfile\tGroups\n------\t----------\t------\n"
    for p in profs:
        groups = ",".join(p.get("endpointGroups", []))
        text += f"{p.get('tenantName', '')}\t{p.get('appProfileName', '')}\t{groups}\n"
    table(text)


def list_app_profile_groups(ctx) -> None:
    need(ctx, 1, "Profile name required")
    p = Api(ctx).get("AppProfile", "appProfiles", f"{ctx.string('tenant')}:{ctx.args[0]}")
    if ctx.bool("json"):
        return dump_json(to_go("AppProfile", p))
    out(",".join(p.get("endpointGroups", [])))


# ------------------------------------------------------------------ external contracts


def list_external_contracts(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    groups = tenant_filtered(ctx, "ExtContractsGroup", "extContractsGroups", ctx.string("tenant"))
    if ctx.bool("json"):
        return dump_list("ExtContractsGroup", groups)
    if ctx.bool("quiet"):
        return out("".join(g.get("contractsGroupName", "") + "\n" for g in groups))
    text = "Tenant\tName\t\tType\t\tContracts\n------\t------\t\t------\t\t-------\n"
    for g in groups:
        text += (
            f"{g.get('tenantName', '')}\t{g.get('contractsGroupName', '')}\t\t"
            f"{g.get('contractsType', '')}\t{go_slice(g.get('contracts'))}\n"
        )
    table(text)


def delete_external_contracts(ctx) -> None:
    need(ctx, 1, "Contracts group name required")
    name, tenant = ctx.args[0], ctx.string("tenant")
    out(f"Deleting external contracts group {name} in tenant {tenant}\n")
    Api(ctx).delete("extContractsGroups", f"{tenant}:{name}")


def create_external_contracts(ctx) -> None:
    need(ctx, 1, "Contracts group name required")
    provided, consumed = ctx.bool("provided"), ctx.bool("consumed")
    if provided and consumed:
        fail(EXIT_HELP, "Cannot use both provided and consumed")
    if not provided and not consumed:
        fail(EXIT_HELP, "Either provided or consumed must be specified")
    contracts = ctx.slice("contract")
    if not contracts:
        fail(EXIT_HELP, "Contracts not provided")
    tenant, name = ctx.string("tenant"), ctx.args[0]
    obj = {
        "tenantName": tenant,
        "contractsGroupName": name,
        "contractsType": "provided" if provided else "consumed",
        "contracts": contracts,
    }
    Api(ctx).post("ExtContractsGroup", "extContractsGroups", f"{tenant}:{name}", obj)
    out(f"Creating ExternalContracts {tenant}:{name}\n")
