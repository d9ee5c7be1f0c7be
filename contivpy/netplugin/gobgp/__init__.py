"""GoBGP adapter: the only module that talks to gobgpd (docs/deployment.md "gobgpd").

One :class:`GoBgp` per host runs one gobgpd process and drives it over GoBGP's gRPC API (v3, package
``apipb``; our own minimal message set in ``gobgp_min.proto``, generated module ``gobgp_min_pb2``).
gRPC methods are called by path (``/apipb.GobgpApi/<Method>``), so no generated stubs are needed.

Design
- Desired state only: the caller hands a :class:`BgpConfig` (global AS/router-id, one neighbor, graceful
  restart) and the set of /32 prefixes to advertise; :meth:`GoBgp.ensure` converges gobgpd to it and is
  cheap when nothing changed (one GetBgp, one ListPeer, one ListPath). The caller runs it periodically,
  which is also the supervision: a gobgpd that died is started again and given everything again
  (global, neighbor, every advertised prefix); :attr:`restarts` counts it.
- API address: a unix socket by default (``unix:///run/contivpy/gobgpd.sock``): no TCP port to
  collide with, reachable from any network namespace. ``host:port`` works too.
- Process: started with its own session (a netplugin restart does not take it down), its PID kept in
  ``<run_dir>/gobgpd.pid``. A new agent *adopts* a running gobgpd whose PID file names a live gobgpd and
  whose API answers: an agent restart does not reset the BGP session at all. :meth:`stop` stops BGP and
  ends only the PID we started or adopted.
- Graceful restart (RFC 4724) is on for the global speaker and the neighbor (restart time
  ``restart_time``): while gobgpd restarts, the peer keeps our routes as stale instead of withdrawing them.
- Routes: :meth:`learned` returns the best path of every destination learned from a neighbor (not the
  ones we originate) with its next hop; :meth:`watch` follows them as they change (GoBGP's
  ``WatchEvent`` stream of best-path changes): one ``("reset", [routes])`` per (re)connect, a full
  resync taken after the stream is open, then ``("add", route)`` / ``("del", prefix)`` per event; :meth:`advertise` adds the missing prefixes (origin IGP, next hop
  = our router id) and deletes the ones we originated that are no longer wanted.
- :meth:`stop` (Bgp config deleted) withdraws every advertised prefix and deletes the neighbor (a
  Cease NOTIFICATION) before stopping: the peer drops our routes at once instead of keeping them as
  stale for the graceful-restart window, which is only for gobgpd dying or restarting.
- Every failure (gRPC status, gobgpd missing or dead, refused config) raises
  ``ExternalServiceError`` with a plain message; nothing gRPC-shaped leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import any_pb2, empty_pb2

from contivpy.common.errors import ExternalServiceError

from . import gobgp_min_pb2 as pb

__all__ = ["BgpConfig", "LearnedRoute", "GoBgp", "SESSION_STATES", "DEFAULT_API"]

log = logging.getLogger(__name__)

DEFAULT_API = "unix:///run/contivpy/gobgpd.sock"
_SVC = "/apipb.GobgpApi/"
_TYPE = "type.googleapis.com/apipb."
_V4 = pb.Family(afi=pb.Family.AFI_IP, safi=pb.Family.SAFI_UNICAST)
#: PeerState.SessionState numbers -> the names the original's inspect showed (lower case, as gobgp's CLI)
SESSION_STATES = {0: "unknown", 1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm",
                  6: "established"}  # fmt: skip
ADMIN_STATES = {0: "up", 1: "down", 2: "pfx_ct"}


@dataclass(frozen=True)
class BgpConfig:
    router_id: str  # IPv4 address (the router-ip without its length)
    asn: int
    neighbor: str
    neighbor_as: int
    listen_port: int = 179  # -1: do not listen (active sessions only)
    peer_port: int = 0  # the neighbor's BGP port; 0 = 179
    local_address: str = ""  # bind the session to this address ("" = any)
    restart_time: int = 120  # graceful restart window (s) we ask the peer for
    hold_time: int = 0  # 0 = gobgpd's default (90 s)


@dataclass(frozen=True, order=True)
class LearnedRoute:
    prefix: str  # "a.b.c.d/len"
    next_hop: str
    neighbor: str
    stale: bool = False


@dataclass
class _Proc:
    pid: int
    popen: subprocess.Popen | None = None  # None when adopted from an earlier agent

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _pid_is_gobgpd(self.pid)


def _pid_is_gobgpd(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and os.path.basename(cmd) == b"gobgpd"


def _any(msg) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg, type_url_prefix="type.googleapis.com/")
    return a


def _path(prefix: str, next_hop: str) -> pb.Path:
    net = ipaddress.IPv4Network(prefix, strict=False)
    nlri = pb.IPAddressPrefix(prefix=str(net.network_address), prefix_len=net.prefixlen)
    attrs = [_any(pb.OriginAttribute(origin=0)), _any(pb.NextHopAttribute(next_hop=next_hop))]
    return pb.Path(nlri=_any(nlri), pattrs=attrs, family=_V4)


def _decode(path: pb.Path) -> tuple[str, str]:
    """(prefix, next hop) of a path; ("", "") when it is not IPv4 unicast."""
    if path.nlri.type_url != _TYPE + "IPAddressPrefix":
        return "", ""
    p = pb.IPAddressPrefix()
    path.nlri.Unpack(p)
    nh = ""
    for a in path.pattrs:
        if a.type_url == _TYPE + "NextHopAttribute":
            n = pb.NextHopAttribute()
            a.Unpack(n)
            nh = n.next_hop
    return f"{p.prefix}/{p.prefix_len}", nh


def _local(path: pb.Path) -> bool:
    """A path we originated (gobgpd reports no neighbor for it)."""
    return path.neighbor_ip in ("", "<nil>")


@dataclass
class GoBgp:
    run_dir: Path
    api: str = DEFAULT_API
    binary: str = "gobgpd"
    wrap: tuple[str, ...] = ()  # command prefix (tests: ``ip netns exec NS``, which execs gobgpd)
    call_timeout: float = 3.0
    start_timeout: float = 10.0
    restarts: int = 0
    _proc: _Proc | None = None
    _channel: grpc.aio.Channel | None = None
    _cfg: BgpConfig | None = None
    _want: set[str] = field(default_factory=set)

    # ---- process ----------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return Path(self.run_dir) / "gobgpd.pid"

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    def _adopt(self) -> _Proc | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return _Proc(pid) if _pid_is_gobgpd(pid) else None

    async def _spawn(self) -> None:
        exe = shutil.which(self.binary)
        if exe is None:
            raise ExternalServiceError(
                f"{self.binary} not found: install the gobgpd package (scripts/install-deps.sh)"
            )
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        if self.api.startswith("unix://"):  # a killed gobgpd leaves its socket behind: bind would fail
            sock = Path(self.api[len("unix://") :])
            sock.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        logf = open(Path(self.run_dir) / "gobgpd.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            popen = subprocess.Popen(
                [*self.wrap, exe, "--api-hosts", self.api, "--pprof-disable", "--log-plain", "--log-level", "info"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            logf.close()
        self._proc = _Proc(popen.pid, popen)
        self.pid_file.write_text(f"{popen.pid}\n")
        log.info("started gobgpd (pid %d, API %s)", popen.pid, self.api)

    async def _ensure_process(self) -> None:
        if self._proc is not None and self._proc.alive():
            return
        if self._proc is not None:
            self.restarts += 1
            log.warning("gobgpd (pid %d) is gone; starting it again", self._proc.pid)
            self._proc = None
            await self._close_channel()
        adopted = self._adopt()
        if adopted is not None:
            self._proc = adopted
            log.info("adopted running gobgpd (pid %d)", adopted.pid)
        else:
            await self._spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            try:
                await self._call("GetBgp", pb.GetBgpRequest(), pb.GetBgpResponse, timeout=1.0)
                return
            except ExternalServiceError:
                if not self._proc.alive():
                    raise ExternalServiceError(
                        f"gobgpd exited at start (see {self.run_dir}/gobgpd.log)"
                    ) from None
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    # ---- gRPC ----------------------------------------------------------------------------------
    def _chan(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.api)
        return self._channel

    async def _close_channel(self) -> None:
        if self._channel is not None:
            ch, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                await ch.close()

    async def _call(self, method: str, req, resp_cls, timeout: float | None = None):
        fn = self._chan().unary_unary(
            _SVC + method, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )  # fmt: skip
        try:
            return await fn(req, timeout=timeout or self.call_timeout)
        except grpc.aio.AioRpcError as e:
            raise ExternalServiceError(f"gobgpd {method}: {e.details() or e.code().name}") from None

    async def _stream(self, method: str, req, resp_cls) -> list:
        fn = self._chan().unary_stream(
            _SVC + method, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString,
        )  # fmt: skip
        try:
            return [r async for r in fn(req, timeout=self.call_timeout)]
        except grpc.aio.AioRpcError as e:
            raise ExternalServiceError(f"gobgpd {method}: {e.details() or e.code().name}") from None

    # ---- configuration -------------------------------------------------------------------------
    def _global(self, cfg: BgpConfig) -> pb.Global:
        return pb.Global(
            asn=cfg.asn, router_id=cfg.router_id, listen_port=cfg.listen_port,
            listen_addresses=[cfg.local_address] if cfg.local_address else [],
            graceful_restart=pb.GracefulRestart(enabled=True, restart_time=cfg.restart_time),
        )  # fmt: skip

    def _peer(self, cfg: BgpConfig) -> pb.Peer:
        peer = pb.Peer(
            conf=pb.PeerConf(neighbor_address=cfg.neighbor, peer_asn=cfg.neighbor_as, local_asn=cfg.asn),
            graceful_restart=pb.GracefulRestart(enabled=True, restart_time=cfg.restart_time),
            afi_safis=[pb.AfiSafi(
                config=pb.AfiSafiConfig(family=_V4, enabled=True),
                mp_graceful_restart=pb.MpGracefulRestart(config=pb.MpGracefulRestartConfig(enabled=True)),
            )],
        )  # fmt: skip
        if cfg.peer_port or cfg.local_address:
            peer.transport.CopyFrom(pb.Transport(local_address=cfg.local_address, remote_port=cfg.peer_port))
        if cfg.hold_time:
            peer.timers.config.CopyFrom(
                pb.TimersConfig(hold_time=cfg.hold_time, keepalive_interval=max(1, cfg.hold_time // 3))
            )
        return peer

    async def _apply_global(self, cfg: BgpConfig) -> None:
        cur = getattr(await self._call("GetBgp", pb.GetBgpRequest(), pb.GetBgpResponse), "global")
        if cur.asn == cfg.asn and cur.router_id == cfg.router_id:
            if self._cfg is None or self._configured_for(cfg):
                return  # running as wanted (self._cfg None: adopted after an agent restart)
        if cur.asn:
            await self._call("StopBgp", pb.StopBgpRequest(), empty_pb2.Empty)
        await self._call("StartBgp", pb.StartBgpRequest(**{"global": self._global(cfg)}), empty_pb2.Empty)

    def _configured_for(self, cfg: BgpConfig) -> bool:
        old = self._cfg
        return old is not None and (old.listen_port, old.local_address, old.restart_time) == (
            cfg.listen_port, cfg.local_address, cfg.restart_time,
        )  # fmt: skip

    async def _apply_peer(self, cfg: BgpConfig) -> None:
        peers = [r.peer for r in await self._stream("ListPeer", pb.ListPeerRequest(), pb.ListPeerResponse)]
        keep = False
        for p in peers:
            same = (
                p.conf.neighbor_address == cfg.neighbor
                and p.conf.peer_asn == cfg.neighbor_as
                and (self._cfg is None or self._cfg == cfg)
            )
            if same and not keep:
                keep = True
                continue
            await self._call(
                "DeletePeer", pb.DeletePeerRequest(address=p.conf.neighbor_address), empty_pb2.Empty
            )
        if not keep:
            await self._call("AddPeer", pb.AddPeerRequest(peer=self._peer(cfg)), empty_pb2.Empty)

    async def _apply_paths(self, cfg: BgpConfig) -> None:
        have: set[str] = set()
        for d in await self._rib():
            for p in d.paths:
                if _local(p):
                    have.add(_decode(p)[0])
        for prefix in sorted(self._want - have):
            req = pb.AddPathRequest(table_type=pb.GLOBAL, path=_path(prefix, cfg.router_id))
            await self._call("AddPath", req, pb.AddPathResponse)
        for prefix in sorted(have - self._want):
            req = pb.DeletePathRequest(table_type=pb.GLOBAL, family=_V4, path=_path(prefix, cfg.router_id))
            await self._call("DeletePath", req, empty_pb2.Empty)

    async def _rib(self) -> list[pb.Destination]:
        req = pb.ListPathRequest(table_type=pb.GLOBAL, family=_V4)
        return [r.destination for r in await self._stream("ListPath", req, pb.ListPathResponse)]

    # ---- public ----------------------------------------------------------------------------------
    async def ensure(self, cfg: BgpConfig, advertise: set[str] | None = None) -> None:
        """Converge gobgpd to ``cfg`` and the advertised prefixes (starting or restarting it if needed)."""
        if advertise is not None:
            self._want = set(advertise)
        await self._ensure_process()
        await self._apply_global(cfg)
        await self._apply_peer(cfg)
        self._cfg = cfg
        await self._apply_paths(cfg)

    async def learned(self) -> list[LearnedRoute]:
        """Best path of every destination learned from a neighbor."""
        out = []
        for d in await self._rib():
            best = next((p for p in d.paths if p.best), None)
            if best is None or _local(best):
                continue
            prefix, nh = _decode(best)
            if prefix:
                out.append(LearnedRoute(prefix, nh, best.neighbor_ip, best.stale))
        return sorted(out)

    async def watch(self) -> AsyncIterator[tuple[str, object]]:
        """Follow the learned best paths: ``("reset", [LearnedRoute])`` first, then ``("add",
        LearnedRoute)`` / ``("del", prefix)`` as gobgpd reports best-path changes. Runs until the stream
        ends (``ExternalServiceError``: gobgpd gone or restarted; the caller reconnects and is reset).

        Ordering: the stream is opened with ``init`` (gobgpd first sends its current best paths), then the
        snapshot is read with ListPath and yielded as the reset, then the stream's messages are applied
        in order. Whatever changed before the watcher was registered is in the init paths; whatever
        changed after is an event; duplicates are idempotent adds and withdrawals, so the caller's table
        ends equal to gobgpd's RIB whatever the interleaving."""
        flt = pb.WatchEventRequest.Table.Filter(type=pb.WatchEventRequest.Table.Filter.BEST, init=True)
        req = pb.WatchEventRequest(table=pb.WatchEventRequest.Table(filters=[flt]))
        fn = self._chan().unary_stream(
            _SVC + "WatchEvent", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.WatchEventResponse.FromString,
        )  # fmt: skip
        call = fn(req)
        try:
            yield "reset", await self.learned()
            async for resp in call:
                if resp.WhichOneof("event") != "table":
                    continue
                for p in resp.table.paths:
                    prefix, nh = _decode(p)
                    if not prefix:
                        continue
                    if p.is_withdraw or _local(p):  # gone, or the best path is now our own
                        yield "del", prefix
                    else:
                        yield "add", LearnedRoute(prefix, nh, p.neighbor_ip, p.stale)
        except grpc.aio.AioRpcError as e:
            raise ExternalServiceError(f"gobgpd WatchEvent: {e.details() or e.code().name}") from None
        finally:
            call.cancel()
        raise ExternalServiceError("gobgpd WatchEvent: stream ended")

    async def advertised(self) -> list[str]:
        out = []
        for d in await self._rib():
            out += [_decode(p)[0] for p in d.paths if _local(p)]
        return sorted(set(out))

    async def neighbor(self) -> dict:
        """State of the configured neighbor: ``{"neighbor", "state", "admin", "received", "accepted",
        "advertised"}`` (empty when gobgpd has none)."""
        for r in await self._stream(
            "ListPeer", pb.ListPeerRequest(enableAdvertised=True), pb.ListPeerResponse
        ):
            p = r.peer
            counts = {"received": 0, "accepted": 0, "advertised": 0}
            for af in p.afi_safis:
                for k in counts:
                    counts[k] += getattr(af.state, k)
            return {
                "neighbor": p.conf.neighbor_address or p.state.neighbor_address,
                "state": SESSION_STATES.get(p.state.session_state, "unknown"),
                "admin": ADMIN_STATES.get(p.state.admin_state, "unknown"),
                **counts,
            }
        return {}

    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    async def stop(self) -> None:
        """Stop BGP and end the gobgpd we started or adopted (by its PID)."""
        proc = self._proc or self._adopt()
        if proc is not None and proc.alive():
            # a deliberate stop withdraws first: a session that just drops would leave our routes on
            # the peer as stale for the whole graceful-restart window
            with contextlib.suppress(ExternalServiceError):
                cfg = self._cfg or BgpConfig("0.0.0.0", 1, "0.0.0.0", 1)
                self._want = set()
                await self._apply_paths(cfg)
                await asyncio.sleep(0.5)  # let the withdrawal UPDATE leave before the NOTIFICATION
                for r in await self._stream("ListPeer", pb.ListPeerRequest(), pb.ListPeerResponse):
                    req = pb.DeletePeerRequest(address=r.peer.conf.neighbor_address)
                    await self._call("DeletePeer", req, empty_pb2.Empty)
            with contextlib.suppress(ExternalServiceError):
                await self._call("StopBgp", pb.StopBgpRequest(), empty_pb2.Empty, timeout=2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            for _ in range(50):
                if not proc.alive():
                    break
                await asyncio.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            if proc.popen is not None:
                with contextlib.suppress(Exception):
                    proc.popen.wait(5)
        self._proc, self._cfg, self._want = None, None, set()
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        await self._close_channel()

    async def close(self) -> None:
        """Forget the process without stopping it (agent shutdown: the speaker keeps its sessions)."""
        await self._close_channel()
