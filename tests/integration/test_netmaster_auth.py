"""Secure access (issue 7): netmaster HTTPS, login, users and roles, netctl, on real netmaster + etcd.

netctl runs in-process (``run_inprocess``) with a temporary HOME (its ~/.netctl/config.json), or as a
subprocess where an environment variable must reach OpenSSL (SSL_CERT_FILE). Every test starts its own
netmaster(s) through ``netmaster_factory``, which wipes /contiv.io (users included) before and after.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contivpy.netmaster.tls import fingerprint
from tests.support.netctl_fakeserver import run_inprocess

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PW = "admin-secret-1"


def netctl(url: str, home: Path, *argv: str, insecure: bool = True) -> tuple[int, str, str]:
    flags = ["--netmaster", url] + (["--insecure"] if insecure else [])
    return run_inprocess([*flags, *argv], env={"HOME": str(home), "NETMASTER": None, "INSECURE": None})


def ok(url: str, home: Path, *argv: str) -> str:
    code, out, err = netctl(url, home, *argv)
    assert code == 0, f"netctl {' '.join(argv)} -> {code}: {out}{err}"
    return out


def login(url: str, home: Path, user: str, pw: str) -> None:
    """netctl login, retried while the fresh netmaster is still taking the lead."""
    deadline = time.monotonic() + 20
    while True:
        code, out, err = netctl(url, home, "login", "-u", user, "-p", pw)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (code, out) == (0, "Login succeeded.\n"), (code, out, err)


@pytest.fixture
def secure_nm(netmaster_factory, tmp_path):
    """A netmaster with --tls-auto and --auth, user admin seeded from a password file."""
    pw = tmp_path / "admin-pw"
    pw.write_text(ADMIN_PW + "\n")
    args = ["--tls-auto", "--tls-dir", str(tmp_path / "tls"), "--auth", "--auth-admin-password-file", str(pw)]
    return netmaster_factory(args)


def test_https_self_signed_insecure_ca_file_and_reuse(netmaster_factory, etcd_server, tmp_path):
    tls_dir = tmp_path / "tls"
    nm = netmaster_factory(["--tls-auto", "--tls-dir", str(tls_dir)])
    assert nm.url.startswith("https://")
    cert = tls_dir / "netmaster.crt"
    assert stat.S_IMODE((tls_dir / "netmaster.key").stat().st_mode) == 0o600
    # --insecure: the self-signed certificate is accepted; auth is off, so no login is needed
    assert ok(nm.url, tmp_path, "tenant", "ls", "-q") == "default\n"
    # verified (no --insecure): refused without the CA, accepted with it (SSL_CERT_FILE, as documented)
    code, _, err = netctl(nm.url, tmp_path, "tenant", "ls", "-q", insecure=False)
    assert code == 2 and "x509: self-signed certificate" in err, err
    env = dict(os.environ, HOME=str(tmp_path), SSL_CERT_FILE=str(cert), PYTHONPATH=str(ROOT))
    env.pop("INSECURE", None)
    p = subprocess.run(
        [sys.executable, "-m", "contivpy.netctl", "--netmaster", nm.url, "tenant", "ls", "-q"],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (p.returncode, p.stdout) == (0, "default\n"), p.stderr
    # plain http to the https port gets nothing useful
    code, _, _ = netctl(nm.url.replace("https://", "http://"), tmp_path, "tenant", "ls")
    assert code != 0
    # the certificate's pin is published for the follower proxy and netplugin
    pin = etcd_server.etcdctl("get", "--print-value-only", f"/contiv.io/auth/tls/127.0.0.1:{nm.port}")
    assert pin.strip() == fingerprint(str(cert))
    # --tls-auto reuses the pair on the next start
    before = cert.read_bytes(), (tls_dir / "netmaster.key").read_bytes()
    nm.stop()
    nm2 = netmaster_factory(["--tls-auto", "--tls-dir", str(tls_dir)])
    assert (cert.read_bytes(), (tls_dir / "netmaster.key").read_bytes()) == before
    assert ok(nm2.url, tmp_path, "tenant", "ls", "-q") == "default\n"


def test_auth_disabled_is_unchanged(netmaster, tmp_path):
    status, _, text = netmaster.request("GET", "/api/v1/tenants/")
    assert status == 200 and '"tenantName":"default"' in text
    # no login route, and a token is neither needed nor checked
    status, _, _ = netmaster.request("POST", "/api/v1/auth_proxy/login/", {"username": "a", "password": "b"})
    assert status == 404
    status, _, _ = netmaster.request("GET", "/api/v1/networks/", headers={"x-auth-token": "garbage"})
    assert status == 200
    assert ok(netmaster.url, tmp_path, "tenant", "create", "ad-t") == "Creating tenant: ad-t\n"


NM = [
    sys.executable,
    "-m",
    "contivpy.netmaster",
    "--mode",
    "test",
    "--netmode",
    "vlan",
    "--fwdmode",
    "bridge",
]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--auth"], "--auth requires TLS"),
        (["--tls-cert-file", "/etc/hostname"], "must be given together"),
        (
            ["--tls-cert-file", "/nonexistent.crt", "--tls-key-file", "/nonexistent.key"],
            "cannot read TLS file",
        ),
        (
            ["--tls-auto", "--auth", "--auth-admin-password-file", "/nonexistent"],
            "cannot read admin password",
        ),
        (["--tls-auto", "--auth-token-ttl", "0"], "invalid --auth-token-ttl"),
    ],
)
def test_tls_and_auth_flag_errors(flags, message, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CONTIV_NETMASTER_TLS_DIR=str(tmp_path / "tls"))
    p = subprocess.run(
        [*NM, "--listen-url", "127.0.0.1:1", *flags],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 22 and message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_token_is_sent_only_over_https(netmaster, tmp_path):
    conf = tmp_path / ".netctl"
    conf.mkdir()
    (conf / "config.json").write_text('{"token": "secret-token"}')
    code, out, err = netctl(netmaster.url, tmp_path, "tenant", "ls")
    assert code == 3 and out == "" and "requires a https auth_proxy URL" in err
    code, out, _ = netctl(netmaster.url, tmp_path, "login", "-u", "admin", "-p", "x")
    assert code == 3 and "login requires a https auth_proxy URL" in out


def test_login_roles_and_tenant_grants(secure_nm, etcd_server, tmp_path):
    url = secure_nm.url
    admin, ops = tmp_path / "admin-home", tmp_path / "ops-home"
    admin.mkdir()
    ops.mkdir()
    # every request without a valid token: 401 (except login and /version)
    for path in ("/api/v1/tenants/", "/info", "/plugin/allocAddress"):
        status, _, text = secure_nm.request("GET" if "plugin" not in path else "POST", path, {})
        assert status == 401 and "netctl login" in text, (path, status, text)
    for forged in ("forged.token", ".", "\xe9\xe9.\xe9", "eyJ1IjoiYWRtaW4ifQ.AAAA", "x" * 5000):
        for method, path in (("GET", "/api/v1/tenants/"), ("POST", "/plugin/allocAddress")):
            status, _, text = secure_nm.request(method, path, {}, headers={"x-auth-token": forged})
            assert status == 401 and "netctl login" in text, (forged, path, status, text)
    assert secure_nm.request("GET", "/version")[0] == 200
    code, _, err = netctl(url, admin, "tenant", "ls")
    assert code == 3 and "Unauthorized: log in first" in err
    # wrong password / unknown user
    for user, pw in (("admin", "wrong-password"), ("nobody", ADMIN_PW)):
        code, out, _ = netctl(url, admin, "login", "-u", user, "-p", pw)
        assert (code, out) == (3, "Login failed: Bad username or password.\n")
    assert not (admin / ".netctl" / "config.json").exists()

    login(url, admin, "admin", ADMIN_PW)
    cfg = admin / ".netctl" / "config.json"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600 and json.loads(cfg.read_text())["token"]
    # admin: everything
    for t in ("au-t1", "au-t2"):
        ok(url, admin, "tenant", "create", t)
    ok(url, admin, "network", "create", "-t", "au-t1", "-s", "10.71.1.0/24", "n1")
    out = ok(url, admin, "user", "create", "ops1", "--role", "ops", "-t", "au-t1", "-p", "ops-password-1")
    assert out == "Creating user ops1\n"
    out = ok(url, admin, "user", "ls")
    assert [line.split() for line in out.splitlines()] == [
        ["User", "Role", "Tenants"],
        ["----", "----", "-------"],
        ["admin", "admin"],
        ["ops1", "ops", "au-t1"],
    ]
    code, _, err = netctl(url, admin, "user", "create", "ops1", "-p", "ops-password-1")
    assert code == 3 and "user ops1 already exists" in err
    # bad input to the auth routes: a clear answer, never a Python error
    hdr = {"x-auth-token": _token(admin)}
    for path, body, want in (
        ("/api/v1/auth_proxy/login/", "[" * 5000, "invalid JSON"),
        (
            "/api/v1/auth_proxy/login/",
            '{"username": 1, "password": "x"}',
            "username and password are required",
        ),
        ("/api/v1/auth_proxy/local_users/", '{"username": "u1", "password": "\\ud800xxxxxxxx"}', "UTF-8"),
        (
            "/api/v1/auth_proxy/local_users/",
            '{"username": "a/b", "password": "xxxxxxxxx"}',
            "invalid user name",
        ),
        ("/api/v1/auth_proxy/local_users/", '{"username": "u2", "password": "short"}', "8 to 1024"),
        (
            "/api/v1/auth_proxy/local_users/",
            '{"username": "u3", "password": "xxxxxxxxx", "role": "root"}',
            "role",
        ),
    ):
        status, _, text = secure_nm.request("POST", path, body, headers=hdr)
        assert status in (400, 500) and want in text and "Traceback" not in text, (body, status, text)
    # passwords are stored as salted scrypt hashes, never in clear
    raw = etcd_server.etcdctl("get", "--print-value-only", "/contiv.io/auth/users/ops1")
    rec = json.loads(raw)
    assert rec["password"].startswith("scrypt$") and "ops-password-1" not in raw
    assert "admin-secret" not in etcd_server.etcdctl("get", "--prefix", "/contiv.io/auth/")

    login(url, ops, "ops1", "ops-password-1")
    # ops: reads everything
    assert ok(url, ops, "tenant", "ls", "-q") == "au-t1\nau-t2\ndefault\n"
    assert "n1" in ok(url, ops, "network", "ls", "-t", "au-t1")
    ok(url, ops, "global", "info")
    # ops writes only in granted tenants
    ok(url, ops, "network", "create", "-t", "au-t1", "-s", "10.71.2.0/24", "n2")
    for argv in (
        ["network", "create", "-t", "au-t2", "-s", "10.71.3.0/24", "n3"],
        ["tenant", "create", "au-t3"],
        ["tenant", "rm", "au-t1"],
        ["global", "set", "--fwd-mode", "routing"],
        ["user", "ls"],
        ["user", "create", "evil", "--role", "admin", "-p", "evil-password"],
    ):
        code, _, err = netctl(url, ops, *argv)
        assert code == 3 and "Access denied!" in err, (argv, code, err)
    assert "n3" not in ok(url, admin, "network", "ls", "-a")
    status, _, _ = secure_nm.request(
        "POST", "/plugin/allocAddress", {"NetworkID": "n1.au-t1"}, headers={"x-auth-token": _token(ops)}
    )
    assert status == 403
    # grant / revoke
    ok(url, admin, "user", "grant", "ops1", "au-t2")
    ok(url, ops, "network", "create", "-t", "au-t2", "-s", "10.71.3.0/24", "n3")
    ok(url, admin, "user", "revoke", "ops1", "au-t2")
    code, _, err = netctl(url, ops, "network", "rm", "-t", "au-t2", "n3")
    assert code == 3 and "Access denied!" in err
    # a password change invalidates the user's tokens at once; the new password works
    ok(url, admin, "user", "passwd", "ops1", "-p", "ops-password-2")
    code, _, err = netctl(url, ops, "tenant", "ls")
    assert code == 3 and "Unauthorized" in err
    login(url, ops, "ops1", "ops-password-2")
    # the last admin can be neither demoted nor deleted; a deleted user's token stops working
    code, _, err = netctl(url, admin, "user", "rm", "admin")
    assert code == 3 and "last admin" in err
    code, _, err = netctl(url, admin, "user", "role", "admin", "ops")
    assert code == 3 and "last admin" in err
    assert ok(url, admin, "user", "rm", "ops1") == "Deleting user ops1\n"
    code, _, err = netctl(url, ops, "tenant", "ls")
    assert code == 3 and "Unauthorized" in err


def _token(home: Path) -> str:
    return json.loads((home / ".netctl" / "config.json").read_text())["token"]


def test_follower_proxies_to_https_leader_and_accepts_its_tokens(netmaster_factory, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(ADMIN_PW)

    def start(name: str):
        args = [
            "--tls-auto",
            "--tls-dir",
            str(tmp_path / name),
            "--auth",
            "--auth-admin-password-file",
            str(pw),
        ]
        return netmaster_factory(args)

    leader = start("a")
    login(leader.url, tmp_path, "admin", ADMIN_PW)
    ok(leader.url, tmp_path, "tenant", "create", "fo-t1")
    follower = start("b")
    # the token issued by the leader is valid on the follower, which forwards the write over https
    deadline = time.monotonic() + 20
    while True:
        code, out, err = netctl(follower.url, tmp_path, "tenant", "create", "fo-t2")
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (code, out) == (0, "Creating tenant: fo-t2\n"), err
    assert ok(leader.url, tmp_path, "tenant", "ls", "-q") == "default\nfo-t1\nfo-t2\n"
    # login on the follower works too (proxied to the leader)
    home2 = tmp_path / "h2"
    home2.mkdir()
    login(follower.url, home2, "admin", ADMIN_PW)


async def test_netplugin_client_reaches_https_auth_netmaster(etcd_kv, secure_nm, tmp_path):
    """netplugin's /plugin/* path with TLS + auth: https with the published pin and the agent token."""
    from contivpy.netplugin.netmaster_client import NetmasterClient

    login(secure_nm.url, tmp_path, "admin", ADMIN_PW)
    ok(secure_nm.url, tmp_path, "network", "create", "-s", "10.72.1.0/24", "np-n1")
    client = NetmasterClient(etcd_kv, retries=2, retry_delay=0.2)
    try:
        got = await client.post(
            "/plugin/allocAddress",
            {"NetworkID": "np-n1.default", "AddressPool": "", "PreferredIPv4Address": ""},
        )
    finally:
        await client.close()
    assert got == {"NetworkID": "np-n1.default", "IPv4Address": "10.72.1.1/24"}


