"""OVSDB adapter of the netplugin agent: a small asyncio RFC 7047 client (no thread, no ovsdbapp).

Why not ovsdbapp: its IDL runs in its own thread, its Open_vSwitch transactions wait for vswitchd's
``cur_cfg`` and it mirrors the whole database; the agent needs a dozen idempotent operations, each one
transaction, awaited on the event loop. This module and ``ovsdb_conn.py`` (the connection:
JSON-RPC framing, request ids, ``echo``, reconnect; ``OvsdbClient`` extends it) are the only places
that speak OVSDB.

Design
- One persistent connection (ovsdb_conn.py): on a broken connection every pending call fails with
  ``ExternalServiceError`` and the next call reconnects.
- Operations are *ensure*-style and idempotent (design guide A2): ``ensure_bridge``, ``ensure_port``
  (access / trunk / vxlan / internal), ``remove_port`` (absent is fine), ``list_ports`` (to reconcile after a
  restart) and ``wait_ofport``. Each one commits in one ``transact``; Port and Interface rows are garbage
  collected by ovsdb-server when the bridge stops referencing them.
- An existing port whose settings already match is left untouched, so its ofport (and every flow naming
  it) survives an agent restart. A port with different settings is replaced.

Contiv specifics (docs/original.md §5.2/5.3): bridges ``contivVxlanBridge``/``contivVlanBridge`` with
``fail_mode=secure``, OpenFlow10..13 and controller ``tcp:127.0.0.1:6633/6634``; ports carry
``external_ids:endpoint-id``; VXLAN ports ``vxif<ip without dots>`` with ``remote_ip``, ``key=flow``,
``tos=inherit``, ``dst_port``; endpoint Interfaces get ``ingress_policing_rate``/``_burst`` from the
group's netprofile (``set_ingress_policing``).

Group commit: port additions (``_add_port``: ``ensure_port``, ``ensure_bond``) of concurrent callers
go out in ONE transaction (common/groupcommit.py: whoever comes while one is in flight joins the
next; each caller gets its own answer, and a refused transaction is retried request by request, so
one bad request fails only its caller). Every transaction that changes a bridge makes ovs-vswitchd
reconfigure, work that grows with the number of ports; N concurrent endpoint creates now cause one.
The batch also waits (one ``wait`` transaction) until vswitchd has given the new ports their
ofports, which ``wait_ofport`` then returns without asking; so a batch stays in flight while
vswitchd reconfigures, and the creates arriving meanwhile all go in the next one.

Bonds (``ensure_bond``): one Port with several Interfaces and ``bond_mode``/``lacp``/``other_config``. An
equal bond (same members, same settings) is kept; otherwise the bond, and any port named like one of its
members, is replaced in one transaction. ``bond_members`` reads a bond back (absent/not a bond: None).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from contivpy.common.errors import ExternalServiceError
from contivpy.common.groupcommit import GroupCommit
from contivpy.netplugin.ovsdb_conn import DB, OvsdbConnection

log = logging.getLogger(__name__)
#: vswitchd probes an idle controller connection after this many ms and drops it when no answer
#: comes within as long again (OVS default 5,000). A busy agent (100 agents starting on 2 cores,
#: bench_mesh) then lost its OpenFlow connections and re-synced every flow, again and again; a
#: dead agent is noticed anyway (its TCP connection closes), and fail_mode=secure keeps the flows.
CONTROLLER_INACTIVITY_PROBE_MS = 30_000


def _set(values) -> list:
    return ["set", list(values)]


def _map(d: dict[str, str]) -> list:
    return ["map", [[k, str(v)] for k, v in sorted(d.items())]]


def _renamed(obj, k: int):
    """``obj`` (operations or a row) with every named uuid (``uuid-name`` and ``["named-uuid", X]``)
    suffixed ``_k``, so that several requests' operations can share one transaction."""
    if isinstance(obj, list):
        if len(obj) == 2 and obj[0] == "named-uuid" and isinstance(obj[1], str):
            return ["named-uuid", f"{obj[1]}_{k}"]
        return [_renamed(x, k) for x in obj]
    if isinstance(obj, dict):
        return {key: (f"{v}_{k}" if key == "uuid-name" else _renamed(v, k)) for key, v in obj.items()}
    return obj


