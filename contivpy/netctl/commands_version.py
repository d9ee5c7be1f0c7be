"""Action of ``version``, and the client version block (conventions as in commands_net: parse, one request, print)."""

from __future__ import annotations

from contivpy.netctl import client, gojson
from contivpy.netctl.api import EXIT_INVALID, EXIT_REQUEST, check_url
from contivpy.netctl.commands_net import need
from contivpy.netctl.output import err, fail, out

CLIENT_VERSION = {"Version": "1.2.1-contivpy-0.1.0", "GitCommit": "unknown", "BuildTime": "unknown"}


def version_block(info: dict) -> str:
    return (
        f"Version: {info.get('Version', '')}\nGitCommit: {info.get('GitCommit', '')}\n"
        f"BuildTime: {info.get('BuildTime', '')}\n"
    )


def show_version(ctx) -> None:
    need(ctx, 0, "More arguments than required")
    url = check_url(ctx) + "/version"
    try:
        status, reason, data = client.request("GET", url, None, (), ctx.insecure)
    except client.TransportError as e:
        fail(EXIT_REQUEST, str(e))
    if status != 200:
        err(data.decode("utf-8", "replace"))
        fail(EXIT_INVALID, f"Status {status} in request response")
    try:
        info = gojson.decode("VersionInfo", gojson.loads(data.decode("utf-8", "replace")))
    except gojson.GoJSONError as e:
        fail(EXIT_REQUEST, str(e))
    out("Client Version:\n" + version_block(CLIENT_VERSION) + "\nServer Version:\n" + version_block(info))
