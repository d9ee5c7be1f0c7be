"""The one exception tree of contivpy.

Every error that can reach a user (REST response, netctl message, Docker plugin ``Err``)
is a ``ContivError``. Servers map it to a response in exactly one place (an aiohttp
middleware per server); anything that is *not* a ContivError is a bug, is logged with its
traceback on the server side and reaches the client only as a generic message.

    ContivError                      base; ``str(err)`` is the user-visible message
    ├── ValidationError              bad input (the original's message where it has one)
    ├── NotFoundError                "<type> not found"
    ├── ConflictError                state forbids the change ("cannot delete ... has 1 networks")
    ├── ResourceExhaustedError       no free address / VLAN / VNI
    ├── StoreError                   the KV store failed or is unreachable
    │   └── CompactedError           a watch start revision was compacted away; re-list
    ├── ExternalServiceError         Docker engine, OVSDB, OpenFlow switch, netmaster unreachable/refused
    └── NotLeaderError               a leader-only write was attempted by a follower / deposed leader

The original Contiv answers *every* REST error with HTTP 500 and a plain-text body; the
mapping keeps that (see docs/decisions.md), so the subclasses matter for logging, retries
and tests rather than for status codes.
"""

from __future__ import annotations


class ContivError(Exception):
    """Base of all user-visible errors. ``str(err)`` is the message shown to the user."""


class ValidationError(ContivError):
    pass


class NotFoundError(ContivError):
    pass


class ConflictError(ContivError):
    pass


class ResourceExhaustedError(ContivError):
    pass


class StoreError(ContivError):
    pass


class CompactedError(StoreError):
    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class ExternalServiceError(ContivError):
    pass


class NotLeaderError(ContivError):
    pass


__all__ = [
    "ContivError",
    "ValidationError",
    "NotFoundError",
    "ConflictError",
    "ResourceExhaustedError",
    "StoreError",
    "CompactedError",
    "ExternalServiceError",
    "NotLeaderError",
]
