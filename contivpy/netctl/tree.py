"""netctl's command tree: names, aliases, usages, argument usages and flags of the original
(reference section 3.1). The wording is the interface: it appears verbatim in help texts.

Top-level commands are sorted by name (as the original did before running); subcommands
keep their declared order (it shows in ``netctl network --help``).
"""

from contivpy.netctl.cli import Command, Flag

DEFAULT_MASTER = "http://netmaster:9999"
DEFAULT_AGENT = "http://127.0.0.1:9090"  # netctl trace --agent
CLIENT_VERSION = {"Version": "1.2.1-contivpy-0.1.0", "GitCommit": "unknown", "BuildTime": "unknown"}


def version_block(info: dict) -> str:
    return (
        f"Version: {info.get('Version', '')}\nGitCommit: {info.get('GitCommit', '')}\n"
        f"BuildTime: {info.get('BuildTime', '')}\n"
    )


class _Action:
    """``module.function``, imported when the command runs: a netctl process runs one command,
    and importing all nine command modules up front cost about 1 ms of every start-up."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, ctx) -> None:
        mod = __import__(f"contivpy.netctl.{self.module}", fromlist=[self.name])
        getattr(mod, self.name)(ctx)

    def __repr__(self) -> str:
        return f"<action contivpy.netctl.{self.module}.{self.name}>"


class _Module:
    """Stands for a command module in the table below: ``n.list_networks`` is a lazy _Action."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> _Action:
        return _Action(self._module, name)


ap = _Module("commands_app")
u = _Module("commands_auth")
bgp = _Module("commands_bgp")
g = _Module("commands_global")
n = _Module("commands_net")
np = _Module("commands_netprofile")
svc = _Module("commands_service")
tr = _Module("commands_trace")
ver = _Module("commands_version")


def S(spec, usage="", default=None):  # noqa: N802 - short constructors keep the table readable
    return Flag("string", spec, usage, default)


def B(spec, usage=""):  # noqa: N802
    return Flag("bool", spec, usage)


def I(spec, usage="", default=None):  # noqa: N802, E743
    return Flag("int", spec, usage, default)


def L(spec, usage=""):  # noqa: N802
    return Flag("slice", spec, usage)


TENANT = S("tenant, t", "Name of the tenant", "default")
ALL = B("all, a", "List all items")
JSON = B("json, j", "Output list in JSON format")
QUIET = B("quiet, q", "Only display name field")

NETMASTER_FLAGS = [
    Flag("string", "netmaster", "The hostname of the netmaster", DEFAULT_MASTER, env="NETMASTER"),
    Flag("bool", "insecure", "if true, strict certificate checking will be disabled", env="INSECURE"),
]

_LS = ("ls", "list")
_RM = ("rm", "delete")


def C(name, usage, action=None, args_usage="", flags=(), aliases=(), sub=()):  # noqa: N802
    return Command(name, usage, action, args_usage, flags, aliases, sub)


def _ls(usage, action, flags, args_usage=" "):
    return C("ls", usage, action, args_usage, flags, ["list"])


def _rm(usage, action, args_usage, flags=(TENANT,)):
    return C("rm", usage, action, args_usage, flags, ["delete"])


