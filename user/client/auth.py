"""The user service as other services and CLIs reach it: its public keys (GetPublicKeys) for
their servers to verify tokens locally, and logins (Auth) for their CLIs. Other services
import this module, never user.server."""

from __future__ import annotations

import grpc

from global_errors import MessageKey, Unauthenticated, Unavailable
from global_utils.auth import Principal, TokenVerifier
from global_utils.authz import Role
from global_utils.client import ClientSettings, ServiceChannels, find_service, open_channel
from global_utils.registry import Registry
from global_utils.settings import RemoteAuthSettings
from global_utils.token_cache import CachingVerifier, TokenCache
from global_utils.token_keys import LocalTokenVerifier, PublicKey
from user.proto import user_pb2, user_pb2_grpc

USER_SERVICE = "user"


def user_service_verifier(
    registry: Registry, settings: RemoteAuthSettings
) -> tuple[CachingVerifier, ServiceChannels]:
    """A verifier checking tokens locally with the public keys of the user service found in
    registry (asked at the first token and again for an unknown key id), or with
    TOKEN_VERIFICATION=remote by asking it, and the channels it uses (a lifecycle component of
    the host: it closes them on stop)."""
    users = user_service_channels(registry, settings)
    inner: TokenVerifier = (
        LocalTokenVerifier(PublicKeyFetcher(users, settings.auth_timeout_seconds).fetch)
        if settings.token_verification == "local"
        else RemoteTokenVerifier(users, timeout_seconds=settings.auth_timeout_seconds)
    )
    verifier = CachingVerifier(
        inner, TokenCache(settings.token_cache_size, settings.token_cache_seconds)
    )
    return verifier, users


def user_service_channels(registry: Registry, settings: RemoteAuthSettings) -> ServiceChannels:
    return ServiceChannels(
        registry,
        USER_SERVICE,
        resolve_timeout=settings.auth_timeout_seconds,
        # idempotent: safe to retry on another instance when one goes away mid-call
        retry_methods=("user.UserSrv/ValidateToken", "user.UserSrv/GetPublicKeys"),
        tls=settings.client_tls(),
    )


class PublicKeyFetcher:
    """The user service's token verification keys, asked through GetPublicKeys."""

    def __init__(self, users: ServiceChannels, timeout_seconds: float = 2.0) -> None:
        self._users = users
        self._timeout = timeout_seconds

    async def fetch(self) -> list[PublicKey]:
        async def ask(channel: grpc.aio.Channel) -> user_pb2.PublicKeys:
            stub = user_pb2_grpc.UserSrvStub(channel)
            return await stub.GetPublicKeys(user_pb2.PublicKeysRequest(), timeout=self._timeout)

        try:
            reply = await self._users.call(ask)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency="user service") from exc
        keys = []
        for key in reply.key:
            jwk = {"kid": key.kid, "alg": key.alg, "kty": key.kty, "crv": key.crv, "x": key.x}
            try:
                keys.append(PublicKey.from_jwk(jwk))
            except ValueError:  # a key type from a newer user service: not ours to use
                continue
        return keys


class RemoteTokenVerifier:
    """TokenVerifier asking user.UserSrv/ValidateToken for every token (how promotion and audit
    checked tokens before local verification; the benchmark compares the two)."""

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
        # A user service from before roles sends none: the caller is then a member.
        role = Role.ADMIN if reply.role == user_pb2.ROLE_ADMIN else Role.MEMBER
        return Principal(user_id=reply.e_uid, role=role)


async def login_through_user_service(
    settings: ClientSettings, email: str | None, password: str | None
) -> str:
    """A token from the user service (USER_SERVERADDRESS, or discovered), for the CLIs of
    services whose calls need one."""
    password = settings.login_password(password)
    endpoint = await find_service(USER_SERVICE, settings, settings.user_serveraddress)
    async with open_channel(
        endpoint, tls=settings.client_tls(), server_name=USER_SERVICE
    ) as channel:
        reply = await user_pb2_grpc.UserSrvStub(channel).Auth(
            user_pb2.User(email=email or settings.cli_email, pwd=password)
        )
    return str(reply.token)
