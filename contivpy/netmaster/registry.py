"""The object type table: one row per REST collection; it drives routes, CRUD and links.

Each ``ObjType`` names the model type (the etcd ``/contiv.io/obj/modeldb/<name>/`` segment and
the ``type`` of links pointing at it), the REST plural (``/api/v1/<plural>/``, spelled as the
original: ``policys``, ``Bgps``), whether inspect has an ``Oper`` part, the hooks module, and
the single-valued relations crud maintains by itself (``Relation``):

- ``link_name``: the object's own ``links.<Name>`` = ``{type,key}`` of the target
- ``own_set``: or the object's own ``link-sets.<Name>`` gets the target (rule -> Policies)
- ``reverse_set``: the target's ``link-sets.<Name>`` gets this object

Derived link sets (``ObjType.derived_sets``, the tenant's): a set whose members are exactly the
objects of one type whose key is ``<owner key>:...`` (every object of a tenant is keyed
``<tenant>:<name>`` and is refused while its tenant is missing; tenant names cannot contain
``:``). Such a set is NOT stored in the owner's record: crud computes it when the owner is read
(``Crud.materialize``), so creating the 10,000th network of a tenant does not rewrite a record
holding the 9,999 others (docs/decisions.md "derived tenant link sets"). Relations whose
``reverse_set`` is derived only set the member's own ``links.<Name>``.

Indexed link sets (``ObjType.indexed_sets``: a network's ``EndpointGroups`` and ``Servicelbs``, a
netprofile's ``EndpointGroups``, a policy's ``EndpointGroups`` and ``Rules``): members that are not
keyed under the owner, so they cannot be derived from a key prefix. Each member is one link key
``/contiv.io/obj/links/<owner type>/<owner key>/<set>/<member key>`` (value: the member's type),
put or deleted in the member's own txn; the owner's record is read (compare-fenced) but not
rewritten, so adding the 1,000th group to a network costs what the first did. Crud builds the set
on read (``Crud.materialize``) as the union of the link keys and whatever the stored record still
holds (records written by the original, by ``netmaster migrate`` or by an earlier contivpy keep
their members; removing such a member also removes it from the record). Deleting an owner deletes
its link keys (one prefix delete). docs/decisions.md "indexed link sets".

Relations are applied on create, re-pointed on update when the target key changes, and removed
on delete, inside the object's txn. Missing targets are skipped here; hooks refuse them with the
original's message. Volumes/volumeProfiles are routed but have no callbacks in the original, so
every write answers "Invalid object type" (``ObjType.invalid``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Relation:
    target_type: str
    target_key: Callable[[dict], str]
    link_name: str = ""
    own_set: str = ""
    reverse_set: str = ""


@dataclass(frozen=True)
class ObjType:
    name: str
    plural: str
    has_oper: bool
    hooks: str = ""  # name for contivpy.netmaster.hooks.load ("network", ...)
    links: tuple[Relation, ...] = field(default_factory=tuple)
    invalid: bool = False
    derived_sets: tuple[tuple[str, str], ...] = ()  # (set name, member type): computed on read
    indexed_sets: tuple[str, ...] = ()  # set names kept as link keys, built on read


def _tenant(o: dict) -> str:
    return o.get("tenantName", "")


def _tk(name_field: str) -> Callable[[dict], str]:
    def key(o: dict) -> str:
        name = o.get(name_field, "")
        return f"{o.get('tenantName', '')}:{name}" if name else ""

    return key


_ROWS = [
    ObjType("aciGw", "aciGws", True, "aci_gw"),
    ObjType(
        "appProfile",
        "appProfiles",
        False,
        "app_profile",
        (Relation("tenant", _tenant, link_name="Tenant", reverse_set="AppProfiles"),),
    ),
    ObjType("Bgp", "Bgps", True, "bgp"),
    ObjType(
        "endpointGroup",
        "endpointGroups",
        True,
        "group",
        (
            Relation("network", _tk("networkName"), link_name="Network", reverse_set="EndpointGroups"),
            Relation("netprofile", _tk("netProfile"), link_name="NetProfile", reverse_set="EndpointGroups"),
            Relation("tenant", _tenant, link_name="Tenant", reverse_set="EndpointGroups"),
        ),
    ),
    ObjType("extContractsGroup", "extContractsGroups", False, "ext_contracts"),
    ObjType("global", "globals", True, "global_"),
    ObjType(
        "netprofile",
        "netprofiles",
        False,
        "netprofile",
        (Relation("tenant", _tenant, link_name="Tenant", reverse_set="NetProfiles"),),
        indexed_sets=("EndpointGroups",),
    ),
    ObjType(
        "network",
        "networks",
        True,
        "network",
        (Relation("tenant", _tenant, link_name="Tenant", reverse_set="Networks"),),
        indexed_sets=("EndpointGroups", "Servicelbs"),
    ),
    ObjType(
        "policy",
        "policys",
        True,
        "policy",
        (Relation("tenant", _tenant, link_name="Tenant", reverse_set="Policies"),),
        indexed_sets=("EndpointGroups", "Rules"),
    ),
    ObjType(
        "rule",
        "rules",
        False,
        "rule",
        (Relation("policy", _tk("policyName"), own_set="Policies", reverse_set="Rules"),),
    ),
    ObjType(
        "serviceLB",
        "serviceLBs",
        True,
        "service_lb",
        (
            Relation("network", _tk("networkName"), link_name="Network", reverse_set="Servicelbs"),
            Relation("tenant", _tenant, link_name="Tenant", reverse_set="Servicelbs"),
        ),
    ),
    ObjType(
        "tenant",
        "tenants",
        True,
        "tenant",
        derived_sets=(
            ("AppProfiles", "appProfile"),
            ("EndpointGroups", "endpointGroup"),
            ("NetProfiles", "netprofile"),
            ("Networks", "network"),
            ("Policies", "policy"),
            ("Servicelbs", "serviceLB"),
        ),
    ),
    ObjType("volume", "volumes", False, invalid=True),
    ObjType("volumeProfile", "volumeProfiles", False, invalid=True),
]

TYPES: dict[str, ObjType] = {t.name: t for t in _ROWS}
# (owner type, set name) of every derived set: crud does not store these in the owner's record
DERIVED: frozenset[tuple[str, str]] = frozenset((t.name, s) for t in _ROWS for s, _ in t.derived_sets)
# (owner type, set name) of every indexed set: members are link keys, not entries of the owner
INDEXED: frozenset[tuple[str, str]] = frozenset((t.name, s) for t in _ROWS for s in t.indexed_sets)
BY_PLURAL: dict[str, ObjType] = {t.plural: t for t in _ROWS}

__all__ = ["ObjType", "Relation", "TYPES", "BY_PLURAL", "DERIVED", "INDEXED"]
