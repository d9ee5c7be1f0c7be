"""Every etcd key contivpy reads or writes, in the original Contiv layout (docs/original.md §4).

Identifier conventions (reproduced exactly):
- network id        ``<network>.<tenant>``            model key ``<tenant>:<network>``
- EPG state id      ``<group>:<tenant>``              model key ``<tenant>:<group>``
- endpoint id       ``<network>.<tenant>-<endpointID>``
- docknet id        ``<tenant>.<network>.<group>``    (group "" for a plain network)
- service registry  ``/contiv.io/service/<name>/<ip>:<port>``

This module is pure string building: no I/O, importable from anywhere (netctl excepted).
"""

from __future__ import annotations

ROOT = "/contiv.io/"
OBJ = ROOT + "obj/modeldb/"
STATE = ROOT + "state/"
OPER = ROOT + "oper/"
SERVICE = ROOT + "service/"
LOCK = ROOT + "lock/"
MASTER_CONFIG_GLOBAL = ROOT + "master/config/global"

LEADER_LOCK = LOCK + "netmaster/leader"

# --- secure access (netmaster --auth / TLS; docs/security.md) ----------------------------------
AUTH = ROOT + "auth/"
AUTH_USERS = AUTH + "users/"  # <username> -> {"username","role","tenants","password","gen"}
AUTH_SECRET = AUTH + "secret"  # HMAC key of the login tokens (hex), created once
AUTH_AGENT_TOKEN = AUTH + "agent-token"  # netplugin -> netmaster /plugin/* credential
AUTH_TLS_PIN = AUTH + "tls/"  # <control ip:port> -> sha256 hex of that netmaster's certificate

# --- model objects (REST config JSON) ---------------------------------------------------


def obj_prefix(obj_type: str) -> str:
    """``obj_type`` is the model type name: tenant, network, endpointGroup, policy, rule, ..."""
    return f"{OBJ}{obj_type}/"


def obj_key(obj_type: str, key: str) -> str:
    return f"{OBJ}{obj_type}/{key}"


# Link keys: one key per member of an owner's indexed link set (netmaster/registry.py
# ``ObjType.indexed_sets``), value = the member's type. Under ``/contiv.io/obj/`` so the model
# watch (netmaster/objcache.py) sees objects and links at one revision.
OBJ_ROOT = ROOT + "obj/"
LINKS = OBJ_ROOT + "links/"


def link_prefix(owner_type: str, owner_key: str, set_name: str = "") -> str:
    """Every link key of an owner (``set_name`` empty) or of one of its sets."""
    return f"{LINKS}{owner_type}/{owner_key}/" + (f"{set_name}/" if set_name else "")


def link_key(owner_type: str, owner_key: str, set_name: str, member_key: str) -> str:
    return f"{LINKS}{owner_type}/{owner_key}/{set_name}/{member_key}"


def parse_link_key(ek: str) -> tuple[str, str, str, str] | None:
    """(owner type, owner key, set name, member key) of a link key, None if malformed."""
    parts = ek[len(LINKS) :].split("/")
    return (parts[0], parts[1], parts[2], parts[3]) if len(parts) == 4 and all(parts) else None


# --- ids -----------------------------------------------------------------------------------


def network_id(network: str, tenant: str) -> str:
    return f"{network}.{tenant}"


def epg_id(group: str, tenant: str) -> str:
    return f"{group}:{tenant}"


def endpoint_state_id(network: str, tenant: str, endpoint_id: str) -> str:
    return f"{network}.{tenant}-{endpoint_id}"


def docknet_id(tenant: str, network: str, group: str = "") -> str:
    return f"{tenant}.{network}.{group}"


# --- desired state written by netmaster, watched by netplugin -----------------------------

NETS = STATE + "nets/"
EPS = STATE + "eps/"
EPGS = STATE + "endpointGroups/"
POLICY = STATE + "policy/"
POLICY_RULE = STATE + "policyRule/"
SERVICE_LB = STATE + "serviceLB/"
PROVIDER = STATE + "provider/"
BGP = STATE + "bgp/"
STATE_GLOBAL = STATE + "global/global"
STATE_AUTO_VLAN = STATE + "auto-vlan/global"
STATE_AUTO_VXLAN = STATE + "auto-vxlan/global"


def net_state(net_id: str) -> str:
    return NETS + net_id


def ep_state(ep_id: str) -> str:
    return EPS + ep_id


def epg_state(epg_state_id: str) -> str:
    return EPGS + epg_state_id


# Address allocations handed out by /plugin/allocAddress and not yet claimed by an endpoint (contivpy
# addition, decisions.md "Allocation records"): ``<net>.<tenant>/<ip>`` -> ``AddrAllocRecord``.
ADDR_ALLOC = STATE + "addrAlloc/"


def addr_alloc_prefix(net_id: str) -> str:
    return f"{ADDR_ALLOC}{net_id}/"


def addr_alloc(net_id: str, ip: str) -> str:
    return f"{ADDR_ALLOC}{net_id}/{ip}"


# Service-provider candidates (contivpy addition, decisions.md "Service providers"): one record per
# endpoint started with labels, and a per-tenant generation every writer of candidates or service
# provider lists bumps (the fence that keeps a service create and a container start from missing
# each other).
SVC_PROVIDER = STATE + "svcProvider/"
SVC_PROVIDER_GEN = STATE + "svcProviderGen/"


def svc_provider_prefix(tenant: str) -> str:
    return f"{SVC_PROVIDER}{tenant}/"


def svc_provider(tenant: str, ep_id: str) -> str:
    return f"{SVC_PROVIDER}{tenant}/{ep_id}"


def svc_provider_gen(tenant: str) -> str:
    return SVC_PROVIDER_GEN + tenant


# --- oper state ------------------------------------------------------------------------------

OPER_EPS = OPER + "eps/"
OPER_OVS_DRIVER = OPER + "ovs-driver/"
OPER_DOCKNET = OPER + "docknet/"
OPER_GLOBAL = OPER + "global/global"
OPER_AUTO_VLAN = OPER + "auto-vlan/global"
OPER_AUTO_VXLAN = OPER + "auto-vxlan/global"
OPER_CNI = OPER + "cni/"  # contivpy: <host>/<CNI_CONTAINERID>/<CNI_IFNAME> -> CNI attachment (docs/cni.md)


def ep_oper(ep_id: str) -> str:
    return OPER_EPS + ep_id


def ovs_driver_oper(host: str) -> str:
    return OPER_OVS_DRIVER + host


def docknet_oper(docknet: str) -> str:
    return OPER_DOCKNET + docknet


def cni_prefix(host: str) -> str:
    return f"{OPER_CNI}{host}/"


def cni_pod(host: str, container_id: str, ifname: str) -> str:
    return f"{OPER_CNI}{host}/{container_id}/{ifname}"


# --- service registry ------------------------------------------------------------------------


def service_prefix(name: str) -> str:
    return f"{SERVICE}{name}/"


def service_key(name: str, host_addr: str, port: int) -> str:
    return f"{SERVICE}{name}/{host_addr}:{port}"


SVC_NETMASTER = "netmaster"
SVC_NETMASTER_RPC = "netmaster.rpc"
SVC_NETPLUGIN = "netplugin"
SVC_NETPLUGIN_VTEP = "netplugin.vtep"
