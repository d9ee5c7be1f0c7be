"""Minimal HTTP/1.1 client for netctl, with the original client's conventions.

Design:
* Stdlib only and import-light: plain ``_socket`` for http (no ``socket``/``enum``/``re``
  at start-up); ``ssl``+``socket`` are imported only for https URLs.
* Keep-alive like Go's transport: after a response that allows it (HTTP/1.1, no
  ``Connection: close``, a body framed by Content-Length or chunked) the connection is kept
  as the one idle connection of its (scheme, host, port, --insecure); the next GET/HEAD to
  the same place reuses it (``network ls``: both GETs on one connection, one TLS handshake
  over https). A reused connection that the server has closed meanwhile (nothing received)
  is replaced by a new one and the request sent again; requests other than GET/HEAD always
  open a new connection, so a POST is never sent twice. Every read asks for an immediate ACK
  (TCP_QUICKACK): with keep-alive, a server that sends headers and body apart would otherwise
  wait 40 ms for a delayed ACK. ``close_idle()`` closes the idle
  connections (``app.run`` calls it at the end). Requests carry exactly what Go's net/http client sent
  (transcript 4.8): ``Host``, ``User-Agent: Go-http-client/1.1``, ``Content-Length`` for
  bodies, the ``x-auth-token`` header when a token is configured. URL = base URL +
  path (``Context.netmaster`` has dropped trailing slashes of ``--netmaster``/``NETMASTER``).
* Status handling of contivModelClient: 200 ok; 404 -> "Page not found!" (DELETE: success);
  403 -> "Access denied!"; 401 -> a hint to run ``netctl login``; 500 -> the body text, verbatim (trailing newline included);
  anything else -> the status line ("502 Bad Gateway").
* Failures raise ``TransportError`` (no HTTP exchange: refused, DNS, timeout, EOF; message in
  Go's ``Get "<url>": dial tcp ...`` form) or ``HTTPError`` (the server answered).
"""

USER_AGENT = "Go-http-client/1.1"
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0


class TransportError(Exception):
    """No usable HTTP response (connection refused, name lookup, timeout, EOF, TLS)."""


