"""Adapter for ``ovs-appctl`` (OVS's unixctl client): the one place the agent runs it.

Used for ``ofproto/trace`` (``netctl trace``, docs/cli.md).  The target is the agent's own
ovs-vswitchd, found the way ovs-appctl itself finds it, but next to the OVSDB socket the agent
uses (``--ovsdb unix:DIR/db.sock``), so that several vswitchds on one machine (one per network
namespace, as on the test bed) never get mixed up:

1. ``--ovs-ctl PATH`` (``CONTIV_NETPLUGIN_OVS_CTL``) when given;
2. ``DIR/ovs-vswitchd.ctl`` if it exists (vswitchd started with ``--unixctl`` there);
3. ``DIR/ovs-vswitchd.<pid>.ctl`` with the pid from ``DIR/ovs-vswitchd.pid`` (OVS's default layout,
   DIR = /var/run/openvswitch);
4. otherwise ovs-appctl's own default (``ovs-vswitchd``).

Invariants: arguments are passed as a list (no shell); a run has a timeout; a missing binary, a
timeout or a non-zero exit become ``ExternalServiceError`` with ovs-appctl's own message.
"""

from __future__ import annotations

import asyncio
import os

from contivpy.common.errors import ExternalServiceError

__all__ = ["resolve_target", "run"]

TIMEOUT = 10.0


def resolve_target(ovsdb: str, explicit: str = "") -> str:
    """The ``--target`` for the vswitchd that serves ``ovsdb`` (see the module docstring)."""
    if explicit:
        return explicit
    if ovsdb.startswith("unix:"):
        d = os.path.dirname(ovsdb[len("unix:") :])
        ctl = os.path.join(d, "ovs-vswitchd.ctl")
        if os.path.exists(ctl):
            return ctl
        try:
            with open(os.path.join(d, "ovs-vswitchd.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pid = 0
        ctl = os.path.join(d, f"ovs-vswitchd.{pid}.ctl")
        if pid and os.path.exists(ctl):
            return ctl
    return "ovs-vswitchd"


async def run(target: str, *args: str, timeout: float = TIMEOUT) -> str:
    """``ovs-appctl --target=TARGET ARGS...``; its standard output."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ovs-appctl",
            f"--target={target}",
            f"--timeout={int(timeout)}",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        raise ExternalServiceError(f"cannot run ovs-appctl: {e.strerror or e}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 2)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ExternalServiceError(f"ovs-appctl {args[0] if args else ''} timed out") from None
    if proc.returncode != 0:
        # the server's own message comes first; ovs-appctl's "server returned an error" line adds nothing
        lines = [ln for ln in (err + out).decode(errors="replace").splitlines() if ln.strip()]
        msg = [ln for ln in lines if not ln.startswith("ovs-appctl:")] or lines
        raise ExternalServiceError(f"ovs-appctl {args[0] if args else ''}: {msg[0] if msg else 'failed'}")
    return out.decode(errors="replace")
