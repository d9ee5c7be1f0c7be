"""etcd over TLS: a real etcd with ``--cert-file/--key-file/--client-cert-auth/--trusted-ca-file``.

The store verifies the server against the CA file and presents the client certificate; without
a client certificate, with a certificate from another CA, or trusting the wrong CA it gets a clear
StoreError. A real netmaster started with ``--etcd-tls-*`` serves writes into that etcd; both
daemons' flags and environment variables are parsed and checked.
"""

from __future__ import annotations

import asyncio

import pytest

from contivpy.common.errors import StoreError
from contivpy.common.kv import Compare, Put, open_store
from contivpy.netmaster import config as nm_config
from contivpy.netplugin import config as np_config
from tests.fixtures.netmaster import NetmasterProc

pytestmark = pytest.mark.etcd


async def test_tls_store_roundtrip(etcd_tls):
    pki = etcd_tls.pki
    kv = open_store(
        etcd_tls.url,
        ca_file=str(pki["ca"]),
        cert_file=str(pki["client_cert"]),
        key_file=str(pki["client_key"]),
    )
    try:
        assert kv.tls
        await kv.put("/ttls/a", "1")
        assert (await kv.get("/ttls/a")).value == "1"
        _, rev = await kv.get_prefix("/ttls/")
        it = kv.watch_prefix("/ttls/", rev + 1)
        res = await kv.txn([Compare("/ttls/b", "version", "==", 0)], [Put("/ttls/b", "2")])
        assert res.succeeded
        async with asyncio.timeout(10):
            ev = await anext(it)
        assert (ev.type, ev.key, ev.value) == ("put", "/ttls/b", "2")
        lease = await kv.grant_lease(5)
        await kv.keepalive(lease)
        await kv.revoke_lease(lease)
        assert etcd_tls.etcdctl("get", "/ttls/b", "--print-value-only").strip() == "2"
        await kv.delete_prefix("/ttls/")
    finally:
        await kv.close()


@pytest.mark.parametrize("case", ["no-client-cert", "stranger-cert", "wrong-ca", "plaintext"])
async def test_tls_refused_clearly(etcd_tls, case):
    pki = etcd_tls.pki
    url, kw = etcd_tls.url, {"ca_file": str(pki["ca"])}
    if case == "stranger-cert":
        kw.update(cert_file=str(pki["stranger_cert"]), key_file=str(pki["stranger_key"]))
    elif case == "wrong-ca":
        kw = {
            "ca_file": str(pki["other_ca"]),
            "cert_file": str(pki["client_cert"]),
            "key_file": str(pki["client_key"]),
        }
    elif case == "plaintext":
        url, kw = url.replace("https://", "http://"), {}
    from contivpy.common.kv.etcd import EtcdKV

    host, port = etcd_tls.host, etcd_tls.port
    kv = EtcdKV(host, port, timeout=3, tls=url.startswith("https"), **kw)
    try:
        with pytest.raises(StoreError) as exc:
            await kv.get("/ttls/x")
        assert str(exc.value).startswith("etcd get failed")
        assert "Traceback" not in str(exc.value)
    finally:
        await kv.close()


def test_netmaster_with_etcd_tls_flags(etcd_tls, tmp_path):
    pki = etcd_tls.pki
    etcd_tls.etcdctl("del", "--prefix", "/contiv.io")
    args = [
        "--etcd-tls-ca-file",
        str(pki["ca"]),
        "--etcd-tls-cert-file",
        str(pki["client_cert"]),
        "--etcd-tls-key-file",
        str(pki["client_key"]),
    ]
    nm = NetmasterProc(etcd_tls.url, args, {}, tmp_path)
    nm.start()
    try:
        nm.wait_ready()
        assert nm.info()["current-state"] == "leader"
        nm.json("POST", "/api/v1/tenants/ttls-t/", {"tenantName": "ttls-t"})
        out = etcd_tls.etcdctl("get", "/contiv.io/obj/modeldb/tenant/ttls-t", "--print-value-only")
        assert '"tenantName":"ttls-t"' in out.replace(" ", "")
    finally:
        nm.stop()
        etcd_tls.etcdctl("del", "--prefix", "/contiv.io")


def test_tls_flags_and_env_both_daemons(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "c.pem", "k.pem"))
    for p in (ca, cert, key):
        p.write_text("x")
    base = ["--mode", "docker", "--netmode", "vlan", "--fwdmode", "bridge"]
    eps = "https://127.0.0.1:1,https://127.0.0.1:2"
    flags = [
        "--etcd-tls-ca-file",
        str(ca),
        "--etcd-tls-cert-file",
        str(cert),
        "--etcd-tls-key-file",
        str(key),
    ]
    c = nm_config.build(nm_config.parse_args([*base, "--etcd-endpoints", eps, *flags]), env={})
    assert (c.etcd_url, c.etcd_ca_file, c.etcd_cert_file, c.etcd_key_file) == (
        eps,
        str(ca),
        str(cert),
        str(key),
    )
    env = {
        "CONTIV_NETMASTER_ETCD_ENDPOINTS": eps,
        "CONTIV_NETMASTER_ETCD_TLS_CA_FILE": str(ca),
        "CONTIV_NETMASTER_ETCD_TLS_CERT_FILE": str(cert),
        "CONTIV_NETMASTER_ETCD_TLS_KEY_FILE": str(key),
    }
    c = nm_config.build(nm_config.parse_args(base), env=env)
    assert (c.etcd_ca_file, c.etcd_cert_file, c.etcd_key_file) == (str(ca), str(cert), str(key))
    for bad, msg in [
        (["--etcd-endpoints", "http://127.0.0.1:1", "--etcd-tls-ca-file", str(ca)], "need https://"),
        (["--etcd-endpoints", eps, "--etcd-tls-cert-file", str(cert)], "must be given together"),
        (["--etcd-endpoints", eps, "--etcd-tls-ca-file", str(tmp_path / "nope")], "cannot read"),
        (["--etcd-endpoints", "http://127.0.0.1:1,https://127.0.0.1:2"], "mixed schemes"),
    ]:
        with pytest.raises(nm_config.ConfigError) as exc:
            nm_config.build(nm_config.parse_args([*base, *bad]), env={})
        assert msg in str(exc.value)

    npbase = ["--mode", "docker", "--netmode", "vxlan", "--fwdmode", "routing", "--host", "h1"]
    c = np_config.parse([*npbase, "--etcd-endpoints", eps, *flags], env={})
    assert c.store_url == eps
    assert c.store_tls == {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)}
    env = {
        "CONTIV_NETPLUGIN_ETCD_ENDPOINTS": eps,
        "CONTIV_NETPLUGIN_ETCD_TLS_CA_FILE": str(ca),
        "CONTIV_NETPLUGIN_ETCD_TLS_CERT_FILE": str(cert),
        "CONTIV_NETPLUGIN_ETCD_TLS_KEY_FILE": str(key),
    }
    c = np_config.parse(npbase, env=env)
    assert c.store_tls == {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)}
    with pytest.raises(np_config.ConfigError):
        np_config.parse(
            [*npbase, "--etcd-endpoints", "http://127.0.0.1:1", "--etcd-tls-ca-file", str(ca)], env={}
        )