async def test_two_admins_removing_each_other_leave_one(etcd_kv):
    """The last-admin rule holds under concurrency: the txn guards every other admin's record."""
    import asyncio

    from contivpy.netmaster.auth_store import AuthError, AuthStore

    store = AuthStore(etcd_kv)
    await store.start()
    for round_ in range(3):
        a, b = f"adm-a{round_}", f"adm-b{round_}"
        for name in (a, b):
            await store.create(name, "admin-password", "admin", [])
        if round_:  # the survivor of the previous round leaves first, so a and b are the only admins
            for u in await store.list():
                if u.username not in (a, b):
                    await store.delete(u.username)
        ops = (
            (store.delete(a), store.delete(b))
            if round_ != 1
            else (
                store.update(a, {"role": "ops"}),
                store.update(b, {"role": "ops"}),
            )
        )
        results = await asyncio.gather(*ops, return_exceptions=True)
        refused = [r for r in results if isinstance(r, AuthError)]
        assert len(refused) == 1 and "last admin" in str(refused[0]), results
        assert len([u for u in await store.list() if u.role == "admin"]) == 1


def test_verified_token_survives_a_short_etcd_outage(secure_nm, etcd_server, tmp_path):
    """While etcd is down, a token checked shortly before still passes the auth layer (the request then
    succeeds or fails on its own merits); an unknown token is not let through."""
    login(secure_nm.url, tmp_path, "admin", ADMIN_PW)
    hdr = {"x-auth-token": _token(tmp_path)}
    assert secure_nm.request("GET", "/api/v1/tenants/", headers=hdr)[0] == 200
    etcd_server.stop()
    try:
        status, _, text = secure_nm.request("GET", "/api/v1/tenants/", headers=hdr)
        assert "auth state" not in text and status != 401, (status, text)
        forged = {"x-auth-token": "eyJ1IjoiYWRtaW4ifQ.AAAA"}
        assert secure_nm.request("GET", "/api/v1/tenants/", headers=forged)[0] == 401
        body = {"username": "admin", "password": ADMIN_PW}
        status, _, text = secure_nm.request("POST", "/api/v1/auth_proxy/login/", body)
        assert status == 503 and "please retry" in text, (status, text)
    finally:
        etcd_server.start()


