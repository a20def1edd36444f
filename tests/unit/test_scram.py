"""The SCRAM-SHA-256 verifier the provisioner sends instead of a role's password, checked
against the example exchange of RFC 7677 (section 3): the server's side of it needs only the
verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac

from provision.scram import scram_sha256_verifier

# RFC 7677's example: user "user", password "pencil".
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
AUTH_MESSAGE = (
    f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={NONCE}"
).encode()
CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def _keys(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    scheme, _, rest = verifier.partition("$")
    assert scheme == "SCRAM-SHA-256"
    head, _, keys = rest.partition("$")
    iterations, _, salt = head.partition(":")
    stored, _, server = keys.partition(":")
    decode = base64.b64decode
    return int(iterations), decode(salt), decode(stored), decode(server)


def test_the_verifier_accepts_the_rfc_clients_proof_and_signs_as_the_rfc_server() -> None:
    verifier = scram_sha256_verifier("pencil", salt=SALT)
    assert verifier is not None
    iterations, salt, stored_key, server_key = _keys(verifier)
    assert (iterations, salt) == (4096, SALT)
    # what PostgreSQL does with a client's proof: recover ClientKey, hash it, compare
    client_signature = hmac.digest(stored_key, AUTH_MESSAGE, "sha256")
    client_key = bytes(a ^ b for a, b in zip(CLIENT_PROOF, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    assert hmac.digest(server_key, AUTH_MESSAGE, "sha256") == SERVER_SIGNATURE


def test_each_verifier_gets_a_fresh_salt() -> None:
    first, second = scram_sha256_verifier("pencil"), scram_sha256_verifier("pencil")
    assert first is not None and second is not None and first != second
    assert len(_keys(first)[1]) == 16


def test_a_password_the_server_would_normalize_gets_no_verifier() -> None:
    assert scram_sha256_verifier("pässword") is None
    assert scram_sha256_verifier("tab\there") is None
