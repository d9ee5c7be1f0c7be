"""Actions of ``bgp`` (conventions as in commands_net: parse, one request, print)."""

from __future__ import annotations

from contivpy.netctl.api import EXIT_HELP, Api
from contivpy.netctl.api import dump_structs as dump_list
from contivpy.netctl.commands_net import go_parse_ip, inspect, need, table
from contivpy.netctl.output import fail, out


def _go_parse_cidr(s: str) -> bool:
    if "/" not in s or "%" in s:
        return False
    addr, _, bits = s.partition("/")
    if not go_parse_ip(addr) or not bits.isdigit() or len(bits) > 3:
        return False
    return int(bits) <= (32 if "." in addr and ":" not in addr else 128)


def add_bgp(ctx) -> None:
    if len(ctx.args) < 1:
        fail(EXIT_HELP, "Host name required", ctx)
    routerip, asid = ctx.string("router-ip"), ctx.string("as")
    neighbor_as, neighbor = ctx.string("neighbor-as"), ctx.string("neighbor")
    if not _go_parse_cidr(routerip):
        fail(EXIT_HELP, "Wrong CIDR format. Enter in x.x.x.x/len format", ctx)
    if not go_parse_ip(neighbor):
        fail(EXIT_HELP, "Wrong IP format. Enter in x.x.x.x format", ctx)
    if not (routerip and asid and neighbor and neighbor_as):
        fail(EXIT_HELP, "Missing attributes", ctx)
    host = ctx.args[0]
    obj = {
        "as": asid,
        "hostname": host,
        "neighbor": neighbor,
        "neighbor-as": neighbor_as,
        "routerip": routerip,
    }
    Api(ctx).post("Bgp", "Bgps", host, obj)


def delete_bgp(ctx) -> None:
    need(ctx, 1, "Host name required")
    out(f"Deleting Bgp router config: {ctx.args[0]}\n")
    Api(ctx).delete("Bgps", ctx.args[0])


def list_bgp(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    items = Api(ctx).list("Bgp", "Bgps")
    if ctx.bool("json"):
        return dump_list("Bgp", items)
    # the original tested a misspelt "quite" flag here, so --quiet never applies
    text = "HostName\tRouterIP\tAS\tNeighbor\tNeighborAS\n---------\t--------\t-------\t--------\t-------\n"
    for b in items or []:
        text += (
            f"{b.get('hostname', '')}\t{b.get('routerip', '')}\t{b.get('as', '')}\t"
            f"{b.get('neighbor', '')}\t{b.get('neighbor-as', '')}\n"
        )
    table(text)


def inspect_bgp(ctx) -> None:
    need(ctx, 1, "Host name required")
    inspect(ctx, "Bgp", "Bgps", ctx.args[0])
