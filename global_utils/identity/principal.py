"""Who is calling: token extraction from metadata, the verifier interface, the caller context."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from global_errors import MessageKey, Unauthenticated

AUTHORIZATION_HEADER = "authorization"
# goTemp passed the token in a "token" metadata entry; still accepted.
LEGACY_TOKEN_HEADER = "token"
BEARER_PREFIX = "bearer "


class Role(StrEnum):
    """Stored with the user (appuser.role) and carried in the token."""

    ADMIN = "admin"
    MEMBER = "member"

    @classmethod
    def parse(cls, value: object) -> Role:
        """value as a role; anything else (a token from before roles) is the least privilege."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.MEMBER


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the token describes them."""

    user_id: str
    company: str = ""
    active: bool = True
    # Least privilege unless the token says otherwise.
    role: Role = Role.MEMBER
    # When the token was issued (its iat, seconds since the epoch; 0: not known): a token
    # issued before its user's revocation is refused (global_utils.identity.revocations).
    # Not part of who the caller is: two tokens of one user describe the same principal.
    issued_at: float = field(default=0.0, compare=False)


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The token's principal; raises Unauthenticated (or Unavailable) otherwise."""
        ...


_current_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being handled (set by the auth interceptor)."""
    principal = _current_principal.get()
    if principal is None:
        raise Unauthenticated(MessageKey.TOKEN_MISSING)
    return principal


def bind_principal(principal: Principal | None) -> Token[Principal | None]:
    """Sets the caller for the current context; returns the token to reset it with."""
    return _current_principal.set(principal)


def reset_principal(token: Token[Principal | None]) -> None:
    _current_principal.reset(token)


def token_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The JWT from 'authorization: Bearer <jwt>' or goTemp's 'token: <jwt>'."""
    legacy: str | None = None
    for key, value in metadata:
        if isinstance(value, bytes):
            continue
        if key == AUTHORIZATION_HEADER and value[: len(BEARER_PREFIX)].lower() == BEARER_PREFIX:
            return value[len(BEARER_PREFIX) :].strip() or None
        if key == LEGACY_TOKEN_HEADER:
            legacy = value.strip() or None
    return legacy


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying token, for clients."""
    return ((AUTHORIZATION_HEADER, f"Bearer {token}"),)
