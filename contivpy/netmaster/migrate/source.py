"""Read the original Contiv's keyspace: a live etcd through the v2 HTTP API, or a JSON dump file.

- ``from_etcd(url)``: ``GET <url>/v2/keys/contiv.io?recursive=true&sorted=true`` (the original only
  used the v2 API; etcd 3.4 serves it with ``--enable-v2``, 3.6 no longer does). Directory nodes are
  walked; leaves become ``{key: value}``; keys with a TTL are noted (live state).
- ``from_file(path)``: one JSON object, in any of three forms: the recorded form
  ``{"keys": {key: value}, ...}`` (tests/data), a saved v2 GET answer ``{"node": {...}}``
  (``curl .../v2/keys/contiv.io?recursive=true``), or a flat ``{key: value}`` map.

Every failure is a ``MigrateError`` with a message for the operator (never a traceback): an
unreachable source, an etcd without the v2 API (a v3-only etcd, or one already holding contivpy's
v3 state), a store without ``/contiv.io``, a file that is not JSON, truncated, or of another shape.
Only the standard library is used (urllib), so the command starts fast and needs nothing new.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from contivpy.netmaster.migrate.convert import MigrateError

ROOT_DIR = "/contiv.io"


@dataclass
class Source:
    origin: str
    keys: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    ttl_keys: list[str] = field(default_factory=list)


def _walk(node: dict, out: Source) -> None:
    if not isinstance(node, dict):
        raise MigrateError(f"{out.origin}: a v2 node is not an object")
    key = node.get("key", "")
    if node.get("dir"):
        out.dirs.append(key)
        for child in node.get("nodes") or []:
            _walk(child, out)
        return
    value = node.get("value")
    if not isinstance(key, str) or not isinstance(value, str):
        raise MigrateError(f"{out.origin}: node {key!r} has no string value")
    out.keys[key] = value
    if node.get("ttl"):
        out.ttl_keys.append(key)


# --- live etcd (v2 API) -----------------------------------------------------------------------------


_SSL: list = [None]  # the TLS context of the source etcd (https:// sources), set by from_etcd


def _get(url: str, timeout: float, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_SSL[0]) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _v3_has_contiv(base: str, timeout: float) -> bool:
    """Whether the etcd's v3 keyspace (grpc-gateway JSON) holds /contiv.io keys."""
    body = json.dumps(
        {
            "key": base64.b64encode(b"/contiv.io/").decode(),
            "range_end": base64.b64encode(b"/contiv.io0").decode(),
            "count_only": True,
        }
    ).encode()
    for path in ("/v3/kv/range", "/v3beta/kv/range"):
        try:
            status, raw = _get(base + path, timeout, body)
        except (OSError, urllib.error.URLError):
            return False
        if status == 200:
            try:
                return int(json.loads(raw).get("count", 0) or 0) > 0
            except ValueError:
                return False
    return False


def from_etcd(
    url: str, timeout: float = 15.0, ca_file: str = "", cert_file: str = "", key_file: str = ""
) -> Source:
    """The original's keyspace read from a live etcd through the v2 API (https:// with the given
    CA and client certificate, if any)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MigrateError(f"invalid source etcd URL {url!r}: use http://HOST:PORT")
    base = f"{parts.scheme}://{parts.netloc}"
    _SSL[0] = None
    if parts.scheme == "https":
        import ssl

        try:
            ctx = ssl.create_default_context(cafile=ca_file or None)
            if cert_file:
                ctx.load_cert_chain(cert_file, key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise MigrateError(f"source etcd TLS files: {getattr(exc, 'strerror', None) or exc}") from None
        _SSL[0] = ctx
    elif ca_file or cert_file or key_file:
        raise MigrateError("source etcd TLS files given but the source URL is not https://")
    try:
        status, raw = _get(f"{base}/v2/keys{ROOT_DIR}?recursive=true&sorted=true", timeout)
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        reason = getattr(reason, "strerror", None) or reason
        raise MigrateError(f"cannot reach the source etcd at {base}: {reason}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status == 404 and isinstance(answer, dict) and answer.get("errorCode") == 100:
        if _v3_has_contiv(base, timeout):
            raise MigrateError(
                f"the source etcd at {base} has no /contiv.io in its v2 store, but /contiv.io keys in its v3 "
                "keyspace: it holds contivpy (v3) state, not the original Contiv's (nothing to import)"
            )
        raise MigrateError(
            f"the source etcd at {base} has no /contiv.io: it does not hold an original Contiv cluster's state"
        )
    if not isinstance(answer, dict):
        try:
            vstatus, _ = _get(f"{base}/version", timeout)
        except (urllib.error.URLError, OSError):
            vstatus = 0
        if vstatus == 200:
            hint = (
                " (its v3 keyspace holds /contiv.io: contivpy state)" if _v3_has_contiv(base, timeout) else ""
            )
            raise MigrateError(
                f"the source etcd at {base} does not serve the v2 API{hint}: the original Contiv kept its state "
                "in etcd v2; give the etcd the original used (etcd 3.4 needs --enable-v2), or a dump with --from-file"
            )
        raise MigrateError(f"{base} does not answer like an etcd server (HTTP {status})")
    if status != 200:
        raise MigrateError(
            f"the source etcd at {base} refused the read: HTTP {status} {answer.get('message', '')}"
        )
    node = answer.get("node")
    if not isinstance(node, dict) or not node.get("dir"):
        raise MigrateError(f"the source etcd at {base}: /contiv.io is not a directory")
    src = Source(origin=base)
    _walk(node, src)
    return src


# --- dump file -----------------------------------------------------------------------------------


def from_file(path: str) -> Source:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise MigrateError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as exc:
        raise MigrateError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise MigrateError(f"{path} is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
            raise MigrateError(
                f"{path} is truncated: the JSON ends early (line {exc.lineno}, column {exc.colno})"
            ) from None
        raise MigrateError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise MigrateError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise MigrateError(f"{path}: a JSON object is expected")
    src = Source(origin=path)
    if isinstance(data.get("node"), dict):
        _walk(data["node"], src)
        return src
    flat = data.get("keys") if isinstance(data.get("keys"), dict) else data
    bad = [k for k, v in flat.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        shown = ", ".join(repr(k) for k in bad[:5])
        raise MigrateError(f"{path}: values must be strings (v2 values); not for {shown}")
    src.keys = dict(flat)
    src.dirs = [d for d in data.get("dirs") or [] if isinstance(d, str)]
    src.ttl_keys = [k for k in data.get("volatile_keys") or [] if isinstance(k, str)]
    return src


__all__ = ["Source", "from_etcd", "from_file"]
