"""Raw HTTP exchanges for the boundary tests: a request sent as several writes, the answer read
until the server closes, over TCP or a unix socket (what a slow, split or hostile client does)."""

from __future__ import annotations

import socket
import time


def exchange(
    address: str | tuple[str, int], parts: list[bytes], pause: float = 0.3, timeout: float = 10
) -> bytes:
    """Send ``parts`` as separate writes, ``pause`` seconds apart, to ``address`` (a unix socket path
    or a ``(host, port)``); return every byte of the answer until close (a reset ends it too)."""
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(address)
    else:
        s = socket.create_connection(address, timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with s:
        for i, part in enumerate(parts):
            if i:
                time.sleep(pause)
            s.sendall(part)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