COMMANDS = [
    C("version", "Version Information", ver.show_version),
    C(
        "trace",
        "Trace a packet of an endpoint through its host's OVS (contivpy)",
        tr.trace,
        "[endpoint] [destination-ip]",
        [
            S("proto", "Protocol: tcp, udp or icmp", "icmp"),
            I("port", "Destination port (tcp, udp)"),
            S("agent", "URL of the debug REST of the endpoint's host agent", DEFAULT_AGENT),
            JSON,
        ],
    ),
    C(
        "login",
        "authenticate to Contiv (you must specify auth_proxy's HTTPS address in the --netmaster flag)",
        u.login,
        flags=[
            S("username, u", "user name (prompted if not given)"),
            S("password, p", "password (prompted if not given)"),
        ],
    ),
    C(
        "group",
        "Endpoint Group manipulation tools",
        sub=[
            C(
                "create",
                "Create an endpoint group",
                n.create_group,
                "[network] [group]",
                [
                    TENANT,
                    L("policy, p", "Policy"),
                    S("networkprofile, n", "network profile"),
                    L("external-contract, e", "External contract"),
                    S("ip-pool, r", "IP Address range, example 10.36.0.1-10.36.0.10"),
                    S("epg-tag, tag", "Configured Group Tag"),
                ],
            ),
            C("inspect", "Inspect a EndpointGroup", n.inspect_group, "[group]", [TENANT]),
            _rm("Delete an endpoint group", n.delete_group, "[group]"),
            _ls("List endpoint groups", n.list_groups, [TENANT, ALL, JSON, QUIET]),
        ],
    ),
    C(
        "endpoint",
        "Endpoint Inspection",
        aliases=["ep"],
        sub=[
            C("inspect", "Inspect an Endpoint", n.inspect_endpoint, "[epid]"),
        ],
    ),
    C(
        "netprofile",
        "Network profile manipulation tools",
        sub=[
            C(
                "create",
                "Create a network profile",
                np.create_netprofile,
                "[netprofile]",
                [
                    TENANT,
                    S("bandwidth, b", "Bandwidth (e.g., 10 kbps, 100 mbps, 1gbps)"),
                    I("dscp, d", "DSCP"),
                    I("burst, s", "burst size(Must be in kilobytes)"),
                ],
            ),
            _rm("Delete a network profile", np.delete_netprofile, "[network] [group]"),
            _ls("List network profile", np.list_netprofiles, [TENANT, ALL, JSON, QUIET]),
            C("inspect", "inspect network profile", np.inspect_netprofile, "[netprofile]", [TENANT]),
        ],
    ),
    C(
        "network",
        "Network manipulation tools",
        aliases=["net"],
        sub=[
            _ls("List networks", n.list_networks, [TENANT, ALL, JSON, QUIET]),
            C("inspect", "Inspect a Network", n.inspect_network, "[network]", [TENANT]),
            _rm("Delete a network", n.delete_network, "[network]"),
            C(
                "create",
                "Create a network",
                n.create_network,
                "[network]",
                [
                    TENANT,
                    S("nw-type, n", "Network Type (infra or data)", "data"),
                    S("encap, e", "Encap type (vlan or vxlan)", "vxlan"),
                    I("pkt-tag, p", "Packet tag (Vlan ID/VNI)"),
                    S("subnet, s", "Subnet CIDR - REQUIRED"),
                    S("gateway, g", "Gateway"),
                    S("subnetv6, s6", "IPv6 Subnet CIDR "),
                    S("gatewayv6, g6", "IPv6 Gateway"),
                    S("nw-tag, tag", "Configured Network Tag"),
                ],
            ),
        ],
    ),
    C(
        "user",
        "Local user management (netmaster --auth; admin only)",
        sub=[
            _ls("List users", u.list_users, [QUIET, JSON]),
            _rm("Delete a user", u.delete_user, "[user]", ()),
            C(
                "create",
                "Create a user",
                u.create_user,
                "[user]",
                [
                    S("role, r", "role: admin or ops", "ops"),
                    L("tenant, t", "tenant an ops user may change (repeatable)"),
                    S("password, p", "password (prompted if not given)"),
                ],
            ),
            C("inspect", "Inspect a user", u.inspect_user, "[user]"),
            C("grant", "Allow an ops user to change a tenant", u.grant_user, "[user] [tenant]"),
            C("revoke", "Take a tenant back from an ops user", u.revoke_user, "[user] [tenant]"),
            C("role", "Set a user's role (admin or ops)", u.set_role, "[user] [role]"),
            C(
                "passwd",
                "Set a user's password",
                u.set_password,
                "[user]",
                [S("password, p", "new password")],
            ),
        ],
    ),
    C(
        "tenant",
        "Tenant manipulation tools",
        sub=[
            _ls("List tenants", n.list_tenants, [QUIET, JSON]),
            _rm("Delete a tenant", n.delete_tenant, "[tenant]", ()),
            C("create", "Create a tenant", n.create_tenant, "[tenant]"),
            C("inspect", "Inspect a tenant", n.inspect_tenant, "[tenant]"),
        ],
    ),
    C(
        "policy",
        "Policy manipulation tools",
        sub=[
            C("create", "Create a new policy", n.create_policy, "[policy]", [TENANT]),
            _rm("Delete a policy", n.delete_policy, "[policy]"),
            _ls("List policies", n.list_policies, [TENANT, ALL, JSON, QUIET]),
            C("inspect", "Inspect a policy", n.inspect_policy, "[policy]", [TENANT]),
            C(
                "rule-ls",
                "List rules for a given tenant,policy",
                n.list_rules,
                "[policy]",
                [TENANT, JSON, QUIET],
            ),
            C("rule-rm", "Delete a rule from the policy", n.delete_rule, "[policy] [rule id]", [TENANT]),
            C(
                "rule-add",
                "Add a new rule to the policy",
                n.add_rule,
                "[policy] [rule id]",
                [
                    TENANT,
                    I("priority, p", "Priority Indicator", 1),
                    S("direction, d", "Direction of traffic (in/out)", "in"),
                    S("from-group, g", "From Endpoint Group Name (Valid in incoming direction only)"),
                    S("to-group, e", "To Endpoint Group Name (Valid in outgoing direction only)"),
                    S("from-network, n", "From Network name (Valid in incoming direction only)"),
                    S("to-network, o", "To Network name (Valid in outgoing direction only)"),
                    S("from-ip-address, i", "From IP address/CIDR (Valid in incoming direction only)"),
                    S("to-ip-address, s", "To IP address/CIDR (Valid in outgoing direction only)"),
                    S("protocol, l", "Protocol (e.g., tcp, udp, icmp)"),
                    I("port, P", "Port"),
                    S("action, j", "Action to take (allow or deny)", "allow"),
                ],
            ),
        ],
    ),
    C(
        "external-contracts",
        "External contracts",
        sub=[
            C(
                "ls",
                "List external contracts",
                ap.list_external_contracts,
                "",
                [QUIET, ALL, JSON, TENANT],
                ["list"],
            ),
            C("rm", "Delete external contracts", ap.delete_external_contracts, "", [TENANT], ["delete"]),
            C(
                "create",
                "Create external contracts",
                ap.create_external_contracts,
                "",
                [
                    TENANT,
                    B("consumed, c", "External contracts type - consumed"),
                    B("provided, p", "External contracts type - provided"),
                    L("contract, a", "Contract"),
                ],
            ),
        ],
    ),
    C(
        "global",
        "Global information",
        sub=[
            C("info", "Show global information", g.show_global, " ", [TENANT, ALL, JSON]),
            C("inspect", "Inspect Global Operational Information", g.inspect_global, " "),
            C(
                "set",
                "Set global parameters",
                g.set_global,
                " ",
                [
                    S("fabric-mode, f", "Fabric mode (aci, aci-opflex or default)"),
                    S("vlan-range, v", "Allowed Vlan id range"),
                    S("vxlan-range, x", "Allowed Vxlan VNID range"),
                    S("fwd-mode, b", "forwarding mode (bridge,routing)"),
                    S("arp-mode, a", "arp mode (proxy,flood)"),
                    S("private-subnet, s", "Select a /16 private subnet for host access", "172.19.0.0/16"),
                ],
            ),
        ],
    ),
    C(
        "aci-gw",
        "ACI Gateway information",
        sub=[
            C("info", "Show aci gateway information", g.show_aci_gw, " ", [TENANT, ALL, JSON]),
            C("inspect", "Inspect aci gateway operational information", g.inspect_aci_gw, " "),
            C(
                "set",
                "Set aci-gw parameters",
                g.set_aci_gw,
                " ",
                [
                    S(
                        "path-bindings, p",
                        "Blank or  Comma separated paths of the form topology/pod-1/paths-101/pathep-[eth1/14]",
                    ),
                    S(
                        "node-bindings, n",
                        "Blank or  Comma separated nodes of the form topology/pod-1/node-101",
                    ),
                    S("phys-dom, d", "ACI physical domain name (e.g. containerDom)"),
                    S("enforce-policies, e", "Should security policies be enforced (yes,no)", "yes"),
                    S(
                        "include-common-tenant, i",
                        "Should gateway look up objects in common tenant as well(yes,no)",
                        "no",
                    ),
                ],
            ),
        ],
    ),
    C(
        "bgp",
        "router capability configuration",
        sub=[
            _ls("List BGP configuration", bgp.list_bgp, [JSON, QUIET], "[hostname]"),
            _rm("Delete BGP configuration", bgp.delete_bgp, "[hostname]", ()),
            C(
                "create",
                "Add BGP configuration.",
                bgp.add_bgp,
                "[hostname]",
                [
                    S("router-ip", "BGP my-router ip "),
                    S("as", "Self AS id"),
                    S("neighbor-as", "BGP neighbor AS id"),
                    S("neighbor", "BGP neighbor to be added"),
                ],
            ),
            C("inspect", "Inspect Bgp", bgp.inspect_bgp, "[hostname]"),
        ],
    ),
    C(
        "app-profile",
        "Application Profile manipulation tools",
        sub=[
            C(
                "create",
                "Create an application profile",
                ap.create_app_profile,
                "[app-profile]",
                [
                    TENANT,
                    S("group, g", "Endpoint Group List (separated by commas)"),
                ],
            ),
            C(
                "update",
                "Update an application profile",
                ap.update_app_profile,
                "[app-profile]",
                [
                    TENANT,
                    S("group, g", "Endpoint Group List (separated by commas)"),
                ],
            ),
            _rm("Delete an application profile", ap.delete_app_profile, "[app-profile]"),
            _ls("List Application Profiles", ap.list_app_profiles, [TENANT, ALL, JSON, QUIET]),
            C(
                "group-ls",
                "List groups in an app-profile",
                ap.list_app_profile_groups,
                "[network] [app-profile]",
                [TENANT, ALL, JSON, QUIET],
                ["group-list"],
            ),
        ],
    ),
    C(
        "service",
        "service object creation (only for  docker version <= 1.12.x)",
        sub=[
            _ls("List service objects", svc.list_services, [TENANT, ALL, JSON, QUIET]),
            C("inspect", "Inspect a Network", svc.inspect_service, "[servicename]", [TENANT]),
            _rm(
                "Delete service object",
                svc.delete_service,
                "[servicename]",
                [S("tenant,t", "service tenant")],
            ),
            C(
                "create",
                "Create Service object (only for docker version <= 1.12.x)",
                svc.create_service,
                "[servicename]",
                [
                    S("tenant,t", "service tenant"),
                    S("network,s", "service network name"),
                    L("selector,l", "service selector .Usage: --selector=key1=value1 --selector=key2=value2"),
                    L(
                        "port,p",
                        "service/provider Port Usage- --port=svcPort1:provPort1:protocol --port=svcPort2:provPort2:protocol",
                    ),
                    S("preferred-ip,ip", "preferred ip address"),
                    L(
                        "node-port",
                        "host port DNATed to the service (contivpy) Usage- --node-port=nodePort:svcPort:protocol",
                    ),
                ],
            ),
        ],
    ),
]

COMMANDS.sort(key=lambda c: c.name)
