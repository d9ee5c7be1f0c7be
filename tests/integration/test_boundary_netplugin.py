"""The listeners of a real netplugin agent (own OVS in a host netns, real etcd and netmaster; issue 7):
the Docker plugin socket reads whole bodies, refuses over-size and deeply nested ones with
``{"Err": ...}`` in Go wording (never Python's), answers malformed HTTP with a plain 400, cuts slow
clients after the (shortened) timeouts; the debug REST listens on 127.0.0.1 only unless
``--debug-listen`` says otherwise; an existing socket directory keeps its mode. The agent's log
holds no traceback afterwards."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time

import pytest

from tests.support import rawhttp

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

TIMEOUTS = "1,1.5,4"  # header, body, idle (common/httpserve.py), shortened for the test
DIR_MODE = 0o751  # an unusual mode the agent must not change
MIB = 1 << 20
CT = "application/vnd.docker.plugins.v1.2+json"
PYTHON_WORDING = (
    "Traceback",
    "can only concatenate",
    "codec can't decode",
    "object has no attribute",
    "NoneType",
    "Expecting value",
    "Expecting property name",
    "line 1 column",
    "Input should be",
    "maximum recursion",
    "internal error",
)


def listeners(h, port: int) -> list[str]:
    out = h.exec("ss", "-ltnH", f"sport = :{port}", check=False)
    return [ln.split()[3] for ln in out.splitlines() if ln.split()]


def exchange(path: str, parts: list[bytes], pause: float = 0.3, timeout: float = 10) -> bytes:
    """Raw HTTP over the unix socket: ``parts`` as separate writes; the answer until close."""
    return rawhttp.exchange(path, parts, pause, timeout)


def post(path: str, method: str, body: bytes, split: bool = False) -> tuple[int, str]:
    head = (
        f"POST /{method} HTTP/1.1\r\nHost: docker\r\nContent-Type: {CT}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    parts = [head + body[: len(body) // 2], body[len(body) // 2 :]] if split else [head + body]
    raw = exchange(path, parts)
    h, _, b = raw.partition(b"\r\n\r\n")
    return int(h.split(b" ", 2)[1]), b.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def agent():
    from tests.fixtures.docker import _wait_testbed_free
    from tests.fixtures.testbed import Testbed, wait_for

    _wait_testbed_free()
    with Testbed(1) as bed:
        h = bed.hosts[1]
        h.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(h.dir, DIR_MODE)  # the socket's directory exists already
        h.debug_on_host_ip = False  # netplugin's default debug address
        old = os.environ.get("CONTIVPY_HTTP_TIMEOUTS")
        os.environ["CONTIVPY_HTTP_TIMEOUTS"] = TIMEOUTS
        try:
            h.start_netplugin(wait=False)
        finally:
            if old is None:
                os.environ.pop("CONTIVPY_HTTP_TIMEOUTS", None)
            else:
                os.environ["CONTIVPY_HTTP_TIMEOUTS"] = old

        def ready():
            assert h.netplugin.poll() is None, h.log_tail()
            try:
                return post(h.plugin_socket, "Plugin.Activate", b"")[0] == 200 and listeners(h, 9090)
            except (OSError, IndexError, ValueError):
                return False

        wait_for(ready, 60, 0.2, "netplugin plugin socket and debug REST")
        yield bed, h
        assert h.netplugin.poll() is None, "netplugin died"
        log = (h.dir / "netplugin.log").read_text()
        assert "Traceback" not in log, log[-3000:]


def test_debug_rest_listens_on_loopback_only(agent):
    _, h = agent
    assert listeners(h, 9090) == ["127.0.0.1:9090"]
    with pytest.raises(OSError):  # not reachable on the host's address
        socket.create_connection((h.ip, 9090), timeout=2).close()
    # from inside the host it answers
    code = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:9090/inspect/driver', timeout=5).status)"
    )
    assert h.exec(sys.executable, "-c", code).strip() == "200"


def test_socket_directory_keeps_its_mode(agent):
    _, h = agent
    assert stat.S_IMODE(os.stat(h.dir).st_mode) == DIR_MODE
    assert stat.S_ISSOCK(os.stat(h.plugin_socket).st_mode)


def test_socket_body_in_two_writes(agent):
    _, h = agent
    body = json.dumps({"AddressSpace": "GlobalDefault", "Pool": "", "Options": None, "V6": False}).encode()
    st, text = post(h.plugin_socket, "IpamDriver.RequestPool", body, split=True)
    # a complete request reached the handler: its own refusal, not a JSON syntax error
    assert st == 500 and "looking for" not in text and "unexpected end" not in text, text
    assert post(h.plugin_socket, "NetworkDriver.GetCapabilities", b"{}", split=True) == (
        200,
        json.dumps({"Err": "", "Scope": "local", "ConnectivityScope": "global"}),
    )


@pytest.mark.parametrize(
    "body,err",
    [
        (b'{"NetworkID":"' + b"a" * MIB + b'"}', f"request body too large (limit {MIB} bytes)"),
        (b"[" * 5000, "exceeded max depth"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "exceeded max depth"),
        (b"\xff\xfe{}", "invalid UTF-8 in request body"),
        (b"{not json", "invalid character 'n' looking for beginning of object key string"),
        (b'{"NetworkID": "x"', "unexpected end of JSON input"),
        (b'"x"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
        (
            b'{"NetworkID": 5, "EndpointID": "e"}',
            "json: cannot unmarshal number into Go struct field CreateEndpointRequest.NetworkID of type string",
        ),
        (
            b'{"NetworkID": "n", "EndpointID": "e", "Options": [1]}',
            "json: cannot unmarshal array into Go struct field CreateEndpointRequest.Options of type "
            "map[string]interface {}",
        ),
    ],
    ids=[
        "oversize",
        "nested-open",
        "nested-objects",
        "bad-utf8",
        "syntax",
        "truncated",
        "string",
        "type",
        "opts",
    ],
)
def test_socket_bad_bodies_get_json_err(agent, body, err):
    _, h = agent
    st, text = post(h.plugin_socket, "NetworkDriver.CreateEndpoint", body)
    assert (st, json.loads(text)) == (500, {"Err": err})
    assert not any(w in text for w in PYTHON_WORDING), text


def test_socket_malformed_request_line_plain_400(agent):
    _, h = agent
    raw = exchange(h.plugin_socket, [b"GARBAGE-LINE\r\n\r\n"])
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400" and body == b"400 Bad Request\n"
    assert "GARBAGE-LINE" not in (h.dir / "netplugin.log").read_text()


def test_socket_slowloris_cut(agent):
    _, h = agent
    t0 = time.monotonic()
    raw = exchange(h.plugin_socket, [b"POST /Plugin.Activate HTTP/1.1\r\nHost: d\r\n"], timeout=10)
    assert raw == b"" and 0.8 < time.monotonic() - t0 < 4
    t0 = time.monotonic()
    head = f"POST /Plugin.Activate HTTP/1.1\r\nHost: d\r\nContent-Type: {CT}\r\nContent-Length: 50\r\n\r\n{{"
    assert exchange(h.plugin_socket, [head.encode()], timeout=10) == b""
    assert 1.2 < time.monotonic() - t0 < 5
    assert post(h.plugin_socket, "Plugin.Activate", b"")[0] == 200


def test_debug_rest_slowloris_and_bad_body(agent):
    _, h = agent
    code = r"""
import json, socket, time, urllib.request, urllib.error
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", 9090), timeout=10)
s.sendall(b"GET /inspect/driver HTTP/1.1\r\n")
cut = s.recv(100) == b""
took = time.monotonic() - t0
req = urllib.request.Request("http://127.0.0.1:9090/debug/endpoints", data=b'{"tenant": 5}', method="POST")
try:
    urllib.request.urlopen(req, timeout=5)
    err = None
except urllib.error.HTTPError as e:
    err = (e.code, e.read().decode())
print(json.dumps({"cut": cut, "took": took, "err": err}))
"""
    out = json.loads(h.exec(sys.executable, "-c", code).strip().splitlines()[-1])
    assert out["cut"] and 0.8 < out["took"] < 4, out
    assert out["err"] == [
        500,
        "json: cannot unmarshal number into Go struct field EndpointRequest.tenant of type string\n",
    ]
