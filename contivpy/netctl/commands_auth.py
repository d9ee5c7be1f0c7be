"""Actions of ``netctl login`` and ``netctl user ...``: local accounts of a netmaster run with
``--auth`` (user commands are admin only).

Routes (docs/rest-api.md): ``/api/v1/auth_proxy/local_users/`` (GET list, POST create) and
``/api/v1/auth_proxy/local_users/<name>/`` (GET, PATCH, DELETE). Same conventions as the model
commands: argument checks first, then ``Api(ctx)`` (https + token from ~/.netctl/config.json),
failures exit 3 with netmaster's message. Passwords are read from ``--password`` or prompted without
echo (twice for a new password); they never appear in output.
"""

from __future__ import annotations

from contivpy.netctl import client, gojson
from contivpy.netctl.api import EXIT_HELP, EXIT_INVALID, EXIT_IO, Api, config_path, dump_json
from contivpy.netctl.commands_net import need, table
from contivpy.netctl.gojson import GoJSONError, loads, marshal
from contivpy.netctl.output import err, fail, out

USERS = "/api/v1/auth_proxy/local_users/"


def prompt_password(ctx, label: str = "Password: ", confirm: bool = False) -> str:

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


# ------------------------------------------------------------------ login


def _read_password() -> str:
    import sys
    import termios

    fd = 0
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        raise OSError("inappropriate ioctl for device") from None
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    try:
        return sys.stdin.readline().rstrip("\n")
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)


def login(ctx) -> None:
    import sys

    need(ctx, 0, "More arguments than required")
    if not ctx.netmaster.startswith("https://"):
        out("login requires a https auth_proxy URL\n")
        fail(EXIT_INVALID, "", ctx)
    username = ctx.string("username")
    if not username:
        out("Username: ")
        line = sys.stdin.readline()
        if not line:
            fail(EXIT_IO, "EOF")
        username = line.strip()
    if not username:
        fail(EXIT_INVALID, "you must specify a username")
    password = ctx.string("password")
    if not password:
        out("Password: ")
        try:
            password = _read_password()
        except OSError as e:
            fail(EXIT_IO, str(e))
        out("\n")
    Api(ctx)  # validates the URL and the config file, as getClient(ctx) did
    body = gojson.marshal({"username": username, "password": password}).encode("utf-8", "surrogateescape")
    headers = [("Content-Type", "application/json")]  # http.Client.Post: no custom headers
    try:
        status, _reason, data = client.request(
            "POST", ctx.netmaster + "/api/v1/auth_proxy/login/", body, headers, ctx.insecure
        )
    except client.TransportError as e:
        fail(EXIT_IO, str(e))
    if status != 200:
        if status == 401:
            out("Login failed: Bad username or password.\n")
        else:
            out(f"Login failed: unexpected response code ({status})\n\n")
            err(data.decode("utf-8", "replace"))
        fail(EXIT_INVALID, "")
    out("Login succeeded.\n")
    _write_config(data)


def _write_config(data: bytes) -> None:
    import os

    path = config_path()
    try:
        os.mkdir(os.path.dirname(path), 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        fail(EXIT_IO, str(e))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        fail(EXIT_IO, str(e))
