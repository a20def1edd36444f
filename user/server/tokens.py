"""JWT issue and verification (HS256, issuer goTemp.usersrv, 24 h; the claims carry the
user's role)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import jwt

from global_errors import MessageKey, Unauthenticated
from global_utils.auth import Principal
from global_utils.authz import Role
from global_utils.timeutil import now
from user.server.models import User

ISSUER = "goTemp.usersrv"
ALGORITHM = "HS256"
LIFETIME = timedelta(hours=24)


class TokenCodec:
    """Signs tokens for users and verifies them; also the user service's TokenVerifier."""

    def __init__(self, key: str, lifetime: timedelta = LIFETIME) -> None:
        self._key = key
        self._lifetime = lifetime

    def issue(self, user: User) -> str:
        issued = now()
        claims = {
            "iss": ISSUER,
            "jti": uuid.uuid4().hex,  # every token distinct, even two in the same second
            "sub": str(user.id),
            "uid": str(user.id),
            "company": user.company,
            "active": user.active,
            "role": user.role.value,
            "iat": issued,
            "exp": issued + self._lifetime,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(MessageKey.TOKEN_INVALID) from exc
        return Principal(
            user_id=str(claims["sub"]),
            company=str(claims.get("company", "")),
            active=bool(claims.get("active", True)),
            role=Role.parse(claims.get("role")),
        )

    async def verify(self, token: str) -> Principal:
        return self.decode(token)
