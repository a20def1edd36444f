"""Token verification by the user service (ValidateToken), with a short-lived bounded cache."""

from __future__ import annotations

import time
from collections import OrderedDict

import grpc
import jwt

from global_errors import MessageKey, Unauthenticated, Unavailable
from global_utils.auth import Principal
from global_utils.client import ServiceChannels
from global_utils.registry import Registry
from global_utils.settings import RemoteAuthSettings
from user.proto import user_pb2, user_pb2_grpc


class TokenCache:
    """Principals of recently validated tokens, each kept until the earlier of a fixed
    lifetime and the token's own expiry; least recently used entries go first when full."""

    def __init__(self, max_entries: int = 10_000, lifetime_seconds: float = 60.0) -> None:
        self._max = max_entries
        self._lifetime = lifetime_seconds
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, expires = entry
        if time.monotonic() >= expires:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal) -> None:
        lifetime = min(self._lifetime, seconds_until_expiry(token))
        if lifetime <= 0 or self._max <= 0:
            return
        self._entries[token] = (principal, time.monotonic() + lifetime)
        self._entries.move_to_end(token)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def seconds_until_expiry(token: str) -> float:
    """Time left before the token's exp claim (read unverified: the user service verified it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return float(claims["exp"]) - time.time()
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return 0.0


USER_SERVICE = "user"


def user_service_verifier(
    registry: Registry, settings: RemoteAuthSettings
) -> tuple[RemoteTokenVerifier, ServiceChannels]:
    """A verifier asking the user service found in registry, and the channels it uses (a
    lifecycle component of the host: it closes them on stop)."""
    users = ServiceChannels(registry, USER_SERVICE, resolve_timeout=settings.auth_timeout_seconds)
    verifier = RemoteTokenVerifier(
        users,
        TokenCache(settings.token_cache_size, settings.token_cache_seconds),
        timeout_seconds=settings.auth_timeout_seconds,
    )
    return verifier, users


class RemoteTokenVerifier:
    """TokenVerifier for services other than user: asks user.UserSrv/ValidateToken."""

    def __init__(
        self, users: ServiceChannels, cache: TokenCache, *, timeout_seconds: float = 2.0
    ) -> None:
        self._users = users
        self._cache = cache
        self._timeout = timeout_seconds

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        request = user_pb2.Token(token=token)

        async def validate(channel: grpc.aio.Channel) -> user_pb2.Token:
            stub = user_pb2_grpc.UserSrvStub(channel)
            return await stub.ValidateToken(request, timeout=self._timeout)

        try:
            reply = await self._users.call(validate)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                raise Unauthenticated(MessageKey.TOKEN_INVALID) from exc
            raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency="user service") from exc
        if not reply.valid or not reply.e_uid:
            raise Unauthenticated(MessageKey.TOKEN_INVALID)
        principal = Principal(user_id=reply.e_uid)
        self._cache.put(token, principal)
        return principal
