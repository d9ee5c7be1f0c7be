"""Password hashes and login tokens of contivpy.netmaster.auth_store (pure functions, no store)."""

from __future__ import annotations

from contivpy.netmaster.auth_store import hash_password, make_token, read_token, verify_password


def test_password_hash_is_salted_scrypt_and_verifies():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a.startswith("scrypt$16384$8$1$") and a != b  # a fresh salt each time
    assert "correct horse" not in a
    assert verify_password(a, "correct horse") and verify_password(b, "correct horse")
    assert not verify_password(a, "correct hors")
    for broken in ("", "plain", "scrypt$x$8$1$AAAA$AAAA", "md5$1$2$3$4$5"):
        assert not verify_password(broken, "correct horse")


def test_token_signature_expiry_and_generation():
    secret = b"k" * 32
    tok = make_token(secret, "ops1", "gen1", 60)
    assert read_token(secret, tok) == ("ops1", "gen1")
    assert read_token(b"other" * 8, tok) is None  # another cluster's secret
    payload, sig = tok.split(".")
    assert read_token(secret, payload + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")) is None
    forged = make_token(b"x" * 32, "admin", "gen1", 60).split(".")[0] + "." + sig
    assert read_token(secret, forged) is None  # payload swapped under a valid signature
    assert read_token(secret, make_token(secret, "ops1", "gen1", -1)) is None  # expired
    for junk in ("", ".", "a.b", "\u00e9.\u00e9", "x" * 100):
        assert read_token(secret, junk) is None
