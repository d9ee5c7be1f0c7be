"""netctl's view of the netmaster REST API (the original's contivModelClient, plus errExit rules).

``Api(ctx)`` is created lazily by each action at the point where the original called
``getClient(ctx)`` (so argument checks come first). It validates the base URL
(``^https?://`` else "Error connecting to netmaster: ..." saying what to write, exit 1;
trailing slashes are dropped by ``Context.netmaster``), applies
``~/.netctl/config.json`` (token -> ``x-auth-token``; only allowed with https), and turns
failures into netctl exits:

* transport failure (no HTTP answer)      -> exit 2 (the original used 3 except for ``version``)
* HTTP error / undecodable response body  -> exit 3, message = "Page not found!", body text, ...

Objects travel as dicts in Go struct order (``gojson.decode``); request bodies are
``gojson.marshal(gojson.to_go(T, obj))`` - the exact bytes of transcript 4.8.
"""

import posix

from contivpy.netctl import client, gojson
from contivpy.netctl.output import fail, getenv

EXIT_HELP = 1
EXIT_REQUEST = 2
EXIT_INVALID = 3
EXIT_IO = 4
EXIT_TRANSPORT = EXIT_REQUEST


def config_path() -> str:
    home = getenv("HOME")
    if not home:
        import pwd

        home = pwd.getpwuid(posix.getuid()).pw_dir
    sep = "" if not home or home.endswith("/") else "/"  # os.path.join(home, ".netctl", "config.json")
    return f"{home}{sep}.netctl/config.json"


def check_url(ctx) -> str:
    """The netmaster URL, which must start with http:// or https:// (exit 1 otherwise, with the
    original's "Error connecting to netmaster" followed by what to write instead)."""
    base = ctx.netmaster
    if base.startswith(("http://", "https://")):
        return base
    scheme, sep, rest = base.partition("://")
    example = f"http://{rest if sep else base or 'HOST:9999'}"
    what = f"unsupported scheme {scheme}://" if sep else "no http:// or https:// in front"
    fail(
        1,
        f"Error connecting to netmaster: '{base}' is not a netmaster URL ({what}); "
        f"write it as --netmaster {example} (or https://... with netmaster --tls-*)",
    )
    return base


class Api:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.base = check_url(ctx)
        self.headers: list[tuple[str, str]] = []
        path = config_path()
        try:
            posix.stat(path)
            exists = True
        except (FileNotFoundError, NotADirectoryError):
            exists = False
        except OSError as e:
            fail(EXIT_IO, f"stat {path}: {(e.strerror or str(e)).lower()}")
        if exists:
            self._apply_config(path)

    def _apply_config(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError as e:
            fail(EXIT_INVALID, f"error processing netctl config: failed to read config file: {e}")
        try:
            conf = gojson.loads(data)
        except gojson.GoJSONError as e:
            fail(EXIT_INVALID, f"error processing netctl config: failed to unmarshal JSON: {e}")
        token = conf.get("token", "") if isinstance(conf, dict) else ""
        if not isinstance(token, str):
            token = ""
        if not self.base.startswith("https://"):
            fail(
                EXIT_INVALID,
                "error processing netctl config: failed to set auth token: "
                "setting auth token requires a https auth_proxy URL",
            )
        self.headers.append(("x-auth-token", token))

    # ------------------------------------------------------------ raw exchange

    def _do(self, method: str, path: str, body: bytes | None = None) -> bytes:
        url = self.base + path
        try:
            status, reason, data = client.request(method, url, body, self.headers, self.ctx.insecure)
            client.check(method, status, reason, data)
        except client.TransportError as e:
            fail(EXIT_TRANSPORT, str(e))
        except client.HTTPError as e:
            fail(EXIT_INVALID, str(e))
        return data

    def _get_json(self, path: str):
        data = self._do("GET", path)
        try:
            return gojson.loads(data.decode("utf-8", "replace"))
        except gojson.GoJSONError as e:
            fail(EXIT_INVALID, str(e))

    def try_get(self, type_name: str, collection: str, key: str) -> dict | None:
        """GET without logging or exiting on failure (``acigw, _ := AciGwGet(...)``)."""
        try:
            status, reason, data = client.request(
                "GET", f"{self.base}/api/v1/{collection}/{key}/", None, self.headers, self.ctx.insecure
            )
            client.check("GET", status, reason, data)
            return gojson.decode(type_name, gojson.loads(data.decode("utf-8", "replace")))
        except (client.TransportError, client.HTTPError, gojson.GoJSONError):
            return None

    # ------------------------------------------------------------ model operations

    def get(self, type_name: str, collection: str, key: str) -> dict:
        raw = self._get_json(f"/api/v1/{collection}/{key}/")
        return self._decode(gojson.decode, type_name, raw)

    def list(self, type_name: str, collection: str):
        raw = self._get_json(f"/api/v1/{collection}/")
        return self._decode(gojson.decode_list, type_name, raw)

    def inspect(self, type_name: str, collection: str, key: str) -> dict:
        raw = self._get_json(f"/api/v1/inspect/{collection}/{key}/")
        return self._decode(gojson.decode, type_name + "Inspect", raw)

    def post(self, type_name: str, collection: str, key: str, obj: dict) -> None:
        body = gojson.marshal(gojson.to_go(type_name, obj)).encode("utf-8", "surrogateescape")
        self._do("POST", f"/api/v1/{collection}/{key}/", body)

    def delete(self, collection: str, key: str) -> None:
        self._do("DELETE", f"/api/v1/{collection}/{key}/")

    def _decode(self, fn, type_name, raw):
        try:
            return fn(type_name, raw)
        except gojson.GoJSONError as e:
            fail(EXIT_INVALID, str(e))


def dump_json(value) -> None:
    """``json.MarshalIndent(v, "", "  ")`` + newline on stdout."""
    from contivpy.netctl.output import out

    out(gojson.marshal_indent(value) + "\n")


def dump_structs(type_name: str, items) -> None:
    """``dumpJSONList`` of a decoded list (``None`` is Go's nil slice: ``null``)."""
    if items is None:
        dump_json(None)
    else:
        dump_json([gojson.to_go(type_name, x) for x in items])
