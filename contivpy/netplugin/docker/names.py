"""DNS by container name for Docker containers (contiv-reference §6.6), without OpenFlow punting.

Mechanism (docs/docker.md "DNS"): containers are started with ``--dns 127.0.0.2``. On a
user-defined network Docker's embedded resolver (127.0.0.11 in the container) answers the names
it knows and forwards the others, *from inside the container's network namespace*, to that
server. The agent owns a UDP socket bound to ``127.0.0.2:53`` in each local container's netns
(created with setns(2) through the container's init process), so the query reaches the
agent without touching the datapath and without any resolver outside the test bed.

Answers, per tenant of the asking container (the original's nameserver): A records for endpoint
/container names (``epCommonName``), endpoint-group names (all member IPs, at most 10) and service
LB names (VIP), TTL 120. Any other name gets REFUSED, so Docker tries the container's next
``--dns`` server (which is how "forward the rest" is done); an empty query -> FORMERR.

Names come from etcd: ``/contiv.io/state/eps/*`` (``epCommonName``, ``containerId``),
``/contiv.io/state/endpointGroups/*``, ``/contiv.io/state/serviceLB/*``. The owning host records
a container's name in its endpoint state after Join: it finds the container whose endpoint id is
the joined one through the local Engine API and sets ``epCommonName``/``containerId`` with a
compare-and-swap (netmaster's own writes are CAS too, so neither loses an update). The resolver
socket is created then, through ``/proc/<container pid>/ns/net`` (the SandboxKey path may be a
mount only dockerd's mount namespace sees); after an agent restart ``restore`` recreates the
sockets of the running containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import socket
import threading
from collections import defaultdict

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from contivpy.common.dockerapi import DockerClient
from contivpy.common.errors import CompactedError, ContivError, StoreError
from contivpy.common.kv.base import Compare, KVStore, Put
from contivpy.model import keys

log = logging.getLogger(__name__)

RESOLVER_IP = "127.0.0.2"
TTL = 120
MAX_GROUP_RECORDS = 10
_CLONE_NEWNET = 0x40000000


class NameTable:
    """tenant -> name -> [ip], rebuilt from the three etcd prefixes on every change."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self.names: dict[str, dict[str, list[str]]] = {}
        self.changed = asyncio.Event()

    async def rebuild(self) -> None:
        names: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        eps, _ = await self.kv.get_prefix(keys.EPS)
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for kvp in eps:
            try:
                ep = json.loads(kvp.value)
            except json.JSONDecodeError:
                continue
            tenant = (ep.get("netID") or "").rpartition(".")[2]
            ip = ep.get("ipAddress") or ""
            if not tenant or not ip:
                continue
            if ep.get("epCommonName"):
                names[tenant][ep["epCommonName"].lower()].append(ip)
            if ep.get("serviceName"):
                groups[(tenant, ep["serviceName"].lower())].append(ip)
        for (tenant, group), ips in groups.items():
            names[tenant][group].extend(sorted(ips)[:MAX_GROUP_RECORDS])
        svcs, _ = await self.kv.get_prefix(keys.SERVICE_LB)
        for kvp in svcs:
            try:
                svc = json.loads(kvp.value)
            except json.JSONDecodeError:
                continue
            if svc.get("servicename") and svc.get("ipaddress"):
                names[svc.get("tenantname") or "default"][svc["servicename"].lower()].append(svc["ipaddress"])
        self.names = {t: dict(v) for t, v in names.items()}
        self.changed.set()

    def lookup(self, tenant: str, name: str) -> list[str]:
        return list(dict.fromkeys(self.names.get(tenant, {}).get(name.rstrip(".").lower(), [])))

    async def _watch(self, prefix: str) -> None:
        while True:
            try:
                _, rev = await self.kv.get_prefix(prefix)
                await self.rebuild()
                async for _ev in self.kv.watch_prefix(prefix, start_revision=rev + 1):
                    await self.rebuild()
            except CompactedError:
                continue
            except StoreError as e:
                log.warning("name table watch %s: %s", prefix, e)
                await asyncio.sleep(1.0)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for prefix in (keys.EPS, keys.EPGS, keys.SERVICE_LB):
                tg.create_task(self._watch(prefix))


def answer(table: NameTable, tenant: str, wire: bytes) -> bytes | None:
    """The reply to one DNS query (None if it is not even a parsable message)."""
    try:
        q = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - garbage from the network: drop it
        return None
    r = dns.message.make_response(q)
    if q.opcode() != dns.opcode.QUERY or len(q.question) != 1:
        r.set_rcode(dns.rcode.FORMERR)
        return r.to_wire()
    qs = q.question[0]
    ips = table.lookup(tenant, qs.name.to_text())
    if not ips:
        r.set_rcode(dns.rcode.REFUSED)  # not ours: the client's next server answers
        return r.to_wire()
    r.flags |= dns.flags.AA
    if qs.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        r.answer.append(dns.rrset.from_text_list(qs.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, ips))
    return r.to_wire()  # AAAA etc. for a known name: NOERROR, no data


