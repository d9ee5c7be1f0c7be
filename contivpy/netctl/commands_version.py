"""Action of ``version`` (conventions as in commands_net: parse, one request, print); the client
version block lives in tree.py (``netctl -v`` prints it without importing this module)."""

from __future__ import annotations

from contivpy.netctl import client, gojson
from contivpy.netctl.api import EXIT_INVALID, EXIT_REQUEST, check_url
from contivpy.netctl.commands_net import need
from contivpy.netctl.output import err, fail, out
from contivpy.netctl.tree import CLIENT_VERSION, version_block


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
