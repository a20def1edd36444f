"""PostgreSQL's SCRAM-SHA-256 password verifier, made here so that CREATE/ALTER ROLE carries the
verifier and never the password: a server that logs statements (log_statement = ddl or all, with
their parameters) logs only what pg_authid stores anyway.

The verifier (RFC 5802 with SHA-256 as RFC 7677 uses it; PostgreSQL's stored form):
`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64, where
SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations), ClientKey =
HMAC(SaltedPassword, "Client Key"), StoredKey = SHA-256(ClientKey) and ServerKey =
HMAC(SaltedPassword, "Server Key"). PostgreSQL normalizes a password with SASLprep first, which
leaves an ASCII one as it is; for any other password the normalization is left to the server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# PostgreSQL's default (its scram_iterations setting).
ITERATIONS = 4096
SALT_BYTES = 16


def scram_sha256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str | None:
    """The verifier PostgreSQL would store for password; None for a password that is not
    printable ASCII (SASLprep could change it: the server has to see it)."""
    if not (password.isascii() and password.isprintable()):
        return None
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
