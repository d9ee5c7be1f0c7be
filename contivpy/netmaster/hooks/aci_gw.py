"""aciGw hooks: create/update/delete refused while app profiles exist
("<n> App-Profiles found. Delete them first"); oper reports ``numAppProfiles``."""

from __future__ import annotations

from contivpy.common.errors import ConflictError
from contivpy.model.oper import AciGwOper
from contivpy.netmaster.txn import TxnContext


async def _no_profiles(ctx: TxnContext) -> None:
    n = len(await ctx.list_objs("appProfile"))
    if n:
        raise ConflictError(f"{n} App-Profiles found. Delete them first")


async def on_create(ctx: TxnContext, obj: dict) -> None:
    await _no_profiles(ctx)


async def on_update(ctx: TxnContext, old: dict, new: dict) -> None:
    await _no_profiles(ctx)


async def on_delete(ctx: TxnContext, obj: dict) -> None:
    await _no_profiles(ctx)


async def oper(ctx: TxnContext, obj: dict) -> dict:
    return AciGwOper(numAppProfiles=len(await ctx.list_objs("appProfile"))).to_dict()
