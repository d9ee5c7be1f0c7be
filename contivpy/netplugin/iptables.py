"""iptables adapter of the netplugin agent: the only module that runs ``iptables`` (Debian 12: iptables-nft).

What the agent keeps in the ``nat`` table of its host (docs/deployment.md, "iptables"):

    -N CONTIV-NODEPORT
    -A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment contivpy -j CONTIV-NODEPORT
    -A POSTROUTING -s <pvtSubnet> ! -o contivh0 -m comment --comment contivpy -j MASQUERADE

and, while the infra network ``contivh1`` exists on the host, in the ``filter`` table::

    -A FORWARD -i contivh0 -o contivh1 -m comment --comment contivpy -j DROP

(containers leave through contivh0 with any tenant; the contivh1 routes must not carry them into another
tenant's subnets: ``ensure_infra_block``).

The MASQUERADE rule is the original's: containers leave their host through the host port ``contivh0``
with a per-endpoint private source address from ``pvtSubnet`` (docs/ovs-pipeline.md, host access), and
the kernel NATs it to the host's own address on the way out. ``CONTIV-NODEPORT`` is the original's chain for
node ports: one DNAT per node port of a service (``ServiceLBState.nodeports``, :func:`ensure_nodeports`)
to the service's VIP and port, which the host routes through ``contivh1`` into the service LB of OVS::

    -A CONTIV-NODEPORT -p tcp -m tcp --dport <nodePort> -m comment --comment contivpy-nodeport -j DNAT --to-destination <vip>:<port>
    -A POSTROUTING -o contivh1 -m conntrack --ctstate DNAT -m comment --comment contivpy-nodeport -j MASQUERADE

(the second, present while any node port exists, gives the connection the host's contivh1 address, so the
provider's reply comes back through the host, which un-NATs it: kube-proxy's default for node ports).

Invariants
- Every rule we add carries ``-m comment --comment contivpy`` (:data:`TAG`); only rules with that tag are
  ever deleted, so other software's rules in the same chains are never touched.
- ``ensure(pvt_subnet)`` converges: it reads ``iptables -t nat -S``, deletes our tagged rules that are not
  wanted (a previous ``pvtSubnet``), and appends the missing ones. Running it again (agent restart) adds
  nothing, so rules are never duplicated.
- Node port rules carry their own tag (:data:`NODEPORT_TAG`): ``ensure`` never touches them and
  ``ensure_nodeports`` touches nothing else; both converge the same way.
- ``remove_all()`` deletes every tagged rule and the (flushed) ``CONTIV-NODEPORT`` chain: the clean
  uninstall path (``netplugin --cleanup``). A plain agent stop leaves the rules in place, like the bridges.
- Calls are serialized by one lock and use ``-w`` (wait for the xtables lock held by other programs).
  A missing binary or a failing command raises ``ExternalServiceError`` with iptables' own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shlex

from contivpy.common.errors import ExternalServiceError, ValidationError

log = logging.getLogger(__name__)

TAG = "contivpy"
NODEPORT_TAG = "contivpy-nodeport"
INFRA_PORT = "contivh1"
NODEPORT_CHAIN = "CONTIV-NODEPORT"
HOST_PORT = "contivh0"
VLAN_HOST_PORT = "contivh0v"  # the vlan bridge's host port (vlan routing mode; ofnet/hostaccess.py)
TABLE = "nat"
IPTABLES: tuple[str, ...] = ("iptables",)  # the command (tests prefix it with ``ip netns exec NS``)

_lock = asyncio.Lock()


def desired_rules(pvt_subnet: str, host_port: str = HOST_PORT) -> list[str]:
    """Our rules in ``iptables -S`` form (the exact text ``-S`` prints back)."""
    net = ipaddress.IPv4Network(pvt_subnet, strict=False)
    tag = f"-m comment --comment {TAG}"
    return [
        f"-A PREROUTING -m addrtype --dst-type LOCAL {tag} -j {NODEPORT_CHAIN}",
        f"-A POSTROUTING -s {net} ! -o {host_port} {tag} -j MASQUERADE",
    ]


def is_ours(rule: str, tag: str = TAG) -> bool:
    return f"--comment {tag} " in rule + " " and rule.startswith("-A ")


def is_any_ours(rule: str) -> bool:
    return is_ours(rule) or is_ours(rule, NODEPORT_TAG)


def nodeport_rules(ports: list[tuple[str, int, str, int]], infra_port: str = INFRA_PORT) -> list[str]:
    """The node port rules in ``-S`` form for ``(proto, nodePort, vip, port)`` tuples (sorted, unique)."""
    tag = f"-m comment --comment {NODEPORT_TAG}"
    out = []
    for proto, node, vip, port in sorted(set(ports)):
        ipaddress.IPv4Address(vip)
        if proto not in ("tcp", "udp") or not (0 < node < 65536 and 0 < port < 65536):
            raise ValueError(f"invalid node port {proto}/{node} -> {vip}:{port}")
        out.append(
            f"-A {NODEPORT_CHAIN} -p {proto} -m {proto} --dport {node} {tag} -j DNAT --to-destination {vip}:{port}"
        )
    if out:
        out.append(f"-A POSTROUTING -o {infra_port} -m conntrack --ctstate DNAT {tag} -j MASQUERADE")
    return out


async def run(*args: str, check: bool = True, table: str = TABLE) -> tuple[int, str]:
    """``iptables -w -t TABLE ARGS``; returns (rc, stdout). Raises ExternalServiceError when ``check``."""
    cmd = [*IPTABLES, "-w", "-t", table, *args]
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError as e:
        raise ExternalServiceError("iptables is not installed (scripts/install-deps.sh installs it)") from e
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise ExternalServiceError(f"{shlex.join(cmd)} failed: {err.decode().strip()}")
    return proc.returncode or 0, out.decode()


async def list_rules(table: str = TABLE) -> list[str]:
    """Every rule of the table (nat by default) in ``-S`` form (``-A ...`` lines)."""
    _, out = await run("-S", table=table)
    return [ln.strip() for ln in out.splitlines() if ln.startswith("-A ")]


async def chains() -> set[str]:
    _, out = await run("-S")
    return {ln.split()[1] for ln in out.splitlines() if ln.startswith(("-N ", "-P "))}


def _delete_args(rule: str) -> list[str]:
    return ["-D", *shlex.split(rule)[1:]]


async def ensure(pvt_subnet: str, host_port: str = HOST_PORT) -> dict[str, int]:
    """Converge the nat table to :func:`desired_rules`; returns counts of rules added/removed."""
    try:
        want = desired_rules(pvt_subnet, host_port)
    except ValueError as e:
        raise ValidationError(f"invalid private subnet {pvt_subnet!r}") from e
    async with _lock:
        if NODEPORT_CHAIN not in await chains():
            await run("-N", NODEPORT_CHAIN)
        have = [r for r in await list_rules() if is_ours(r)]
        removed = added = 0
        seen: set[str] = set()
        for r in have:
            if r not in want or r in seen:  # stale (old pvtSubnet) or a duplicate
                await run(*_delete_args(r))
                removed += 1
            seen.add(r)
        for r in want:
            if r not in seen:
                await run(*shlex.split(r))
                added += 1
    if added or removed:
        log.info("iptables nat: %d rule(s) added, %d removed (pvtSubnet %s)", added, removed, pvt_subnet)
    return {"added": added, "removed": removed}


async def ensure_nodeports(ports: list[tuple[str, int, str, int]]) -> dict[str, int]:
    """Converge the node port rules to :func:`nodeport_rules` (the chain is created if missing, e.g.
    before ``ensure`` ran); returns counts of rules added/removed."""
    try:
        want = nodeport_rules(ports)
    except ValueError as e:
        raise ValidationError(str(e)) from e
    async with _lock:
        if NODEPORT_CHAIN not in await chains():
            await run("-N", NODEPORT_CHAIN)
        added, removed = await _converge([r for r in await list_rules() if is_ours(r, NODEPORT_TAG)], want)
    if added or removed:
        log.info("iptables nat: node ports: %d rule(s) added, %d removed", added, removed)
    return {"added": added, "removed": removed}


async def _converge(have: list[str], want: list[str], table: str = TABLE) -> tuple[int, int]:
    """Delete the rules of ``have`` not in ``want`` (or duplicated), append the missing ones in order."""
    removed = added = 0
    seen: set[str] = set()
    for r in have:
        if r not in want or r in seen:
            await run(*_delete_args(r), table=table)
            removed += 1
        seen.add(r)
    for r in want:
        if r not in seen:
            await run(*shlex.split(r), table=table)
            added += 1
    return added, removed


def infra_block_rule(host_port: str = HOST_PORT, infra_port: str = "contivh1") -> str:
    return f"-A FORWARD -i {host_port} -o {infra_port} -m comment --comment {TAG} -j DROP"


async def ensure_infra_block(present: bool, host_ports: tuple[str, ...] = (HOST_PORT, VLAN_HOST_PORT)) -> int:
    """The filter rules that keep containers' host-access traffic (from either bridge's host port:
    contivh0, contivh0v) out of contivh1 (present or not, exactly once each); returns the number of
    rules changed."""
    want = [infra_block_rule(p) for p in host_ports] if present else []
    changed = 0
    async with _lock:
        seen: set[str] = set()
        for r in [r for r in await list_rules("filter") if is_ours(r)]:
            if r not in want or r in seen:
                await run(*_delete_args(r), table="filter")
                changed += 1
            seen.add(r)
        for r in want:
            if r not in seen:
                await run(*shlex.split(r), table="filter")
                changed += 1
    return changed


async def remove_all() -> int:
    """Delete every rule tagged ``contivpy`` and the ``CONTIV-NODEPORT`` chain; returns rules removed."""
    async with _lock:
        try:
            rules = [r for r in await list_rules() if is_any_ours(r)]
        except ExternalServiceError:
            return 0
        for r in rules:
            await run(*_delete_args(r), check=False)
        with contextlib.suppress(ExternalServiceError):
            for r in [r for r in await list_rules("filter") if is_ours(r)]:
                await run(*_delete_args(r), check=False, table="filter")
        if NODEPORT_CHAIN in await chains():
            await run("-F", NODEPORT_CHAIN, check=False)
            await run("-X", NODEPORT_CHAIN, check=False)
    log.info("iptables nat: removed %d contivpy rule(s)", len(rules))
    return len(rules)