def _from_set(v) -> list:
    if isinstance(v, list) and v and v[0] == "set":
        return v[1]
    return [v]


def _from_map(v) -> dict[str, str]:
    if isinstance(v, list) and v and v[0] == "map":
        return {k: val for k, val in v[1]}
    return {}


@dataclass(frozen=True)
class PortInfo:
    name: str
    tag: int | None = None
    vlan_mode: str = ""
    type: str = ""
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    ofport: int | None = None
    policing: tuple[int, int] | None = None  # Interface ingress_policing_rate/_burst, when listed


def _port_info(name: str, p: dict, i: dict) -> PortInfo:
    """A PortInfo from a selected Port row and its (first) Interface row."""
    tag = _from_set(p["tag"])
    ofp = _from_set(i.get("ofport", ["set", []]))
    vm = _from_set(p["vlan_mode"])
    rate, burst = i.get("ingress_policing_rate"), i.get("ingress_policing_burst")
    return PortInfo(
        name=name,
        tag=tag[0] if tag else None,
        vlan_mode=vm[0] if vm else "",
        type=i.get("type", ""),
        options=_from_map(i.get("options")),
        external_ids=_from_map(p["external_ids"]),
        ofport=ofp[0] if ofp else None,
        policing=(rate, burst) if isinstance(rate, int) and isinstance(burst, int) else None,
    )