class HTTPError(Exception):
    """The server answered with a non-200 status; ``str()`` is the user-visible message."""

    def __init__(self, message: str, status: int = 0, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


_GO_METHOD = {"GET": "Get", "POST": "Post", "DELETE": "Delete", "PUT": "Put"}


def _split_url(url: str) -> tuple[str, str, int, str, str]:
    """-> (scheme, host, port, hostheader, path)."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    default = 443 if scheme == "https" else 80
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end]
        port_s = hostport[end + 2 :] if hostport[end + 1 : end + 2] == ":" else ""
    else:
        host, _, port_s = hostport.partition(":")
    try:
        port = int(port_s) if port_s else default
    except ValueError:
        raise TransportError(f'parse "{url}": invalid port ":{port_s}" after host') from None
    return scheme, host, port, hostport, _quote_path(path)


def _quote_path(path: str) -> str:
    if all(33 <= ord(c) < 127 for c in path):
        return path
    out = []
    for ch in path:
        if 33 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _resolver() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    ns = parts[1]
                    return f"[{ns}]:53" if ":" in ns else f"{ns}:53"
    except OSError:
        pass
    return ""


def _connect(scheme: str, host: str, port: int, insecure: bool):
    import _socket

    try:
        # bytes: a str host would pull in the idna codec (~5 ms of start-up)
        hb = host.encode("ascii") if host.isascii() else host.encode("idna")
        infos = _socket.getaddrinfo(hb, port, 0, _socket.SOCK_STREAM)
    except _socket.gaierror:
        ns = _resolver()
        where = f" on {ns}" if ns else ""
        raise TransportError(f"dial tcp: lookup {host}{where}: no such host") from None
    except (UnicodeError, OSError) as err:
        raise TransportError(f"dial tcp: lookup {host}: {err}") from None
    last = ""
    for family, socktype, proto, _canon, addr in infos:
        shown = f"[{addr[0]}]:{addr[1]}" if family == _socket.AF_INET6 else f"{addr[0]}:{addr[1]}"
        if scheme == "https":
            import socket

            sock = socket.socket(family, socktype, proto)
        else:
            sock = _socket.socket(family, socktype, proto)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(addr)
        except TimeoutError:
            sock.close()
            last = f"dial tcp {shown}: i/o timeout"
            continue
        except OSError as err:
            sock.close()
            reason = (err.strerror or str(err)).lower()
            last = f"dial tcp {shown}: connect: {reason}"
            continue
        sock.settimeout(READ_TIMEOUT)
        if scheme == "https":
            sock = _wrap_tls(sock, host, insecure)
        return sock
    raise TransportError(last or f"dial tcp: lookup {host}: no such host")


def _wrap_tls(sock, host: str, insecure: bool):
    import ssl

    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        return ctx.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as err:
        sock.close()
        raise TransportError(f"x509: {err.verify_message}") from None
    except (ssl.SSLError, OSError) as err:
        sock.close()
        raise TransportError(f"tls: {err}") from None


class _Reader:
    def __init__(self, sock) -> None:
        import _socket

        self.sock = sock
        self.buf = b""
        self.eof = False
        self.received = False
        # Linux: acknowledge at once. A server that writes the headers and the body of an answer
        # in two sends without TCP_NODELAY (Python's http.server does) has its body held by Nagle
        # until our ACK, which a reused connection delays by 40 ms (a new one is in quick-ACK mode).
        opt = getattr(_socket, "TCP_QUICKACK", None)
        self.quickack = None if opt is None else (_socket.IPPROTO_TCP, opt)

    def fill(self) -> bool:
        if self.eof:
            return False
        if self.quickack is not None:
            try:
                self.sock.setsockopt(*self.quickack, 1)  # the kernel resets it: before every read
            except OSError:
                self.quickack = None
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        self.received = True
        return True

    def until(self, sep: bytes) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep) :]
                return out
            if not self.fill():
                raise EOFError

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while self.fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _read_response(r: _Reader, method: str) -> tuple[int, str, bytes, bool]:
    """-> (status, reason, body, whether the connection can carry another request)."""
    while True:
        head = r.until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status_line = lines[0].split(" ", 2)
        status = int(status_line[1])
        reason = status_line[2] if len(status_line) > 2 else ""
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            continue
        break
    keep = status_line[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if method == "HEAD" or status in (204, 304):
        return status, reason, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(r.until(b"\r\n").split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            body += r.exactly(size)
            r.until(b"\r\n")
        try:
            while r.until(b"\r\n"):  # trailer fields up to the empty line
                pass
        except EOFError:  # closed without it: the body is complete, the connection is not reusable
            return status, reason, body, False
        return status, reason, body, keep and not r.buf
    if "content-length" in headers:
        body = r.exactly(int(headers["content-length"]))
        return status, reason, body, keep and not r.buf
    return status, reason, r.rest(), False


class _Stale(Exception):
    """A reused idle connection turned out closed before any byte of the answer arrived."""


# (scheme, host, port, insecure) -> the one idle keep-alive connection to that place
_idle: dict[tuple, object] = {}


def close_idle() -> None:
    """Close the idle keep-alive connections (end of a netctl run)."""
    while _idle:
        _idle.popitem()[1].close()


def _exchange(sock, key: tuple, method: str, build, reused: bool) -> tuple[int, str, bytes]:
    """Send the request ``build()`` makes and read the answer; keep or close the connection."""
    r = _Reader(sock)
    keep = False
    try:
        sock.sendall(build())
        status, reason, body, keep = _read_response(r, method)
    except (EOFError, OSError) as err:
        if reused and not r.received and not isinstance(err, TimeoutError):
            raise _Stale from None
        raise
    finally:
        if keep:
            _idle[key] = sock
        else:
            sock.close()
    return status, reason, body


def request(method: str, url: str, body: bytes | None = None, headers=(), insecure: bool = False):
    """Send one request; return (status, reason, body bytes). Raises TransportError."""
    goname = _GO_METHOD.get(method, method)
    try:
        scheme, host, port, hostheader, path = _split_url(url)
        if scheme not in ("http", "https"):
            raise TransportError(f'unsupported protocol scheme "{scheme}"')
    except TransportError as err:
        raise TransportError(f'{goname} "{url}": {err}') from None

    def build() -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {hostheader}", f"User-Agent: {USER_AGENT}"]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        for name, value in headers:
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")

    key = (scheme, host, port, insecure)
    idle = _idle.pop(key, None)
    if idle is not None:
        if method in ("GET", "HEAD"):
            try:
                return _exchange(idle, key, method, build, True)
            except _Stale:
                pass  # the server closed it while idle: a new connection below
            except (EOFError, TimeoutError, ValueError, IndexError, OSError) as err:
                raise _transport_error(goname, url, err) from None
        else:
            idle.close()
    try:
        sock = _connect(scheme, host, port, insecure)
    except TransportError as err:
        raise TransportError(f'{goname} "{url}": {err}') from None
    try:
        return _exchange(sock, key, method, build, False)
    except (EOFError, TimeoutError, ValueError, IndexError, OSError) as err:
        raise _transport_error(goname, url, err) from None


def _transport_error(goname: str, url: str, err: Exception) -> TransportError:
    """The Go-worded error of a failed exchange (the request was sent or being sent)."""
    if isinstance(err, EOFError):
        return TransportError(f'{goname} "{url}": EOF')
    if isinstance(err, TimeoutError):
        return TransportError(f'{goname} "{url}": net/http: timeout awaiting response headers')
    if isinstance(err, (ValueError, IndexError)):
        return TransportError(f'{goname} "{url}": net/http: malformed HTTP response')
    reason = (getattr(err, "strerror", None) or str(err)).lower()
    return TransportError(f'{goname} "{url}": read tcp: {reason}')


def check(method: str, status: int, reason: str, body: bytes) -> None:
    """Apply contivModelClient's status rules; raise HTTPError for a failure."""
    if status == 200:
        return
    if status == 404:
        if method == "DELETE":
            return
        raise HTTPError("Page not found!", status, body)
    if status == 403:
        raise HTTPError("Access denied!", status, body)
    if status == 401:  # contivpy: netmaster --auth without a valid token
        raise HTTPError(
            "Unauthorized: log in first with 'netctl --netmaster https://... login'", status, body
        )
    if status == 500:
        raise HTTPError(body.decode("utf-8", "replace"), status, body)
    raise HTTPError(f"{status} {reason}".rstrip(), status, body)
