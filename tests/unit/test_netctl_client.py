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