class OvsdbClient(OvsdbConnection):
    """The agent's OVSDB operations, each one transaction on the shared connection."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        super().__init__(address, timeout)
        self._ofport_hint: dict[str, int] = {}  # ofports read by a port-add batch, taken by wait_ofport
        # Port additions of concurrent callers (endpoint creates) share one transaction: each
        # bridge-changing transaction makes ovs-vswitchd reconfigure, O(ports) of work.
        self._adds: GroupCommit[tuple[str, list[dict], dict], bool] = GroupCommit(
            self._add_ports_waited, self._add_port_one, name="ovsdb_port_adds"
        )

    # -- bridges ---------------------------------------------------------------------------
    async def bridge_exists(self, name: str) -> bool:
        return bool(await self.select("Bridge", [["name", "==", name]], ["name"]))

    async def ensure_bridge(
        self,
        name: str,
        controller: str | None,
        datapath_type: str = "system",
        fail_mode: str = "secure",
        protocols: tuple[str, ...] = ("OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13"),
    ) -> None:
        """Create the bridge (with its internal port) or fix its settings in place (never recreated)."""
        settings = {"fail_mode": fail_mode, "protocols": _set(protocols), "datapath_type": datapath_type}
        rows = await self.select("Bridge", [["name", "==", name]], ["_uuid", "controller"])
        ops: list[dict] = []
        if controller:
            ops.append(
                {
                    "op": "insert",
                    "table": "Controller",
                    "row": {
                        "target": controller,
                        "max_backoff": 1000,
                        "inactivity_probe": CONTROLLER_INACTIVITY_PROBE_MS,
                    },
                    "uuid-name": "ctl",
                }
            )
            settings["controller"] = _set([["named-uuid", "ctl"]])
        if rows:
            ops.append({"op": "update", "table": "Bridge", "where": [["name", "==", name]], "row": settings})
            await self.transact(*ops)
            return
        ops += [
            {
                "op": "insert",
                "table": "Interface",
                "row": {"name": name, "type": "internal"},
                "uuid-name": "bi",
            },
            {
                "op": "insert",
                "table": "Port",
                "row": {"name": name, "interfaces": ["named-uuid", "bi"]},
                "uuid-name": "bp",
            },
            {
                "op": "insert",
                "table": "Bridge",
                "row": {"name": name, "ports": _set([["named-uuid", "bp"]]), **settings},
                "uuid-name": "br",
            },
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["bridges", "insert", _set([["named-uuid", "br"]])]],
            },
        ]
        await self.transact(*ops)
        log.info("created OVS bridge %s (datapath %s, controller %s)", name, datapath_type, controller)

    async def delete_bridge(self, name: str) -> None:
        rows = await self.select("Bridge", [["name", "==", name]], ["_uuid"])
        if rows:
            await self.transact(
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["bridges", "delete", _set([rows[0]["_uuid"]])]],
                }
            )

    # -- ports -----------------------------------------------------------------------------
    async def list_ports(self, bridge: str) -> dict[str, PortInfo]:
        """Every port of ``bridge`` except the bridge's own internal port, by name."""
        br = await self.select("Bridge", [["name", "==", bridge]], ["ports"])
        if not br:
            return {}
        port_uuids = {u[1] for u in _from_set(br[0]["ports"])}
        ports, ifaces = await self.transact(
            {"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name", "tag", "vlan_mode", "interfaces", "external_ids"]},
            {"op": "select", "table": "Interface", "where": [], "columns": ["_uuid", "name", "type", "options", "ofport", "external_ids", "ingress_policing_rate", "ingress_policing_burst"]},
        )  # fmt: skip
        by_uuid = {i["_uuid"][1]: i for i in ifaces["rows"]}
        out: dict[str, PortInfo] = {}
        for p in ports["rows"]:
            if p["_uuid"][1] not in port_uuids or p["name"] == bridge:
                continue
            iface_ids = [u[1] for u in _from_set(p["interfaces"])]
            i = by_uuid.get(iface_ids[0], {}) if iface_ids else {}
            out[p["name"]] = _port_info(p["name"], p, i)
        return out

    async def ensure_port(
        self,
        bridge: str,
        name: str,
        *,
        tag: int | None = None,
        vlan_mode: str | None = None,
        type: str = "",
        options: dict[str, str] | None = None,
        external_ids: dict[str, str] | None = None,
        existing: dict[str, PortInfo] | None = None,
    ) -> bool:
        """Make ``name`` a port of ``bridge`` with exactly these settings. Returns True if it (re)created it."""
        options, external_ids = options or {}, external_ids or {}
        port_uuid = None
        if existing is not None:
            cur = existing.get(name)
        else:  # this one port only (listing the bridge would cost O(ports) per endpoint create)
            cur, port_uuid, other_bridge = await self._port_info(bridge, name)
            if other_bridge:
                cur = None  # a port of that name on another bridge: moved below
        if cur is not None:
            same = (
                cur.tag == tag
                and cur.type == type
                and cur.options == {k: str(v) for k, v in options.items()}
                and cur.external_ids == external_ids
                and (vlan_mode is None or cur.vlan_mode == vlan_mode)
            )
            if same:
                return False
        # A port of that name anywhere (this or another bridge) is removed in the same transaction.
        ops = self._remove_ops(port_uuid) if port_uuid else await self._remove_port_ops(name)
        iface_row: dict = {"name": name}
        if type:
            iface_row["type"] = type
        if options:
            iface_row["options"] = _map(options)
        if external_ids:
            iface_row["external_ids"] = _map(external_ids)
        port_row: dict = {"name": name, "interfaces": ["named-uuid", "iface"]}
        if tag is not None:
            port_row["tag"] = tag
        if vlan_mode:
            port_row["vlan_mode"] = vlan_mode
        if external_ids:
            port_row["external_ids"] = _map(external_ids)
        ops.append({"op": "insert", "table": "Interface", "row": iface_row, "uuid-name": "iface"})
        return await self._add_port(bridge, ops, port_row)

    async def _port_info(self, bridge: str, name: str) -> tuple[PortInfo | None, list | None, bool]:
        """Port ``name`` wherever it is, in one transaction: (its info, its Port uuid, whether it
        belongs to a bridge other than ``bridge``); (None, None, False) when there is none."""
        ports, ifaces, brs = await self.transact(
            {"op": "select", "table": "Port", "where": [["name", "==", name]], "columns": ["_uuid", "tag", "vlan_mode", "interfaces", "external_ids"]},
            {"op": "select", "table": "Interface", "where": [["name", "==", name]], "columns": ["_uuid", "type", "options", "ofport"]},
            {"op": "select", "table": "Bridge", "where": [["name", "==", bridge]], "columns": ["ports"]},
        )  # fmt: skip
        if not ports["rows"]:
            return None, None, False
        p = ports["rows"][0]
        iface_ids = {u[1] for u in _from_set(p["interfaces"])}
        i = next((r for r in ifaces["rows"] if r["_uuid"][1] in iface_ids), {})
        on_bridge = bool(brs["rows"]) and p["_uuid"][1] in {u[1] for u in _from_set(brs["rows"][0]["ports"])}
        return _port_info(name, p, i), p["_uuid"], not on_bridge

    async def bond_members(self, name: str) -> list[str] | None:
        """The member interface names of port ``name`` if it is a bond (two or more interfaces)."""
        rows = await self.select("Port", [["name", "==", name]], ["interfaces"])
        if not rows:
            return None
        uuids = [u[1] for u in _from_set(rows[0]["interfaces"])]
        if len(uuids) < 2:
            return None
        ifaces = await self.select("Interface", [], ["_uuid", "name"])
        return sorted(i["name"] for i in ifaces if i["_uuid"][1] in uuids)

    async def ensure_bond(
        self,
        bridge: str,
        name: str,
        members: list[str],
        *,
        bond_mode: str = "balance-tcp",
        lacp: str = "active",
        other_config: dict[str, str] | None = None,
        vlan_mode: str | None = "trunk",
        external_ids: dict[str, str] | None = None,
    ) -> bool:
        """Make ``name`` a bond port of ``bridge`` over ``members`` with these settings; True if (re)created.

        Kept as is when members and settings match (so member ofports survive a restart). Otherwise the
        old bond and any port named like a member (a former single uplink) go in the same transaction."""
        if len(members) < 2:
            raise ExternalServiceError(f"bond {name} needs at least two interfaces")
        other_config, external_ids = other_config or {}, external_ids or {}
        rows = await self.select(
            "Port", [["name", "==", name]], ["bond_mode", "lacp", "other_config", "vlan_mode", "external_ids"]
        )
        if rows and await self.bond_members(name) == sorted(members):
            r = rows[0]
            vm = _from_set(r["vlan_mode"])
            if (
                _from_set(r["bond_mode"]) == [bond_mode]
                and _from_set(r["lacp"]) == [lacp]
                and _from_map(r["other_config"]) == {k: str(v) for k, v in other_config.items()}
                and _from_map(r["external_ids"]) == external_ids
                and (vlan_mode is None or vm == [vlan_mode])
            ):
                return False
        ops: list[dict] = []
        for n in {name, *members}:
            ops += await self._remove_port_ops(n)
        port_row: dict = {
            "name": name,
            "interfaces": _set([["named-uuid", f"if{i}"] for i in range(len(members))]),
            "bond_mode": bond_mode,
            "lacp": lacp,
        }
        if other_config:
            port_row["other_config"] = _map(other_config)
        if vlan_mode:
            port_row["vlan_mode"] = vlan_mode
        if external_ids:
            port_row["external_ids"] = _map(external_ids)
        ops += [
            {"op": "insert", "table": "Interface", "row": {"name": m}, "uuid-name": f"if{i}"}
            for i, m in enumerate(members)
        ]
        return await self._add_port(bridge, ops, port_row)

    async def _add_port(self, bridge: str, ops: list[dict], port_row: dict) -> bool:
        """Run ``ops`` (which insert the port's interfaces) plus the Port row ``port_row`` (uuid-name
        ``port``) into ``bridge``, in one transaction; ExternalServiceError if the bridge is missing.
        Concurrent calls share one transaction (``_adds``, see the module docstring)."""
        return await self._adds.submit((bridge, ops, port_row))

    async def _add_port_one(self, req: tuple[str, list[dict], dict]) -> bool:
        return (await self._add_ports_waited([req]))[0]

    async def _add_ports_waited(self, reqs: list[tuple[str, list[dict], dict]]) -> list[bool | BaseException]:
        """``_add_ports``, then ONE transaction that waits until vswitchd has given every added
        single-interface port its ofport and reads them (``_ofport_hint``: the callers'
        ``wait_ofport`` then asks nothing). The batch is in flight until vswitchd has taken the
        change in, so the creates arriving meanwhile join the next one: fewer reconfigurations.
        A failed wait is ignored (each caller's ``wait_ofport`` waits, polls and reports)."""
        out = await self._add_ports(reqs)
        names = [
            row["name"]
            for (_, _, row), ok in zip(reqs, out, strict=True)
            if ok is True
            and isinstance(row.get("interfaces"), list)
            and row["interfaces"][:1] == ["named-uuid"]
        ]
        if not names:
            return out
        ms = int(min(5.0, self.timeout / 2) * 1000)
        ops: list[dict] = []
        for n in names:
            where = [["name", "==", n]]
            ops.append({"op": "wait", "table": "Interface", "where": where, "columns": ["ofport"],
                        "until": "!=", "rows": [{"ofport": ["set", []]}], "timeout": ms})  # fmt: skip
        for n in names:
            ops.append(
                {"op": "select", "table": "Interface", "where": [["name", "==", n]], "columns": ["ofport"]}
            )
        try:
            res = await self.transact(*ops)
        except ExternalServiceError as e:
            log.debug("OVSDB: waiting for the ofports of %s failed: %s", names, e)
            return out
        for n, r in zip(names, res[len(names) :], strict=False):
            rows = r.get("rows") if isinstance(r, dict) else None
            ofp = _from_set(rows[0]["ofport"]) if rows else []
            if ofp and isinstance(ofp[0], int) and ofp[0] > 0:
                self._ofport_hint[n] = ofp[0]
        return out

    async def _add_ports(self, reqs: list[tuple[str, list[dict], dict]]) -> list[bool | BaseException]:
        """Several ``_add_port`` requests in ONE transaction: request k's named uuids get the suffix
        ``_k``; one ``ports`` mutation and one existence check per bridge. A failing operation fails
        the whole transaction (raised: the group commit then retries each request alone)."""
        ops: list[dict] = []
        by_bridge: dict[str, list[list]] = {}
        for k, (bridge, pre, port_row) in enumerate(reqs):
            self._ofport_hint.pop(port_row.get("name", ""), None)
            ops += _renamed(pre, k)
            ops.append(
                {"op": "insert", "table": "Port", "row": _renamed(port_row, k), "uuid-name": f"port_{k}"}
            )
            by_bridge.setdefault(bridge, []).append(["named-uuid", f"port_{k}"])
        checks: dict[str, int] = {}
        for bridge, uuids in by_bridge.items():
            where = [["name", "==", bridge]]
            ops.append({"op": "mutate", "table": "Bridge", "where": where, "mutations": [["ports", "insert", _set(uuids)]]})  # fmt: skip
            checks[bridge] = len(ops)
            ops.append({"op": "select", "table": "Bridge", "where": where, "columns": ["name"]})
        res = await self.transact(*ops)
        if len(reqs) > 1:
            log.debug("OVSDB: %d ports added in one transaction", len(reqs))
        out: list[bool | BaseException] = []
        for bridge, _, _ in reqs:
            ok = bool(res[checks[bridge]].get("rows"))
            out.append(True if ok else ExternalServiceError(f"OVS bridge {bridge} does not exist"))
        return out

    async def _remove_port_ops(self, name: str) -> list[dict]:
        rows = await self.select("Port", [["name", "==", name]], ["_uuid"])
        if not rows:
            return []
        return self._remove_ops(rows[0]["_uuid"])

    @staticmethod
    def _remove_ops(uuid: list) -> list[dict]:
        return [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["ports", "includes", _set([uuid])]],
                "mutations": [["ports", "delete", _set([uuid])]],
            }
        ]

    async def remove_port(self, bridge: str, name: str) -> bool:
        """Remove port ``name`` (from whatever bridge holds it). Absent is fine; returns True if removed."""
        self._ofport_hint.pop(name, None)
        ops = await self._remove_port_ops(name)
        if ops:
            await self.transact(*ops)
        return bool(ops)

    async def ensure_vxlan_port(
        self, bridge: str, name: str, remote_ip: str, dst_port: int = 4789, existing: dict | None = None
    ) -> bool:
        return await self.ensure_port(
            bridge,
            name,
            vlan_mode="trunk",
            type="vxlan",
            options={"remote_ip": remote_ip, "key": "flow", "tos": "inherit", "dst_port": str(dst_port)},
            external_ids={"endpoint-id": name},
            existing=existing,
        )

    async def ensure_internal_port(
        self,
        bridge: str,
        name: str,
        mac: str,
        *,
        tag: int | None = None,
        existing: dict | None = None,
        external_ids: dict[str, str] | None = None,
    ) -> bool:
        """An internal port (the host side is a network device of the same name) with Interface ``mac``
        set; returns True if the port was (re)created. Idempotent: an equal port is left as is."""
        created = await self.ensure_port(
            bridge,
            name,
            tag=tag,
            vlan_mode="access" if tag is not None else None,
            type="internal",
            external_ids=external_ids or {"endpoint-id": name},
            existing=existing,
        )
        rows = await self.select("Interface", [["name", "==", name]], ["mac"])
        cur = _from_set(rows[0]["mac"]) if rows else []
        if cur != [mac]:
            await self.transact(
                {"op": "update", "table": "Interface", "where": [["name", "==", name]], "row": {"mac": mac}}
            )
        return created

    async def set_ingress_policing(self, name: str, rate_kbps: int, burst_kb: int) -> None:
        """Set Interface ``name``'s ``ingress_policing_rate``/``_burst`` (0/0 = no policing); idempotent."""
        row = {"ingress_policing_rate": int(rate_kbps), "ingress_policing_burst": int(burst_kb)}
        where = [["name", "==", name]]
        res = await self.transact({"op": "update", "table": "Interface", "where": where, "row": row})
        if not res or not res[0].get("count"):
            raise ExternalServiceError(f"OVS interface {name} does not exist")

    async def wait_ofport(self, name: str, timeout: float = 5.0) -> int:
        """Wait until vswitchd has attached the interface and return its OpenFlow port number."""
        hint = self._ofport_hint.pop(name, None)
        if hint is not None:  # read by the batch that added the port (after it got it)
            return hint
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.002
        where = [["name", "==", name]]
        # First ask ovsdb-server to hold the answer until vswitchd has set the ofport (a "wait"
        # operation): one round trip instead of polling. It returns at once when the row does not
        # exist yet; a timeout or an error falls back to the polling loop below.
        wait = {"op": "wait", "table": "Interface", "where": where, "columns": ["ofport"],
                "until": "!=", "rows": [{"ofport": ["set", []]}], "timeout": int(min(timeout, self.timeout / 2) * 1000)}  # fmt: skip
        sel = {"op": "select", "table": "Interface", "where": where, "columns": ["ofport", "error"]}
        try:
            first = (await self.call("transact", [DB, wait, sel]))[1].get("rows")
        except (ExternalServiceError, IndexError, AttributeError, TypeError):
            first = None
        while True:
            rows = first if first is not None else await self.select("Interface", where, ["ofport", "error"])
            first = None
            if rows:
                ofp = _from_set(rows[0]["ofport"])
                if ofp and ofp[0] > 0:
                    return ofp[0]
                if ofp and ofp[0] == -1:
                    err = _from_set(rows[0].get("error", ["set", []]))
                    if err:
                        raise ExternalServiceError(f"OVS could not add interface {name}: {err[0]}")
            if loop.time() > deadline:
                raise ExternalServiceError(f"timed out waiting for OVS to attach interface {name}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
