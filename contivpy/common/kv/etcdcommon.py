"""What the two etcd clients share: error mapping, the watch registry, and "from now" watches.

contivpy has two KVStore clients for etcd v3 (common/kv/etcd.py over the JSON gateway, the
default; common/kv/etcd_grpc.py over gRPC, the fallback). They differ in transport only, so the
parts that define the store's behaviour towards its callers live here once:

- ``store_errors(what, describe)``: every failure of a request becomes
  ``StoreError("etcd <what> failed: <describe(err)>")`` and the request is timed into the
  ``contiv_etcd_request_*`` metrics. ``describe`` returns None for an exception that is not a
  transport/etcd error (a bug): it then propagates unchanged. A cancelled caller is not a failure.
- ``EtcdClientBase``: the endpoint list, the TLS switch and the set of open watches, so that
  ``close()`` ends every open watch iterator with ``StoreError("etcd store is closed")``.
- ``first_revision``: a watch "from now" (``start_revision=0``) starts at the revision of a first
  successful read + 1, retried with backoff (0.1 s .. 2 s) until the store answers or is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from contivpy.common import metrics
from contivpy.common.errors import StoreError
from contivpy.common.kv.base import Event, KeyValue
from contivpy.common.pump import PumpedIterator

log = logging.getLogger(__name__)

Describe = Callable[[BaseException], "str | None"]


@contextlib.asynccontextmanager
async def store_errors(what: str, describe: Describe) -> AsyncIterator[None]:
    """Map client errors to StoreError; time the request (contiv_etcd_request_* metrics)."""
    start = time.perf_counter()
    failed = True
    try:
        yield
        failed = False
    except asyncio.CancelledError:  # the caller gave up: not an etcd error
        failed = False
        raise
    except StoreError:
        raise
    except Exception as err:
        text = describe(err)
        if text is None:
            raise
        raise StoreError(f"etcd {what} failed: {text}") from err
    finally:
        metrics.observe_etcd(what, time.perf_counter() - start, failed)


class EtcdClientBase:
    """Endpoints, TLS switch, closed flag and open watches of an etcd client (see module doc)."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        tls: bool,
        endpoints: Sequence[tuple[str, int]],
        ca_file: str,
        cert_file: str,
        key_file: str,
    ) -> None:
        self.endpoints = list(endpoints) or [(host, port)]
        self.host, self.port = self.endpoints[0]
        self.tls = tls or bool(ca_file or cert_file or key_file)
        self._timeout = timeout
        self._closed = False
        self._watches: weakref.WeakSet[PumpedIterator] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ",".join(f"{h}:{p}" for h, p in self.endpoints) + ")"

    # implemented by each client
    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        raise NotImplementedError

    def _events(self, prefix: str, next_rev: int) -> AsyncIterator[Event]:
        raise NotImplementedError

    def watch_prefix(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        w = PumpedIterator(self._events(prefix, start_revision), name=f"etcd-watch {prefix}")
        self._watches.add(w)
        return w

    async def first_revision(self, prefix: str) -> int:
        """The revision a watch "from now" on ``prefix`` starts at (see module doc)."""
        delay = 0.1
        while True:
            try:
                _, rev = await self.get_prefix(prefix)
                return rev + 1
            except StoreError as err:
                if self._closed:
                    raise
                log.warning("etcd watch on %r cannot start (%s); retrying in %.1fs", prefix, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _close_watches(self, transport_close: Callable[[], Awaitable[None]]) -> None:
        """Mark closed, end every open watch with StoreError, then close the transport."""
        self._closed = True
        for w in list(self._watches):
            await w.fail(StoreError("etcd store is closed"))
        await transport_close()


__all__ = ["EtcdClientBase", "store_errors"]
