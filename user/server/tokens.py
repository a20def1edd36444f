"""Access tokens: EdDSA (Ed25519) JWTs with a key id, issuer goTemp.usersrv, 15 minutes by
default; the claims carry the user's id, company, active flag and role. Refresh tokens are
opaque random strings, stored only as their SHA-256 (user.server.repository)."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from global_errors import MessageKey, Unauthenticated
from global_utils.identity import jws
from global_utils.identity.principal import Principal
from global_utils.identity.token_keys import (
    ISSUER,
    PublicKey,
    UnknownKeyId,
    decode_access_token,
)
from global_utils.runtime.timeutil import now
from user.server.models import User
from user.server.signing_keys import SigningKey

ACCESS_LIFETIME = timedelta(minutes=15)
REFRESH_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class TokenCodec:
    """Signs access tokens with the first key and verifies them with any (key rotation: a new
    key is published before it signs, an old one stays until its tokens have expired)."""

    def __init__(self, keys: list[SigningKey], lifetime: timedelta = ACCESS_LIFETIME) -> None:
        if not keys:
            raise ValueError("at least one signing key")
        self._signing = keys[0]
        self._public = {k.kid: k.public for k in keys}
        self._lifetime = lifetime

    @property
    def public_keys(self) -> list[PublicKey]:
        return list(self._public.values())

    def issue(self, user: User) -> IssuedToken:
        issued = now()
        expires = issued + self._lifetime
        claims = {
            "iss": ISSUER,
            "jti": uuid.uuid4().hex,  # every token distinct, even two in the same second
            "sub": str(user.id),
            "uid": str(user.id),
            "company": user.company,
            "active": user.active,
            "role": user.role.value,
            # to the microsecond (a NumericDate may have a fraction): a revocation refuses
            # the tokens issued before it, and only those, even within one second
            "iat": issued.timestamp(),
            "exp": math.floor(expires.timestamp()),
        }
        return IssuedToken(jws.sign(claims, self._signing.private, self._signing.kid), expires)

    def decode(self, token: str) -> Principal:
        """The token's principal; Unauthenticated for a bad one (an unknown kid included)."""
        try:
            return decode_access_token(token, self._public)
        except UnknownKeyId as exc:
            raise Unauthenticated(MessageKey.TOKEN_INVALID) from exc


def new_refresh_token() -> str:
    """256 random bits, URL-safe: nothing in it but its own unguessability."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    """What is stored of a refresh token (a fast hash suffices: the token is random, not a
    password)."""
    return hashlib.sha256(token.encode()).digest()
