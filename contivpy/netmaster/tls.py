"""netmaster's HTTPS: server context, ``--tls-auto`` self-signed pair, certificate pin for the proxy.

- ``server_context(cert, key)``: TLS >= 1.2 server context for every REST listener.
- ``ensure_self_signed(dir, names)``: ``--tls-auto``. On first start writes ``netmaster.crt`` and
  ``netmaster.key`` (key mode 0600, certificate 0644) into ``dir`` (ECDSA P-256, SANs = the given IPs/names, 5 years); later
  starts reuse the files as they are. Uses the ``cryptography`` package, imported only here.
- ``fingerprint(cert_file)``: SHA-256 of the leaf certificate (DER). Each netmaster publishes it under
  ``/contiv.io/auth/tls/<control ip:port>``; the follower proxy and netplugin pin the leader's
  certificate to it, so self-signed certificates are verified without a CA (etcd is the trust root).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path

CERT_NAME, KEY_NAME = "netmaster.crt", "netmaster.key"


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def fingerprint(cert_file: str) -> str:
    pem = Path(cert_file).read_text()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[start:end])).hexdigest()


def ensure_self_signed(directory: str, names: list[str]) -> tuple[str, str]:
    """Return (cert, key) paths in ``directory``, generating the pair if either file is missing."""
    d = Path(directory)
    cert, key = d / CERT_NAME, d / KEY_NAME
    if cert.exists() and key.exists():
        return str(cert), str(key)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    pk = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contiv netmaster")])
    now = datetime.datetime.now(datetime.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(pk.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=5 * 365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(pk, hashes.SHA256())
    )
    key_pem = pk.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for path, data, mode in (
        (key, key_pem, 0o600),
        (cert, c.public_bytes(serialization.Encoding.PEM), 0o644),
    ):
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return str(cert), str(key)


__all__ = ["server_context", "fingerprint", "ensure_self_signed"]
