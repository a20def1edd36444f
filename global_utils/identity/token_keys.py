"""Access tokens as every service reads them: EdDSA (Ed25519) JWTs from the user service,
verified locally with its published public keys, looked up by key id (kid)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from global_errors import MessageKey, Unauthenticated
from global_utils.identity import jws
from global_utils.identity.jws import ALGORITHM, MalformedToken, b64, unb64
from global_utils.identity.principal import Principal, Role

logger = logging.getLogger(__name__)

ISSUER = "goTemp.usersrv"
# Claims every access token carries (RFC 7519 §4.1).
REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub")
CURVE = "Ed25519"
# Not asked again sooner than this for an unknown kid: a flood of forged kids costs one fetch.
MIN_REFETCH_SECONDS = 1.0


@dataclass(frozen=True)
class PublicKey:
    """One published verification key."""

    kid: str
    key: VerifyKey

    @classmethod
    def of(cls, key: VerifyKey) -> PublicKey:
        return cls(key_id(key), key)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """From a JWKS entry (kty OKP, crv Ed25519); ValueError for anything else."""
        if jwk.get("kty") != "OKP" or jwk.get("crv") != CURVE or "x" not in jwk:
            raise ValueError(f"not an Ed25519 public key: {dict(jwk)!r}")
        try:
            key = VerifyKey(unb64(str(jwk["x"])))
        except (CryptoError, ValueError, TypeError) as exc:  # not 32 bytes of base64url
            raise ValueError(f"not an Ed25519 public key: {dict(jwk)!r}") from exc
        return cls(str(jwk.get("kid") or key_id(key)), key)

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": CURVE,
            "alg": ALGORITHM,
            "use": "sig",
            "kid": self.kid,
            "x": b64(bytes(self.key)),
        }


def key_id(key: VerifyKey) -> str:
    """The key's RFC 7638 JWK thumbprint: the same key always has the same id, on every
    instance, with nothing to configure."""
    canonical = json.dumps(
        {"crv": CURVE, "kty": "OKP", "x": b64(bytes(key))}, separators=(",", ":"), sort_keys=True
    )
    return b64(hashlib.sha256(canonical.encode()).digest())


def jwks_document(keys: Iterable[PublicKey]) -> bytes:
    """The JSON Web Key Set served at /.well-known/jwks.json."""
    return json.dumps({"keys": [k.jwk() for k in keys]}).encode()


def keys_from_jwks(document: bytes | str) -> dict[str, PublicKey]:
    found = [PublicKey.from_jwk(entry) for entry in json.loads(document)["keys"]]
    return {k.kid: k for k in found}


class UnknownKeyId(Exception):
    """The token names a key id the verifier does not hold (yet)."""


def decode_access_token(token: str, keys: Mapping[str, PublicKey]) -> Principal:
    """The principal of a good token signed with one of keys; Unauthenticated for anything
    else (expired, tampered, another algorithm, another issuer); UnknownKeyId when its kid
    is none of keys."""
    try:
        # Only EdDSA parses: alg=none, and HS256 "signed" with a public key, never reach a key
        # (nor make the verifier fetch keys for their kid).
        parsed = jws.parse(token)
    except MalformedToken as exc:
        raise Unauthenticated(MessageKey.TOKEN_INVALID) from exc
    kid = parsed.header.get("kid")
    if not isinstance(kid, str):
        raise Unauthenticated(MessageKey.TOKEN_INVALID)
    key = keys.get(kid)
    if key is None:
        raise UnknownKeyId(kid)
    try:
        claims = jws.verified_claims(parsed, key.key)
    except MalformedToken as exc:
        raise Unauthenticated(MessageKey.TOKEN_INVALID) from exc
    if not valid_claims(claims, time.time()):
        raise Unauthenticated(MessageKey.TOKEN_INVALID)
    return Principal(
        user_id=str(claims["sub"]),
        company=str(claims.get("company", "")),
        active=bool(claims.get("active", True)),
        role=Role.parse(claims.get("role")),
        issued_at=float(claims["iat"]),
    )


def valid_claims(claims: Mapping[str, Any], moment: float) -> bool:
    """Whether a verified token's claims make it good at moment (seconds since the epoch):
    every required claim, our issuer, a string subject, numeric times (RFC 7519's NumericDate:
    a JSON number) with exp after moment and iat (whole seconds) and any nbf not after it, and
    no audience (none is expected)."""
    if any(claims.get(name) is None for name in REQUIRED_CLAIMS):
        return False
    if claims["iss"] != ISSUER or not isinstance(claims["sub"], str) or claims.get("aud"):
        return False
    expires, issued, not_before = claims["exp"], claims["iat"], claims.get("nbf", 0)
    if not all(_numeric_date(t) for t in (expires, issued, not_before)):
        return False
    return bool(expires > moment and math.floor(issued) <= moment and not_before <= moment)


def _numeric_date(value: object) -> bool:
    if isinstance(value, bool):  # a JSON true is no time
        return False
    # any int (exactly comparable with a float, however large); a finite float
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class LocalTokenVerifier:
    """TokenVerifier with the issuer's public keys: fetched at the first token, kept, and
    fetched again when a token names a key id not held (the issuer rotated its key). Once
    held, keys verify tokens whether the issuer is up or not."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Iterable[PublicKey]]],
        *,
        min_refetch_seconds: float = MIN_REFETCH_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None
        self._min_refetch = min_refetch_seconds
        self._lock = asyncio.Lock()

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    async def verify(self, token: str) -> Principal:
        try:
            return decode_access_token(token, self._keys)
        except UnknownKeyId as unknown:
            await self._refresh(str(unknown))
        try:
            return decode_access_token(token, self._keys)
        except UnknownKeyId as exc:
            raise Unauthenticated(MessageKey.TOKEN_INVALID) from exc

    async def _refresh(self, kid: str) -> None:
        async with self._lock:
            if kid in self._keys:  # fetched by a call that waited before this one
                return
            if (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at < self._min_refetch
            ):
                return
            # Unavailable propagates: no keys yet and no issuer to ask is an outage.
            fetched = {k.kid: k for k in await self._fetch()}
            self._fetched_at = time.monotonic()
            added = fetched.keys() - self._keys.keys()
            self._keys = fetched
            logger.info(
                "token keys fetched: %d held, %s new",
                len(fetched),
                ", ".join(sorted(added)) or "none",
            )
