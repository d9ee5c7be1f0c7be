"""aiohttp AppKeys shared by the netmaster routes (and the /plugin/* routes of the IPAM helper).

app[CRUD]    contivpy.netmaster.crud.Crud       (kv, config, docker, extras inside)
app[CONFIG]  contivpy.netmaster.config.Config
app[KV]      the KVStore
app[STATE]   contivpy.netmaster.api.keys.LeaderState (is_leader, leader_url, ...); ``leader_url``
             is read from the daemon's LeaderElection (the lock holder it watches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class LeaderState:
    is_leader: bool = False  # serving the API locally (lock held and leader start done)
    local_ip: str = ""
    fence: Any = None  # Compare on the leader key while leader
    extra: dict = field(default_factory=dict)
    election: Any = None  # contivpy.common.election.LeaderElection

    @property
    def leader_url(self) -> str:
        """Holder of the leader lock, ``"<ip>:<port>"`` ("" if none or not known yet)."""
        return (self.election.leader() if self.election is not None else None) or ""


CRUD: web.AppKey[Any] = web.AppKey("crud", object)
CONFIG: web.AppKey[Any] = web.AppKey("config", object)
KV: web.AppKey[Any] = web.AppKey("kv", object)
STATE: web.AppKey[LeaderState] = web.AppKey("state", LeaderState)

__all__ = ["CRUD", "CONFIG", "KV", "STATE", "LeaderState"]
