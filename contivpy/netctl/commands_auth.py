"""Actions of ``netctl user ...``: local accounts of a netmaster run with ``--auth`` (admin only).

Routes (docs/rest-api.md): ``/api/v1/auth_proxy/local_users/`` (GET list, POST create) and
``/api/v1/auth_proxy/local_users/<name>/`` (GET, PATCH, DELETE). Same conventions as the model
commands: argument checks first, then ``Api(ctx)`` (https + token from ~/.netctl/config.json),
failures exit 3 with netmaster's message. Passwords are read from ``--password`` or prompted without
echo (twice for a new password); they never appear in output.
"""

from __future__ import annotations

from contivpy.netctl.api import EXIT_HELP, EXIT_INVALID, EXIT_IO, Api, dump_json
from contivpy.netctl.commands_net import need, table
from contivpy.netctl.gojson import GoJSONError, loads, marshal
from contivpy.netctl.output import fail, out

USERS = "/api/v1/auth_proxy/local_users/"


def prompt_password(ctx, label: str = "Password: ", confirm: bool = False) -> str:
    from contivpy.netctl.commands_misc import _read_password

    pw = ctx.string("password")
    if pw:
        return pw
    out(label)
    try:
        pw = _read_password()
        out("\n")
        if confirm:
            out("Retype password: ")
            again = _read_password()
            out("\n")
            if again != pw:
                fail(EXIT_INVALID, "passwords do not match")
    except OSError as e:
        fail(EXIT_IO, str(e))
    return pw


def _send(ctx, method: str, path: str, body: dict | None = None):
    data = Api(ctx)._do(method, path, None if body is None else marshal(body).encode("utf-8"))
    try:
        return loads(data.decode("utf-8", "replace"))
    except GoJSONError as e:
        fail(EXIT_INVALID, str(e))


def create_user(ctx) -> None:
    need(ctx, 1, "User name required")
    name, role = ctx.args[0], ctx.string("role")
    if role not in ("admin", "ops"):
        fail(EXIT_HELP, "Role must be admin or ops", ctx)
    pw = prompt_password(ctx, confirm=True)
    body = {"username": name, "password": pw, "role": role, "tenants": ctx.slice("tenant")}
    _send(ctx, "POST", USERS, body)
    out(f"Creating user {name}\n")


def delete_user(ctx) -> None:
    need(ctx, 1, "User name required")
    out(f"Deleting user {ctx.args[0]}\n")
    _send(ctx, "DELETE", f"{USERS}{ctx.args[0]}/")


def list_users(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    users = _send(ctx, "GET", USERS) or []
    if ctx.bool("json"):
        return dump_json(users)
    if ctx.bool("quiet"):
        return out("".join(u.get("username", "") + "\n" for u in users))
    text = "User\tRole\tTenants\t\n----\t----\t-------\t\n"
    text += "".join(f"{u['username']}\t{u['role']}\t{','.join(u.get('tenants') or [])}\t\n" for u in users)
    table(text)


def inspect_user(ctx) -> None:
    need(ctx, 1, "User name required")
    dump_json(_send(ctx, "GET", f"{USERS}{ctx.args[0]}/"))


def _patch(ctx, change: dict) -> None:
    _send(ctx, "PATCH", f"{USERS}{ctx.args[0]}/", change)


def grant_user(ctx) -> None:
    need(ctx, 2, "User name and tenant name required")
    _patch(ctx, {"grant": [ctx.args[1]]})


def revoke_user(ctx) -> None:
    need(ctx, 2, "User name and tenant name required")
    _patch(ctx, {"revoke": [ctx.args[1]]})


def set_role(ctx) -> None:
    need(ctx, 2, "User name and role required")
    _patch(ctx, {"role": ctx.args[1]})


def set_password(ctx) -> None:
    need(ctx, 1, "User name required")
    _patch(ctx, {"password": prompt_password(ctx, "New password: ", confirm=True)})
