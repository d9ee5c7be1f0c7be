"""BgpManager: the host's Bgp config (``/contiv.io/state/bgp/<host>``) -> gobgpd + the vlrouter's routes
(docs/ovs-pipeline.md "vlan routing mode", docs/deployment.md "gobgpd").

Acts only on this host's key, and only in forwarding mode ``routing`` (the original ran its BGP speaker
with the vlan bridge's ``vlrouter`` datapath). One reconciler key, ``bgp``:
  desired (config present, routing mode) -> the router port ``inb01`` with the router-ip, then gobgpd
  started/configured through the adapter (netplugin/gobgp: global AS and router id, the neighbor, graceful
  restart) advertising a /32 for every local endpoint on the vlan bridge;
  not desired -> gobgpd stopped (its PID only), the learned routes and the router port removed.
A bad config (router-ip, AS) is a permanent failure of the key (netmaster refuses it first).

Learned routes are event driven: ``watch`` follows the adapter's WatchEvent stream (best-path
changes of gobgpd's RIB) and installs or removes a route as its event arrives; every (re)connect starts
with a full resync (the whole learned table replaced, so a route withdrawn while the stream was down is
removed). The table of learned best paths is ``learned`` (prefix -> LearnedRoute); it is turned into
vlrouter routes ``(prefix, tenant) -> next hop MAC``: the tenant is the one of the vlan network whose
subnet contains the prefix (a prefix in no local network is not installed), the MAC is the kernel's
neighbor entry of the next hop (the BGP session to the neighbor keeps it resolved; an unresolved next
hop is retried by the periodic round).

``run`` is the periodic part (every ``poll`` seconds while applied): the adapter's ``ensure`` (which also
restarts a gobgpd that died and re-advertises everything), the advertised set following the local
endpoints, the routes recomputed from ``learned`` (networks and neighbor MACs change too) and the
neighbor state for ``inspect`` (the debug ``/inspect/bgp``: neighbor state and route counts, the Bgp
object's oper). It never polls the RIB for routes.

An agent restart does not reset the session: gobgpd keeps running and the new agent adopts it (the
adapter's PID file); routes and flows converge by diff.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from contivpy.common.errors import ContivError, ValidationError
from contivpy.common.reconcile import Reconciler
from contivpy.netplugin import links

if TYPE_CHECKING:  # the adapter imports grpc + protobuf: loaded only once a Bgp config applies here
    from contivpy.netplugin.gobgp import BgpConfig, GoBgp, LearnedRoute

log = logging.getLogger(__name__)
KEY = "bgp"


def parse_state(value: str) -> BgpConfig:
    """The state record ``{"router-ip","as","neighbor-as","neighbor"}`` -> BgpConfig (ValidationError)."""
    from contivpy.netplugin.gobgp import BgpConfig

    try:
        st = json.loads(value)
        iface = ipaddress.IPv4Interface(st.get("router-ip", ""))
        if iface.network.prefixlen == 32 and "/" not in st.get("router-ip", ""):
            raise ValueError
        neighbor = str(ipaddress.IPv4Address(st.get("neighbor", "")))
        asn, nas = int(st.get("as", "")), int(st.get("neighbor-as", ""))
    except (ValueError, TypeError, AttributeError):
        raise ValidationError(f"invalid Bgp state {value!r}") from None
    if not (0 < asn < 2**32 and 0 < nas < 2**32):
        raise ValidationError(f"invalid AS number in Bgp state {value!r}")
    return BgpConfig(str(iface.ip), asn, neighbor, nas)


def router_mac(ip: str) -> str:
    return "02:02:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


class BgpManager:
    def __init__(self, cfg, dp, gobgp: GoBgp | None = None, poll: float = 1.0) -> None:
        self.cfg, self.dp, self.poll = cfg, dp, poll
        self._gobgp = gobgp  # made on first use: agents without BGP never import grpc
        self.mode = cfg.fwdmode
        self.desired: str | None = None  # the raw state record
        self.applied: BgpConfig | None = None
        self.router_cidr = ""
        self.routes: dict[tuple[str, str], str] = {}
        self.learned: dict[str, LearnedRoute] = {}  # followed by watch()
        self.events = 0  # route events applied (inspect)
        self.resyncs = 0  # full resyncs (one per stream (re)connect)
        self._generation = 0  # bumped when the speaker is (re)configured or stopped: the watch reconnects
        self.last_error = ""
        self._state: dict = {}
        self.rec: Reconciler[str] = Reconciler("bgp", self._locked_reconcile, permanent=(ValidationError,))
        self._lock = (
            asyncio.Lock()
        )  # reconcile and the periodic sync never interleave (no restart after stop)

    @property
    def gobgp(self) -> GoBgp:
        if self._gobgp is None:
            from contivpy.netplugin.gobgp import GoBgp

            gdir = self.cfg.gobgp_dir
            self._gobgp = GoBgp(Path(gdir), api=f"unix://{gdir}/gobgpd.sock")
        return self._gobgp

    # ---- desired state -------------------------------------------------------------------------
    def on_update(self, host: str, value: str | None) -> None:
        if host != self.cfg.host:
            return
        self.desired = value
        self.rec.enqueue(KEY)

    def set_fwd_mode(self, mode: str) -> None:
        self.mode = mode
        self.rec.enqueue(KEY)

    def _want(self) -> tuple[BgpConfig, str] | None:
        if self.desired is None or self.mode != "routing":
            return None
        cfg = parse_state(self.desired)
        return cfg, json.loads(self.desired)["router-ip"]

    def _advertise(self) -> set[str]:
        return {f"{ip}/32" for ip, _ in self.dp.vlan_endpoints()}

    # ---- convergence -----------------------------------------------------------------------------
    async def _locked_reconcile(self, key: str) -> None:
        async with self._lock:
            await self.reconcile(key)

    async def reconcile(self, key: str) -> None:
        want = self._want()
        if want is None:
            if self.applied is not None or (self._gobgp is not None and self._gobgp.running()):
                await self._teardown()
            return
        cfg, cidr = want
        if cidr != self.router_cidr:
            await self.dp.ensure_router_port(cidr, router_mac(cfg.router_id))
            self.router_cidr = cidr
        await self.gobgp.ensure(cfg, self._advertise())
        if self.applied != cfg:
            self._generation += 1
            log.info("BGP speaker up: AS %d, router id %s, neighbor %s AS %d", cfg.asn, cfg.router_id,
                     cfg.neighbor, cfg.neighbor_as)  # fmt: skip
        self.applied = cfg
        await self.sync()  # routes at once (after an agent restart: before the start-up prune)

    async def _teardown(self) -> None:
        await self.gobgp.stop()
        self.applied, self.routes, self._state, self.learned = None, {}, {}, {}
        self._generation += 1
        await self.dp.remove_router_port()
        self.router_cidr = ""
        log.info("BGP speaker stopped")

    def _tenant_of(self, prefix: str) -> str:
        net = ipaddress.IPv4Network(prefix, strict=False)
        for subnet, tenant in self.dp.vlan_networks():
            if net.subnet_of(ipaddress.IPv4Network(subnet, strict=False)):
                return tenant
        return ""

    async def sync(self) -> None:
        """One periodic round: supervise gobgpd, follow the local endpoints, reinstall, read the neighbor."""
        cfg = self.applied
        if cfg is None:
            return
        await self.gobgp.ensure(cfg, self._advertise())
        await self.install()
        # recorded with the PID it was read from: after a restart, inspect never shows the old state
        self._state = {"pid": self.gobgp.pid, "neighbor": await self.gobgp.neighbor()}

    def apply_event(self, kind: str, x) -> None:
        """One item of the adapter's watch stream applied to ``learned`` (no I/O)."""
        if kind == "reset":
            self.learned = {r.prefix: r for r in x}
            self.resyncs += 1
        elif kind == "add":
            self.learned[x.prefix] = x
        else:
            self.learned.pop(x, None)
        self.events += kind != "reset"

    async def install(self) -> None:
        """``learned`` -> the vlrouter's routes (only when they changed)."""
        routes: dict[tuple[str, str], str] = {}
        for r in list(self.learned.values()):
            tenant = self._tenant_of(r.prefix)
            mac = await links.neighbor_mac(r.next_hop) if tenant and r.next_hop else ""
            if mac:
                routes[(r.prefix, tenant)] = mac
        if routes != self.routes:
            await self.dp.set_bgp_routes(routes)
            log.info("BGP routes installed: %d (of %d learned)", len(routes), len(self.learned))
            self.routes = routes

    async def watch(self) -> None:
        """Follow gobgpd's best-path events while the speaker is applied; reconnect (and resync) when
        the stream breaks (gobgpd restarted, config changed)."""
        while True:
            if self.applied is None or not self.gobgp.running():
                await asyncio.sleep(0.2)
                continue
            gen = self._generation
            try:
                async with contextlib.aclosing(self.gobgp.watch()) as events:
                    async for kind, x in events:
                        async with self._lock:
                            if self.applied is None or gen != self._generation:
                                break  # torn down or reconfigured: reconnect, resync
                            self.apply_event(kind, x)
                            await self.install()
            except (ContivError, OSError) as e:
                log.debug("BGP watch: %s (reconnecting)", e)
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watch())
            tg.create_task(self._periodic())

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                async with self._lock:
                    await self.sync()
                self.last_error = ""
            except (ContivError, OSError) as e:
                if str(e) != self.last_error:
                    log.error("BGP: %s", e)
                self.last_error = str(e)

    async def close(self) -> None:
        """Agent shutdown: gobgpd keeps running (no session flap); the next agent adopts it."""
        if self._gobgp is not None:
            await self._gobgp.close()

    # ---- inspect ---------------------------------------------------------------------------------
    def inspect(self) -> dict:
        """``/inspect/bgp``: the shape netmaster's Bgp oper reads (``Peers[0].State``, ``Dsts``)."""
        if self.applied is None:
            return {"Peers": [], "Dsts": [], "Error": self.last_error}
        fresh = self._state.get("pid") == self.gobgp.pid
        n = (self._state.get("neighbor") or {}) if fresh else {}
        learned = sorted(self.learned.values())
        peer = {
            "Conf": {"NeighborAddress": self.applied.neighbor, "PeerAs": self.applied.neighbor_as},
            "State": {
                "SessionState": n.get("state", "unknown"),
                "AdminState": n.get("admin", ""),
                "Received": n.get("received", 0),
                "Accepted": n.get("accepted", 0),
                "Advertised": n.get("advertised", 0),
            },
        }
        return {
            "Global": {"As": self.applied.asn, "RouterId": self.applied.router_id},
            "Peers": [peer],
            "Dsts": [r.prefix for r in learned],
            "Installed": [f"{p} ({t}) via {m}" for (p, t), m in sorted(self.routes.items())],
            "Restarts": self.gobgp.restarts,
            "Events": self.events,
            "Resyncs": self.resyncs,
            "Pid": self.gobgp.pid,
            "Error": self.last_error,
        }
