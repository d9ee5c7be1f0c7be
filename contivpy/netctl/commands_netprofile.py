"""Actions of ``netprofile`` (conventions as in commands_net: parse, one request, print)."""

from __future__ import annotations

from contivpy.netctl.api import Api
from contivpy.netctl.api import dump_structs as dump_list
from contivpy.netctl.commands_net import inspect, need, table, tenant_filtered
from contivpy.netctl.output import out


def create_netprofile(ctx) -> None:
    need(ctx, 1, "Net profile name required")
    tenant, name = ctx.string("tenant"), ctx.args[0]
    obj = {
        "burst": ctx.int("burst"),
        "bandwidth": ctx.string("bandwidth"),
        "DSCP": ctx.int("dscp"),
        "profileName": name,
        "tenantName": tenant,
    }
    Api(ctx).post("Netprofile", "netprofiles", f"{tenant}:{name}", obj)
    out(f"Creating netprofile {tenant}:{name}\n")


def delete_netprofile(ctx) -> None:
    need(ctx, 1, "Net profile name required")
    Api(ctx).delete("netprofiles", f"{ctx.string('tenant')}:{ctx.args[0]}")


def inspect_netprofile(ctx) -> None:
    need(ctx, 1, "Net profile name required")
    inspect(ctx, "Netprofile", "netprofiles", f"{ctx.string('tenant')}:{ctx.args[0]}")


def _digits(s: str) -> list[str]:
    runs, cur = [], ""
    for ch in s:
        if "0" <= ch <= "9":
            cur += ch
        elif cur:
            runs.append(cur)
            cur = ""
    if cur:
        runs.append(cur)
    return runs


def list_netprofiles(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    profiles = tenant_filtered(ctx, "Netprofile", "netprofiles", ctx.string("tenant"))
    if ctx.bool("json"):
        return dump_list("Netprofile", profiles)
    if ctx.bool("quiet"):
        return out("".join(p.get("profileName", "") + "\n" for p in profiles))
    text = "Name\tTenant\tBandwidth\tDSCP\tburst size\n------\t------\t---------\t--------\t----------\n"
    unit = ""  # like the original, the unit carries over from the previous row
    for p in profiles:
        bw = p.get("bandwidth", "")
        name, tenant, dscp = p.get("profileName", ""), p.get("tenantName", ""), p.get("DSCP", 0)
        if bw:
            if any(c in "g|G" for c in bw):
                unit = "Gbps"
            elif any(c in "m|M" for c in bw):
                unit = "Mbps"
            elif any(c in "k|K" for c in bw):
                unit = "Kbps"
            digits = _digits(bw)
            text += f"{name}\t{tenant}\t{(digits[0] if digits else '') + unit}\t{dscp}\t{p.get('burst', 0)}\n"
        else:
            text += f"{name}\t{tenant}\t{bw}\t{dscp}\n"
    table(text)