def test_failed_logins_are_throttled_per_user_then_released(netmaster_factory, tmp_path):
    """3 failures in 2 s (CONTIVPY_LOGIN_THROTTLE) lock that user name, even with the right password;
    other names are not locked; the lock ends with the window; a success clears the count."""
    pw = tmp_path / "admin-pw"
    pw.write_text(ADMIN_PW + "\n")
    args = ["--tls-auto", "--tls-dir", str(tmp_path / "tls"), "--auth", "--auth-admin-password-file", str(pw)]
    nm = netmaster_factory(args, env={"CONTIVPY_LOGIN_THROTTLE": "3,2"})

    def attempt(user: str, password: str) -> tuple[int, str]:
        status, _, text = nm.request(
            "POST", "/api/v1/auth_proxy/login/", {"username": user, "password": password}
        )
        return status, text

    wait_ready = time.monotonic() + 15  # the auth store reads its secret in the background
    while attempt("admin", ADMIN_PW)[0] == 503 and time.monotonic() < wait_ready:
        time.sleep(0.2)
    assert attempt("admin", ADMIN_PW)[0] == 200
    for _ in range(3):
        assert attempt("admin", "wrong-password")[0] == 401
    status, text = attempt("admin", ADMIN_PW)
    assert status == 429 and "too many failed logins, retry in" in text, (status, text)
    code, out, _ = netctl(nm.url, tmp_path, "login", "-u", "admin", "-p", ADMIN_PW)
    assert code == 3 and "Login failed: unexpected response code (429)" in out
    assert attempt("nobody", "x")[0] == 401  # another name from the same address is still checked
    time.sleep(2.1)
    assert attempt("admin", ADMIN_PW)[0] == 200
    for _ in range(2):  # a success cleared the count: two more failures do not lock
        assert attempt("admin", "wrong-password")[0] == 401
    assert attempt("admin", ADMIN_PW)[0] == 200
    assert "Traceback" not in nm.log_path.read_text()