def socket_in_netns(netns_path: str, host: str = RESOLVER_IP, port: int = 53) -> socket.socket:
    """A UDP socket bound in the network namespace at ``netns_path`` (setns in a throwaway thread)."""
    out: dict = {}

    def work() -> None:
        try:
            target = os.open(netns_path, os.O_RDONLY)
        except OSError as e:
            out["err"] = e
            return
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns_path}")
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.bind((host, port))
                except OSError:
                    s.close()
                    raise
                s.setblocking(False)
                out["sock"] = s
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:
                    out["fatal"] = True  # this thread is lost; it ends right here
        except OSError as e:
            out["err"] = e
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=work, name="dns-setns", daemon=True)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    if "sock" not in out:
        raise OSError(f"no socket created in {netns_path}")
    return out["sock"]


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, table: NameTable, tenant: str) -> None:
        self.table, self.tenant = table, tenant
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = answer(self.table, self.tenant, data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class ContainerDns:
    """Per local container: learn its name after Join, serve DNS inside its netns."""

    def __init__(self, kv: KVStore, engine: DockerClient | None, host_label: str = "") -> None:
        self.kv = kv
        self.engine = engine
        self.table = NameTable(kv)
        self._servers: dict[str, asyncio.DatagramTransport] = {}  # state id -> transport
        self._tasks: set[asyncio.Task] = set()

    async def on_join(self, state_id: str, docker_ep_id: str, sandbox_key: str) -> None:
        """Join hook (handlers.py): once the container runs, record its name and serve DNS in it."""
        if self.engine is not None:
            t = asyncio.create_task(self._learn_name(state_id, docker_ep_id))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    def on_delete(self, state_id: str) -> None:
        tr = self._servers.pop(state_id, None)
        if tr is not None:
            tr.close()

    async def _serve(self, state_id: str, docker_ep_id: str, container_id: str) -> None:
        """Resolver socket in the container's netns, reached through its init process: the
        SandboxKey bind mount may live in a mount namespace of dockerd that we cannot see."""
        if state_id in self._servers:
            return
        # state id = <net>.<tenant>-<docker endpoint id>; names may contain '-', tenants no '.'
        tenant = state_id[: -len(docker_ep_id) - 1].rpartition(".")[2]
        try:
            info = await self.engine.inspect_container(container_id)  # type: ignore[union-attr]
            pid = int((info.get("State") or {}).get("Pid") or 0)
            if pid <= 0:
                raise OSError(f"container {container_id[:12]} not running")
            sock = await asyncio.to_thread(socket_in_netns, f"/proc/{pid}/ns/net")
        except (OSError, ContivError) as e:
            log.warning("no DNS responder for %s: %s", state_id, e)
            return
        loop = asyncio.get_running_loop()
        tr, _ = await loop.create_datagram_endpoint(lambda: _Proto(self.table, tenant), sock=sock)
        self._servers[state_id] = tr

    async def _find_container(self, docker_ep_id: str) -> dict | None:
        for c in await self.engine.list_containers():  # type: ignore[union-attr]
            for nw in ((c.get("NetworkSettings") or {}).get("Networks") or {}).values():
                if nw.get("EndpointID") == docker_ep_id:
                    return c
        return None

    async def _learn_name(self, state_id: str, docker_ep_id: str, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                c = await self._find_container(docker_ep_id)
            except ContivError:
                c = None
            if c is not None:
                name = ((c.get("Names") or [""])[0]).lstrip("/")
                await self.record_name(state_id, name, c.get("Id", ""))
                await self._serve(state_id, docker_ep_id, c.get("Id", ""))
                return
            await asyncio.sleep(0.2)
        log.info("container of endpoint %s not seen within %ss: no DNS name", state_id, timeout)

    async def record_name(self, state_id: str, name: str, container_id: str) -> bool:
        key = keys.ep_state(state_id)
        for _ in range(10):
            kvp = await self.kv.get(key)
            if kvp is None:
                return False
            ep = json.loads(kvp.value)
            if ep.get("epCommonName") == name and ep.get("containerId") == container_id:
                return True
            ep["epCommonName"], ep["containerId"] = name, container_id
            res = await self.kv.txn(
                [Compare(key, "mod", "==", kvp.mod_revision)],
                [Put(key, json.dumps(ep, separators=(",", ":")))],
            )
            if res.succeeded:
                return True
        return False

    async def restore(self) -> None:
        """After an agent restart: resolver sockets for the containers already running here."""
        if self.engine is None:
            return
        eps, _ = await self.kv.get_prefix(keys.EPS)
        by_ep = {}
        for kvp in eps:
            with contextlib.suppress(json.JSONDecodeError):
                ep = json.loads(kvp.value)
                by_ep[ep.get("endpointID")] = ep.get("id")
        for c in await self.engine.list_containers():
            for nw in ((c.get("NetworkSettings") or {}).get("Networks") or {}).values():
                state_id = by_ep.get(nw.get("EndpointID"))
                if state_id:
                    await self._serve(state_id, nw["EndpointID"], c["Id"])

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.table.run())
                try:
                    await self.restore()
                except ContivError as e:
                    log.warning("DNS restore: %s", e)
        finally:
            for tr in self._servers.values():
                tr.close()
            self._servers.clear()
