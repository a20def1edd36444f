"""Token verification by the user service (ValidateToken), for the other services."""

from __future__ import annotations

import grpc

from global_errors import MessageKey, Unauthenticated, Unavailable
from global_utils.auth import Principal
from global_utils.client import ServiceChannels
from global_utils.registry import Registry
from global_utils.settings import RemoteAuthSettings
from global_utils.token_cache import CachingVerifier, TokenCache
from user.proto import user_pb2, user_pb2_grpc

USER_SERVICE = "user"


def user_service_verifier(
    registry: Registry, settings: RemoteAuthSettings
) -> tuple[CachingVerifier, ServiceChannels]:
    """A verifier asking the user service found in registry, and the channels it uses (a
    lifecycle component of the host: it closes them on stop)."""
    users = ServiceChannels(registry, USER_SERVICE, resolve_timeout=settings.auth_timeout_seconds)
    verifier = CachingVerifier(
        RemoteTokenVerifier(users, timeout_seconds=settings.auth_timeout_seconds),
        TokenCache(settings.token_cache_size, settings.token_cache_seconds),
    )
    return verifier, users


class RemoteTokenVerifier:
    """TokenVerifier for services other than user: asks user.UserSrv/ValidateToken."""

    def __init__(self, users: ServiceChannels, *, timeout_seconds: float = 2.0) -> None:
        self._users = users
        self._timeout = timeout_seconds

    async def verify(self, token: str) -> Principal:
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
        return Principal(user_id=reply.e_uid)
