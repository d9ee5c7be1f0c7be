"""The HTTP boundary of a real netmaster (issue 7, defects 3, 4 and 5; docs/failure-modes.md "Slow or
malformed clients"): whole bodies however they are split, the 1 MiB limit and deep nesting on
/plugin/*, Go wording and never Python wording, a plain 400 for malformed HTTP, slow clients cut
after the (shortened) timeouts, netprofile names refused like every other name. After every test
the daemon still serves and its log holds no traceback."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest

from tests.support import rawhttp

pytestmark = pytest.mark.etcd

# header, body, idle timeouts of common/httpserve.py, shortened for the test
TIMEOUTS = {"CONTIVPY_HTTP_TIMEOUTS": "1,1.5,4"}
MIB = 1 << 20
PYTHON_WORDING = (
    "Traceback",
    "can only concatenate",
    "codec can't decode",
    "object has no attribute",
    "NoneType",
    "not subscriptable",
    "unhashable",
    "Expecting value",
    "Expecting property name",
    "line 1 column",
    "invalid literal for int",
    "object is not",
    "maximum recursion",
    "internal server error",
)
NET = {"tenantName": "default", "networkName": "tbn", "encap": "vxlan", "subnet": "10.77.1.0/24"}


@pytest.fixture
def nm(netmaster_factory):
    m = netmaster_factory(env=TIMEOUTS)
    m.json("POST", "/api/v1/networks/default:tbn/", NET)
    yield m
    assert m.proc.poll() is None, "netmaster died"
    assert m.request("GET", "/version")[0] == 200
    log = m.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


def raw_exchange(port: int, data: list[bytes], pause: float = 0.3, timeout: float = 10) -> bytes:
    """Send ``data`` as separate TCP writes (``pause`` apart); the whole answer until close."""
    return rawhttp.exchange(("127.0.0.1", port), data, pause, timeout)


def post_head(path: str, length: int, ctype: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def split_answer(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode("utf-8", "replace")


def test_plugin_body_in_two_tcp_writes(nm):
    body = json.dumps({"NetworkID": "tbn.default", "AddressPool": "", "PreferredIPv4Address": ""}).encode()
    half = len(body) // 2
    raw = raw_exchange(nm.port, [post_head("/plugin/allocAddress", len(body)) + body[:half], body[half:]])
    status, text = split_answer(raw)
    assert status == 200, text
    assert json.loads(text) == {"NetworkID": "tbn.default", "IPv4Address": "10.77.1.1/24"}


def test_plugin_oversize_body_refused(nm, etcd_server):
    before = etcd_server.etcdctl("get", "--prefix", "/contiv.io/state")
    body = b'{"TenantName":"default","NetworkName":"tbn","EPCommonName":"' + b"a" * MIB + b'"}'
    status, _, text = nm.request("POST", "/plugin/createEndpoint", body)
    assert (status, text) == (500, f"request body too large (limit {MIB} bytes)\n")
    # the same body without a Content-Length (chunked): refused while streaming
    chunked = [
        b"POST /plugin/createEndpoint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        *(
            b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
            for i in range(0, len(body), 65536)
        ),
        b"0\r\n\r\n",
    ]
    status, text = split_answer(raw_exchange(nm.port, chunked, pause=0))
    assert (status, text) == (500, f"request body too large (limit {MIB} bytes)\n")
    assert etcd_server.etcdctl("get", "--prefix", "/contiv.io/state") == before


@pytest.mark.parametrize(
    "path", ["/plugin/createEndpoint", "/plugin/allocAddress", "/api/v1/networks/default:tbn/"]
)
@pytest.mark.parametrize("body", ["[" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000])
def test_deeply_nested_json_refused(nm, path, body):
    status, _, text = nm.request("POST", path, body)
    assert (status, text) == (500, "exceeded max depth\n")


# (path, body, the exact answer): Go's encoding/json wording, never Python's
BAD_PLUGIN = [
    ("/plugin/createEndpoint", b"\xff\xfe{}", "invalid UTF-8 in request body"),
    ("/plugin/createEndpoint", b'{"TenantName": "\xff"}', "invalid UTF-8 in request body"),
    (
        "/plugin/createEndpoint",
        b"{bad json",
        "invalid character 'b' looking for beginning of object key string",
    ),
    ("/plugin/createEndpoint", b'{"TenantName": "default"', "unexpected end of JSON input"),
    ("/plugin/createEndpoint", b"", "EOF"),
    (
        "/plugin/createEndpoint",
        b"[1,2]",
        "json: cannot unmarshal array into Go value of type master.CreateEndpointRequest",
    ),
    (
        "/plugin/createEndpoint",
        b'{"TenantName": 1, "NetworkName": "tbn"}',
        "json: cannot unmarshal number into Go struct field CreateEndpointRequest.TenantName of type string",
    ),
    (
        "/plugin/createEndpoint",
        b'{"TenantName": "default", "NetworkName": "tbn", "ConfigEP": {"Host": 7}}',
        "json: cannot unmarshal number into Go struct field CreateEndpointRequest.ConfigEP.Host of type string",
    ),
    (
        "/plugin/createEndpoint",
        b'{"TenantName": "default", "NetworkName": "tbn", "ConfigEP": "x"}',
        "json: cannot unmarshal string into Go struct field CreateEndpointRequest.ConfigEP of type intent.ConfigEP",
    ),
    (
        "/plugin/allocAddress",
        b'{"NetworkID": ["tbn.default"]}',
        "json: cannot unmarshal array into Go struct field AddressAllocRequest.NetworkID of type string",
    ),
    (
        "/plugin/allocAddress",
        b'{"NetworkID": "tbn.default", "PreferredIPv4Address": 5}',
        "json: cannot unmarshal number into Go struct field AddressAllocRequest.PreferredIPv4Address of type string",
    ),
    (
        "/plugin/releaseAddress",
        b'{"NetworkID": "tbn.default", "IPv4Address": true}',
        "json: cannot unmarshal bool into Go struct field AddressReleaseRequest.IPv4Address of type string",
    ),
    (
        "/plugin/deleteEndpoint",
        b'{"TenantName": {}, "NetworkName": "tbn"}',
        "json: cannot unmarshal object into Go struct field DeleteEndpointRequest.TenantName of type string",
    ),
    (
        "/plugin/updateEndpoint",
        b'{"Event": "start", "Labels": {"app": 1}}',
        "json: cannot unmarshal number into Go struct field UpdateEndpointRequest.Labels of type string",
    ),
    (
        "/plugin/updateEndpoint",
        b'{"Event": "start", "Labels": ["app"]}',
        "json: cannot unmarshal array into Go struct field UpdateEndpointRequest.Labels of type map[string]string",
    ),
    (
        "/plugin/updateEndpoint",
        b'"start"',
        "json: cannot unmarshal string into Go value of type master.UpdateEndpointRequest",
    ),
]


def test_plugin_bad_input_go_wording(nm, etcd_server):
    before = etcd_server.etcdctl("get", "--prefix", "/contiv.io/state")
    for path, body, want in BAD_PLUGIN:
        status, _, text = nm.request("POST", path, body)
        assert (status, text) == (500, want + "\n"), (path, body)
        assert not any(w in text for w in PYTHON_WORDING), (path, body, text)
    assert etcd_server.etcdctl("get", "--prefix", "/contiv.io/state") == before
    # Go matches field names case-insensitively: a lower-case body still works
    status, _, text = nm.request("POST", "/plugin/allocAddress", {"networkid": "tbn.default"})
    assert status == 200 and json.loads(text)["NetworkID"] == "tbn.default", text


@pytest.mark.parametrize(
    "line",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /version HTTP/9.9 extra\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03secret-ish",
    ],
)
def test_malformed_request_line_plain_400(nm, line):
    status, text = split_answer(raw_exchange(nm.port, [line]))
    assert (status, text) == (400, "400 Bad Request\n")
    log = nm.log_path.read_text()
    assert "GARBAGE" not in log and "secret-ish" not in log


def test_slow_headers_cut_after_timeout(nm):
    t0 = time.monotonic()
    # a slowloris: one header byte every 0.3 s never completes the head within the 1 s budget
    with socket.create_connection(("127.0.0.1", nm.port), timeout=10) as s:
        s.sendall(b"GET /version HTTP/1.1\r\n")
        closed = False
        for _ in range(30):
            time.sleep(0.3)
            try:
                s.sendall(b"X")
                if s.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                continue
            except OSError:
                closed = True
                break
    elapsed = time.monotonic() - t0
    assert closed and 0.8 < elapsed < 4, elapsed
    assert nm.request("GET", "/version")[0] == 200


def test_slow_body_cut_after_timeout(nm, etcd_server):
    t0 = time.monotonic()
    raw = raw_exchange(nm.port, [post_head("/plugin/allocAddress", 200) + b'{"NetworkID":'], timeout=10)
    elapsed = time.monotonic() - t0
    assert raw == b"" and 1.2 < elapsed < 5, (raw, elapsed)
    assert "10.77.1.1" not in etcd_server.etcdctl("get", "--prefix", "/contiv.io/state/nets")


def test_idle_keepalive_closed(nm):
    with socket.create_connection(("127.0.0.1", nm.port), timeout=15) as s:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert s.recv(1) == b""  # idle: closed by the server after the idle timeout (4 s here)
        assert 3 < time.monotonic() - t0 < 8


@pytest.mark.parametrize("name", ["x:y", "..", "a%2Fb", "", "caf%C3%A9", "-a", "a" * 65])
def test_netprofile_bad_names_refused(nm, etcd_server, name):
    body = {"tenantName": "default", "profileName": name.replace("%2F", "/").replace("%C3%A9", "é")}
    status, _, text = nm.request("POST", f"/api/v1/netprofiles/default:{name}/", body)
    want = "profileName string too long" if len(name) > 64 else "profileName string invalid format"
    assert (status, text) == (500, want + "\n")
    assert etcd_server.etcdctl("get", "--prefix", "/contiv.io/obj/netprofile", "--keys-only").strip() == ""
    # a good name is still accepted
    good = {"tenantName": "default", "profileName": "p-1.gold", "bandwidth": "10 mbps"}
    assert nm.request("POST", "/api/v1/netprofiles/default:p-1.gold/", good)[0] == 200


def test_https_silent_client_cut_after_header_timeout(netmaster_factory, tmp_path):
    m = netmaster_factory(args=["--tls-auto", "--tls-dir", str(tmp_path / "tls")], env=TIMEOUTS)
    try:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", m.port), timeout=15) as s:
            assert s.recv(1) == b""  # no TLS ClientHello: closed after the header timeout
        assert time.monotonic() - t0 < 4
        assert m.request("GET", "/version")[0] == 200  # TLS clients still served
    finally:
        assert "Traceback" not in m.log_path.read_text()


def _rpc_port(etcd_server) -> int:
    keys = etcd_server.etcdctl("get", "--prefix", "--keys-only", "/contiv.io/service/netmaster.rpc/").split()
    return int(keys[0].rsplit(":", 1)[1])


def _rpc_answer(port: int, data: bytes) -> tuple[dict | None, float]:
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        f = s.makefile("rb")
        line = f.readline()
        rest = f.read()  # the server closes the connection
    assert rest == b""
    return (json.loads(line) if line else None), time.monotonic() - t0


def test_rpc_port_bounded_and_go_worded(netmaster_factory, etcd_server):
    m = netmaster_factory(env=TIMEOUTS)
    port = _rpc_port(etcd_server)
    for data, err in [
        (b"nonsense", "invalid character 'n' looking for beginning of value"),
        (b"\xff\xfe", "invalid UTF-8 in message"),
        (b"[" * 5000, "exceeded max depth"),
    ]:
        answer, _ = _rpc_answer(port, data)
        assert answer == {"id": None, "result": None, "error": err}
    # HostPort of the wrong type: the method's own error, not Python's int() message
    answer, _ = _rpc_answer(
        port,
        b'{"method": "OfnetMaster.RegisterNode", "params": [{"HostAddr": "h", "HostPort": "x"}], "id": 1}',
    )
    assert answer == {"id": 1, "result": None, "error": "invalid OfnetNode"}
    # a message started and never finished: cut after the body timeout (1.5 s here)
    answer, took = _rpc_answer(port, b'{"method": "OfnetMaster.DummyRpc", ')
    assert answer is None and 1.2 < took < 5
    assert m.request("GET", "/version")[0] == 200
    assert "Traceback" not in m.log_path.read_text()


def test_rpc_client_that_never_reads_its_answers_is_cut(netmaster_factory, etcd_server):
    """Requests pipelined without reading the answers: once the answers fill the socket buffers the
    server waits at most the body timeout (1.5 s here) for the client to read, then drops it."""
    m = netmaster_factory(env=TIMEOUTS)
    port = _rpc_port(etcd_server)
    msg = b'{"method": "OfnetMaster.DummyRpc", "params": [], "id": 1}\n' * 1000
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(0.5)
        sent = 0
        with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
            for _ in range(2000):  # at most about 100 MB; the server stops reading long before
                s.sendall(msg)
                sent += 1
        assert sent < 2000, "the server kept reading although its answers were not read"
        wait_for_log = time.monotonic() + 10
        while "answers not read within" not in m.log_path.read_text():
            assert time.monotonic() < wait_for_log, m.log_path.read_text()[-2000:]
            time.sleep(0.1)
    assert m.request("GET", "/version")[0] == 200
    answer, _ = _rpc_answer(port, b"nonsense")  # the port still serves other clients
    assert answer is not None and "invalid character" in answer["error"]
    assert "Traceback" not in m.log_path.read_text()
