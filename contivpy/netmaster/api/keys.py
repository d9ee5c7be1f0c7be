"""aiohttp AppKeys shared by the netmaster routes (and the /plugin/* routes of the IPAM helper).

app[CRUD]    contivpy.netmaster.crud.Crud       (kv, config, docker, extras inside)
app[CONFIG]  contivpy.netmaster.config.Config
app[KV]      the KVStore
app[STATE]   contivpy.netmaster.api.keys.LeaderState (is_leader, leader_url, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class LeaderState:
    is_leader: bool = False
    leader_url: str = ""  # holder of the leader lock, "<ip>:<port>"
    local_ip: str = ""
    fence: Any = None  # Compare on the leader key while leader
    extra: dict = field(default_factory=dict)


CRUD: web.AppKey[Any] = web.AppKey("crud", object)
CONFIG: web.AppKey[Any] = web.AppKey("config", object)
KV: web.AppKey[Any] = web.AppKey("kv", object)
STATE: web.AppKey[LeaderState] = web.AppKey("state", LeaderState)

__all__ = ["CRUD", "CONFIG", "KV", "STATE", "LeaderState"]
