"""netctl's HTTP client: response framing, TLS with --insecure, the x-auth-token header, login."""

import re
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from contivpy.netctl import client
from tests.support.netctl_fakeserver import ReplayServer, run_inprocess

TS = re.compile(r'time="[^"]*"')


@pytest.fixture(autouse=True)
def _no_idle_connection_left():
    yield
    client.close_idle()  # tests that call client.request directly leave its keep-alive connection


def one_shot_server(raw: bytes):
    """A TCP server on 127.0.0.1 answering one request with ``raw`` bytes, then closing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = {}

    def serve():
        conn, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        got["request"] = data
        conn.sendall(raw)
        conn.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}", got, t


@pytest.mark.parametrize(
    "raw,body",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", b"hello"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    ],
)
def test_response_framing(raw, body):
    url, got, t = one_shot_server(raw)
    assert client.request("GET", url + "/x/") == (200, "OK", body)
    t.join(5)
    assert got["request"] == (
        f"GET /x/ HTTP/1.1\r\nHost: {url[7:]}\r\nUser-Agent: Go-http-client/1.1\r\n\r\n".encode()
    )


def test_connection_closed_without_answer_is_eof():
    url, _got, t = one_shot_server(b"")
    with pytest.raises(client.TransportError, match=r'^Delete "http://127\.0\.0\.1:\d+/x/": EOF$'):
        client.request("DELETE", url + "/x/")
    t.join(5)


def test_login_requires_https(tmp_path):
    code, out, err = run_inprocess(
        ["--netmaster", "http://127.0.0.1:9", "login"], env={"HOME": str(tmp_path)}
    )
    assert code == 3 and err == ""
    assert out.startswith(
        "login requires a https auth_proxy URL\nNAME:\n   netctl login - authenticate to Contiv"
    )


@pytest.fixture
def tls_server(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    srv = ReplayServer({("GET", "/api/v1/tenants/"): (200, '[{"key":"default","tenantName":"default"}]')})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with srv:
        yield srv


def test_https_insecure_and_token_header(tls_server, tmp_path):
    url = tls_server.url.replace("http://", "https://")
    home = str(tmp_path)
    code, out, err = run_inprocess(["--netmaster", url, "tenant", "ls", "-q"], env={"HOME": home})
    assert (code, out) == (2, "")
    assert f'msg="Get "{url}/api/v1/tenants/": x509: ' in err
    (tmp_path / ".netctl").mkdir()
    (tmp_path / ".netctl" / "config.json").write_text('{"token":"tok123"}')
    code, out, err = run_inprocess(
        ["--netmaster", url, "--insecure", "tenant", "ls", "-q"], env={"HOME": home}
    )
    assert (code, out, err) == (0, "default\n", "")
    assert tls_server.requests[-1][2]["x-auth-token"] == "tok123"
    code, out, err = run_inprocess(
        ["--netmaster", url, "tenant", "ls", "-q"], env={"HOME": home, "INSECURE": "1"}
    )
    assert (code, out) == (0, "default\n")


# ---------------------------------------------------------------- keep-alive

NETS = '[{"key":"default:n1","networkName":"n1","tenantName":"default","subnet":"10.1.1.0/24"}]'
LS_ROUTES = {
    ("GET", "/api/v1/tenants/default/"): (200, '{"key":"default","tenantName":"default"}'),
    ("GET", "/api/v1/networks/"): (200, NETS),
}


def count_connections(srv) -> list:
    """Record every connection ``srv`` (a ReplayServer) accepts."""
    accepted: list = []
    srv.verify_request = lambda request, address: accepted.append(address) or True
    return accepted


def test_network_ls_sends_both_gets_on_one_connection():
    with ReplayServer(LS_ROUTES) as srv:
        accepted = count_connections(srv)
        code, out, err = run_inprocess(["--netmaster", srv.url, "network", "ls", "-q"])
        assert (code, out, err) == (0, "n1\n", "")
        assert [r[:2] for r in srv.requests] == [
            ("GET", "/api/v1/tenants/default/"),
            ("GET", "/api/v1/networks/"),
        ]
        assert len(accepted) == 1
    assert client._idle == {}  # closed at the end of the run


def test_network_ls_over_https_makes_one_tls_handshake(tls_server):
    tls_server.routes.update(LS_ROUTES)
    accepted = count_connections(tls_server)
    url = tls_server.url.replace("http://", "https://")
    code, out, err = run_inprocess(["--netmaster", url, "--insecure", "network", "ls", "-q"])
    assert (code, out, err) == (0, "n1\n", "")
    assert len(accepted) == 1


def answering_server(per_connection: int):
    """HTTP/1.1 server on 127.0.0.1 that answers ``per_connection`` requests on each connection
    (keep-alive style, Content-Length) and then closes it; records (connection number, request line)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen: list = []

    def serve():
        n = 0
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            n += 1
            buf = b""
            for _ in range(per_connection):
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        break
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                if not head:
                    break
                line = head.split(b"\r\n")[0].decode()
                length = [
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                ]
                while length and len(buf) < length[0]:
                    buf += conn.recv(4096)
                buf = buf[length[0] :] if length else buf
                seen.append((n, line))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}", seen, srv


def test_idle_connection_closed_by_the_server_is_replaced():
    url, seen, srv = answering_server(per_connection=1)
    try:
        for _ in range(3):
            assert client.request("GET", url + "/a/") == (200, "OK", b"ok")
        assert seen == [(1, "GET /a/ HTTP/1.1"), (2, "GET /a/ HTTP/1.1"), (3, "GET /a/ HTTP/1.1")]
    finally:
        client.close_idle()
        srv.close()


def test_only_gets_reuse_a_connection():
    url, seen, srv = answering_server(per_connection=5)
    try:
        assert client.request("GET", url + "/a/")[0] == 200
        assert client.request("GET", url + "/b/")[0] == 200
        assert client.request("POST", url + "/c/", b"{}")[0] == 200  # never sent twice: a new connection
        assert client.request("GET", url + "/d/")[0] == 200
        assert seen == [
            (1, "GET /a/ HTTP/1.1"),
            (1, "GET /b/ HTTP/1.1"),
            (2, "POST /c/ HTTP/1.1"),
            (2, "GET /d/ HTTP/1.1"),
        ]
    finally:
        client.close_idle()
        srv.close()


class RecordingSocket:
    """A real client socket that also records the options set on it."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.options: list = []

    def setsockopt(self, *args) -> None:
        self.options.append(args)
        self.sock.setsockopt(*args)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
def test_reads_ask_for_quick_acks():
    """On a reused connection, a server that writes headers and body apart (http.server, Nagle on)
    holds the body until our ACK: every read asks for an immediate one instead of a delayed one."""
    url, seen, srv = answering_server(per_connection=2)
    real_connect = client._connect
    made: list = []

    def connect(*args):
        made.append(RecordingSocket(real_connect(*args)))
        return made[-1]

    try:
        client._connect = connect
        assert client.request("GET", url + "/a/")[0] == 200
        assert client.request("GET", url + "/b/")[0] == 200
        assert len(made) == 1 and len(seen) == 2
        quick = (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        assert made[0].options.count(quick) >= 2  # at least one before each answer
    finally:
        client._connect = real_connect
        client.close_idle()
        srv.close()
