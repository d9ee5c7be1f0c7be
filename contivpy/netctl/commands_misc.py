"""Actions of ``netprofile``, ``global``, ``aci-gw``, ``bgp``, ``service``, ``app-profile``,
``external-contracts``, ``version`` and ``login`` (same conventions as commands_net).
"""

from __future__ import annotations

from contivpy.netctl import client, gojson
from contivpy.netctl.api import (
    EXIT_HELP,
    EXIT_INVALID,
    EXIT_IO,
    EXIT_REQUEST,
    Api,
    check_url,
    config_path,
    dump_json,
)
from contivpy.netctl.api import dump_structs as dump_list
from contivpy.netctl.commands_net import go_parse_ip, inspect, need, table, tenant_filtered
from contivpy.netctl.gojson import to_go
from contivpy.netctl.output import err, fail, out

CLIENT_VERSION = {"Version": "1.2.1-contivpy-0.1.0", "GitCommit": "unknown", "BuildTime": "unknown"}


def version_block(info: dict) -> str:
    return (
        f"Version: {info.get('Version', '')}\nGitCommit: {info.get('GitCommit', '')}\n"
        f"BuildTime: {info.get('BuildTime', '')}\n"
    )


def go_slice(items) -> str:
    """Go ``%v`` / ``%s`` of a ``[]string``."""
    return "[" + " ".join(items or []) + "]"


# ------------------------------------------------------------------ netprofile


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


# ------------------------------------------------------------------ global / aci-gw


def show_global(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    items = Api(ctx).list("Global", "globals")
    if ctx.bool("json"):
        return dump_list("Global", items)
    text = ""
    for g in items or []:
        text += (
            f"Fabric mode: {g.get('networkInfraType', '')}\nForward mode: {g.get('fwdMode', '')}\n"
            f"ARP mode: {g.get('arpMode', '')}\nVlan Range: {g.get('vlans', '')}\n"
            f"Vxlan range: {g.get('vxlans', '')}\nPrivate subnet: {g.get('pvtSubnet', '')}\n"
        )
    table(text)


def inspect_global(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    inspect(ctx, "Global", "globals", "global")


def set_global(ctx) -> None:
    api = Api(ctx)
    g = api.get("Global", "globals", "global")
    for flag, field in (
        ("fabric-mode", "networkInfraType"),
        ("vlan-range", "vlans"),
        ("vxlan-range", "vxlans"),
        ("fwd-mode", "fwdMode"),
        ("arp-mode", "arpMode"),
        ("private-subnet", "pvtSubnet"),
    ):
        if ctx.string(flag):
            g[field] = ctx.string(flag)
    api.post("Global", "globals", "global", g)


def set_aci_gw(ctx) -> None:
    api = Api(ctx)
    gw = api.try_get("AciGw", "aciGws", "aciGw")
    if gw is None:
        gw = {"name": "aciGw"}
    gw["enforcePolicies"] = ctx.string("enforce-policies")
    gw["includeCommonTenant"] = ctx.string("include-common-tenant")
    gw["nodeBindings"] = ctx.string("node-bindings")
    gw["pathBindings"] = ctx.string("path-bindings")
    gw["physicalDomain"] = ctx.string("phys-dom")
    api.post("AciGw", "aciGws", "aciGw", gw)


def show_aci_gw(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    items = Api(ctx).list("AciGw", "aciGws")
    if ctx.bool("json"):
        return dump_list("AciGw", items)
    text = ""
    for gw in items or []:
        text += (
            f"Path bindings: {gw.get('pathBindings', '')}\nNode bindings: {gw.get('nodeBindings', '')}\n"
            f"Physical domain: {gw.get('physicalDomain', '')}\n"
            f"Enforce policies: {gw.get('enforcePolicies', '')}\n"
            f"Include Common-Tenant: {gw.get('includeCommonTenant', '')}\n"
        )
    table(text)


def inspect_aci_gw(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    inspect(ctx, "AciGw", "aciGws", "aciGw")


# ------------------------------------------------------------------ bgp


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


# ------------------------------------------------------------------ service LB


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


# ------------------------------------------------------------------ app-profile


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


# ------------------------------------------------------------------ version / login


def show_version(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    url = check_url(ctx) + "/version"
    try:
        status, reason, data = client.request("GET", url, None, (), ctx.insecure)
    except client.TransportError as e:
        fail(EXIT_REQUEST, str(e))
    if status != 200:
        err(data.decode("utf-8", "replace"))
        fail(EXIT_INVALID, f"Status {status} in request response")
    try:
        info = gojson.decode("VersionInfo", gojson.loads(data.decode("utf-8", "replace")))
    except gojson.GoJSONError as e:
        fail(EXIT_REQUEST, str(e))
    out("Client Version:\n" + version_block(CLIENT_VERSION) + "\nServer Version:\n" + version_block(info))


def _read_password() -> str:
    import sys
    import termios

    fd = 0
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        raise OSError("inappropriate ioctl for device") from None
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    try:
        return sys.stdin.readline().rstrip("\n")
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)


def login(ctx) -> None:
    import sys

    need(ctx, 0, "More arguments than required")
    if not ctx.netmaster.startswith("https://"):
        out("login requires a https auth_proxy URL\n")
        fail(EXIT_INVALID, "", ctx)
    username = ctx.string("username")
    if not username:
        out("Username: ")
        line = sys.stdin.readline()
        if not line:
            fail(EXIT_IO, "EOF")
        username = line.strip()
    if not username:
        fail(EXIT_INVALID, "you must specify a username")
    password = ctx.string("password")
    if not password:
        out("Password: ")
        try:
            password = _read_password()
        except OSError as e:
            fail(EXIT_IO, str(e))
        out("\n")
    Api(ctx)  # validates the URL and the config file, as getClient(ctx) did
    body = gojson.marshal({"username": username, "password": password}).encode("utf-8", "surrogateescape")
    headers = [("Content-Type", "application/json")]  # http.Client.Post: no custom headers
    try:
        status, _reason, data = client.request(
            "POST", ctx.netmaster + "/api/v1/auth_proxy/login/", body, headers, ctx.insecure
        )
    except client.TransportError as e:
        fail(EXIT_IO, str(e))
    if status != 200:
        if status == 401:
            out("Login failed: Bad username or password.\n")
        else:
            out(f"Login failed: unexpected response code ({status})\n\n")
            err(data.decode("utf-8", "replace"))
        fail(EXIT_INVALID, "")
    out("Login succeeded.\n")
    _write_config(data)


def _write_config(data: bytes) -> None:
    import os

    path = config_path()
    try:
        os.mkdir(os.path.dirname(path), 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        fail(EXIT_IO, str(e))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        fail(EXIT_IO, str(e))
