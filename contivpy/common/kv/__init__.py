"""The KV store layer: the KVStore protocol, its two implementations, and ``open_store``.

``open_store(url)`` understands the forms the original daemons accepted for ``--etcd`` /
``--cluster-store`` plus an in-process store:

    http://host:port            etcd v3 (its JSON gateway on the client port: kv/etcdhttp.py)
    https://host:port           etcd v3 over TLS (``ca_file`` or the system trust roots;
                                a client certificate with ``cert_file``/``key_file``)
    etcd://host:port            legacy cluster-store form, same as http://
    "url1,url2,..."             a comma list of members of one etcd cluster: every one is used
                                (fail-over between members; see kv/etcd.py); all
                                must have the same scheme
    memory://                   MemoryKV (single process, nothing persisted)

etcd client: ``contivpy.common.kv.etcd.EtcdKV`` (etcd's JSON gateway, stdlib only) unless the
environment says ``CONTIVPY_ETCD_CLIENT=grpc``: then the aetcd/gRPC fallback
(``etcd_grpc.EtcdGrpcKV``; needs the optional aetcd package). ``etcd_client_problem()`` is what
the daemons' configuration checks at start (exit 22 with its message).

The etcd client is imported lazily (inside ``open_store``) so that importing ``contivpy.common.kv``
stays cheap for tools that only need the types.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from contivpy.common.errors import ValidationError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, KVStore, Put, TxnResult

DEFAULT_ETCD_PORT = 2379
ETCD_CLIENTS = ("http", "grpc")


def etcd_client_choice(env: Mapping[str, str] | None = None) -> str:
    return ((os.environ if env is None else env).get("CONTIVPY_ETCD_CLIENT") or "http").strip().lower()


def etcd_client_problem(env: Mapping[str, str] | None = None) -> str:
    """Why ``CONTIVPY_ETCD_CLIENT`` cannot be used ("" when it can)."""
    choice = etcd_client_choice(env)
    if choice not in ETCD_CLIENTS:
        return f"invalid CONTIVPY_ETCD_CLIENT {choice!r} (use http or grpc)"
    if choice == "grpc":
        import importlib.util

        if importlib.util.find_spec("aetcd") is None:
            return "CONTIVPY_ETCD_CLIENT=grpc needs the aetcd package (pip install 'contivpy[etcd-grpc]')"
    return ""


def parse_store_urls(url: str) -> list[tuple[str, str, int]]:
    """(scheme, host, port) of every URL of a comma list; one scheme for all (ValidationError)."""
    parts = [u.strip() for u in (url or "").split(",") if u.strip()]
    if not parts:
        raise ValidationError("empty KV store URL")
    out = [parse_store_url(u) for u in parts]
    schemes = {"http" if s == "etcd" else s for s, _, _ in out}
    if len(schemes) > 1:
        raise ValidationError(f"KV store URLs {url!r} mix schemes: use all http:// or all https://")
    if "memory" in schemes and len(out) > 1:
        raise ValidationError("memory:// cannot be combined with other store URLs")
    return out


def parse_store_url(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) for a store URL (the first of a comma list); raise
    ValidationError on bad input."""
    first = (url or "").split(",")[0].strip()
    if not first:
        raise ValidationError("empty KV store URL")
    if first.startswith("memory:"):
        return "memory", "", 0
    parts = urlsplit(first if "://" in first else f"http://{first}")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "etcd"):
        raise ValidationError(
            f"unsupported KV store URL {first!r} (use http://, https://, etcd:// or memory://)"
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError as err:
        raise ValidationError(f"invalid KV store URL {first!r}: {err}") from err
    if not host:
        raise ValidationError(f"invalid KV store URL {first!r}: no host")
    return scheme, host, port or DEFAULT_ETCD_PORT


def open_store(url: str, ca_file: str = "", cert_file: str = "", key_file: str = "") -> KVStore:
    """Build (without connecting) the store for ``url``; see the module docstring for the forms.
    The TLS files apply to https:// endpoints (given with http:// they are an error)."""
    urls = parse_store_urls(url)
    scheme = urls[0][0]
    if scheme == "memory":
        from contivpy.common.kv.memory import MemoryKV

        return MemoryKV()
    if (ca_file or cert_file or key_file) and scheme != "https":
        raise ValidationError("etcd TLS files given but the etcd endpoints are not https:// URLs")
    problem = etcd_client_problem()
    if problem:
        raise ValidationError(problem)
    if etcd_client_choice() == "grpc":
        from contivpy.common.kv.etcd_grpc import EtcdGrpcKV

        return EtcdGrpcKV(
            endpoints=[(h, p) for _, h, p in urls],
            tls=scheme == "https",
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
        )
    from contivpy.common.kv.etcd import EtcdKV

    return EtcdKV(
        endpoints=[(h, p) for _, h, p in urls],
        tls=scheme == "https",
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
    )


__all__ = [
    "KVStore",
    "KeyValue",
    "Event",
    "Compare",
    "Put",
    "Delete",
    "TxnResult",
    "open_store",
    "etcd_client_choice",
    "etcd_client_problem",
    "parse_store_url",
    "parse_store_urls",
]
