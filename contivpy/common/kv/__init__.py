"""The KV store layer: the KVStore protocol, its two implementations, and ``open_store``.

``open_store(url)`` understands the forms the original daemons accepted for ``--etcd`` /
``--cluster-store`` plus an in-process store:

    http://host:port            etcd v3 (gRPC on the client port)
    https://host:port           etcd v3 over TLS (system trust roots; no client certs)
    etcd://host:port            legacy cluster-store form, same as http://
    "url1,url2,..."             a comma list: the first URL is used (as the original)
    memory://                   MemoryKV (single process, nothing persisted)

aetcd/grpc are imported lazily (inside ``open_store``) so that importing ``contivpy.common.kv``
stays cheap for tools that only need the types.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from contivpy.common.errors import ValidationError
from contivpy.common.kv.base import Compare, Delete, Event, KeyValue, KVStore, Put, TxnResult

DEFAULT_ETCD_PORT = 2379


def parse_store_url(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) for a store URL; raise ValidationError on bad input."""
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


def open_store(url: str) -> KVStore:
    """Build (without connecting) the store for ``url``; see the module docstring for the forms."""
    scheme, host, port = parse_store_url(url)
    if scheme == "memory":
        from contivpy.common.kv.memory import MemoryKV

        return MemoryKV()
    from contivpy.common.kv.etcd import EtcdKV

    return EtcdKV(host, port, tls=scheme == "https")


__all__ = [
    "KVStore",
    "KeyValue",
    "Event",
    "Compare",
    "Put",
    "Delete",
    "TxnResult",
    "open_store",
    "parse_store_url",
]
