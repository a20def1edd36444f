"""The user service as other services and CLIs reach it: its public keys (GetPublicKeys) for
their servers to verify tokens locally, and logins (Auth) for their CLIs. Other services
import this module, never user.server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from global_errors import MessageKey, Unauthenticated, Unavailable
from global_utils.config.settings import RemoteAuthSettings
from global_utils.discovery.registry import Endpoint, Registry
from global_utils.grpc.client import ClientSettings, ServiceChannels, find_service, open_channel
from global_utils.grpc.tls import ClientTls
from global_utils.identity.principal import Principal, Role, TokenVerifier
from global_utils.identity.revocations import RevocationCheckingVerifier, RevocationFeed
from global_utils.identity.token_cache import CachingVerifier, TokenCache
from global_utils.identity.token_keys import LocalTokenVerifier, PublicKey
from global_utils.observability.gauges import watch_revocations, watch_token_cache
from global_utils.wiring import ServiceParts
from user.proto import user_pb2, user_pb2_grpc

USER_SERVICE = "user"


def user_service_verifier(
    parts: ServiceParts[Any], settings: RemoteAuthSettings
) -> UserServiceVerifier:
    """A verifier checking tokens locally with the public keys of the user service found in
    the parts' registry (asked at the first token and again for an unknown key id), or with
    TOKEN_VERIFICATION=remote by asking it; either way refusing revoked users' tokens as the
    REVOCATIONS bucket says (followed on the parts' broker), and asking the user service while
    that feed is stale. The user service is spoken to with the service's client TLS, through
    its client interceptors. The cache and the feed are watched by the parts' metrics; the
    components (the feed; the channels, closed on stop) go to the host."""
    users = user_service_channels(
        parts.registry, settings, parts.settings.tls.client_tls(), parts.client_interceptors()
    )
    remote = RemoteTokenVerifier(users, timeout_seconds=settings.auth_timeout_seconds)
    inner: TokenVerifier = (
        LocalTokenVerifier(PublicKeyFetcher(users, settings.auth_timeout_seconds).fetch)
        if settings.token_verification == "local"
        else remote
    )
    cached = CachingVerifier(
        inner, TokenCache(settings.token_cache_size, settings.token_cache_seconds)
    )
    feed = RevocationFeed(parts.broker, max_age_seconds=settings.revocation_feed_max_age_seconds)
    verifier = RevocationCheckingVerifier(cached, feed, remote)
    watch_token_cache(parts.metrics, cached.cache)
    watch_revocations(parts.metrics, feed, verifier)
    return UserServiceVerifier(verifier, cached, feed, users)


@dataclass(frozen=True)
class UserServiceVerifier:
    """What user_service_verifier builds: the verifier a host checks tokens with, the cache
    and the feed behind it (metrics watch them), and the channels to the user service."""

    verifier: RevocationCheckingVerifier
    cached: CachingVerifier
    feed: RevocationFeed
    users: ServiceChannels

    @property
    def components(self) -> tuple[RevocationFeed, ServiceChannels]:
        """Lifecycle components, in start order: the feed loads before the host serves."""
        return self.feed, self.users


def user_service_channels(
    registry: Registry,
    settings: RemoteAuthSettings,
    tls: ClientTls | None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> ServiceChannels:
    return ServiceChannels(
        registry,
        USER_SERVICE,
        resolve_timeout=settings.auth_timeout_seconds,
        # idempotent: safe to retry on another instance when one goes away mid-call
        retry_methods=("user.UserSrv/ValidateToken", "user.UserSrv/GetPublicKeys"),
        tls=tls,
        interceptors=interceptors,
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


class Session:
    """A CLI's login: the access token its calls carry, renewed with the refresh token (which
    turns over at each use) when a call is refused as unauthenticated: a CLI outlives its
    15-minute access token without noticing."""

    def __init__(
        self,
        access_token: str = "",
        refresh_token: str = "",
        renew: Callable[[str], Awaitable[user_pb2.Token]] | None = None,
    ) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self._renew = renew
        self._renewing = False

    def started(self, reply: user_pb2.Token) -> str:
        """Takes the pair Auth (or RefreshToken) handed out; the access token."""
        self.access_token, self.refresh_token = reply.token, reply.refresh_token
        return self.access_token

    async def refreshed(self) -> bool:
        """A new pair for the refresh token, when there is one and a way to use it."""
        # the renewal's own call may pass through the same session: never renew from inside it
        if not self.refresh_token or self._renew is None or self._renewing:
            return False
        self._renewing = True
        try:
            self.started(await self._renew(self.refresh_token))
        finally:
            self._renewing = False
        return True


class SessionInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Puts the session's current access token on every call (replacing what the call names)
    and, when a call is refused as unauthenticated, refreshes once and sends it again."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call = await continuation(self._authorized(client_call_details), request)
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED or not await self._session.refreshed():
                return call  # the caller meets the error when it awaits the call
            return await continuation(self._authorized(client_call_details), request)
        return call

    def _authorized(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if not self._session.access_token:
            return details
        metadata = grpc.aio.Metadata(
            *[(k, v) for k, v in (details.metadata or ()) if k not in ("authorization", "token")]
        )
        metadata.add("authorization", f"Bearer {self._session.access_token}")
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


async def login_session(
    settings: ClientSettings, email: str | None, password: str | None, token: str | None = None
) -> Session:
    """The session of a CLI whose calls need a user token: --token as given (no refresh), or a
    login through the user service (USER_SERVERADDRESS, or discovered) that renews itself."""
    if token:
        return Session(token)
    endpoint = await find_service(USER_SERVICE, settings, settings.cli.user_serveraddress)

    async def call_user(
        ask: Callable[[user_pb2_grpc.UserSrvStub], Awaitable[user_pb2.Token]],
    ) -> user_pb2.Token:
        async with open_channel(
            endpoint, tls=settings.tls.client_tls(), server_name=USER_SERVICE
        ) as channel:
            return await ask(user_pb2_grpc.UserSrvStub(channel))

    async def renew(refresh_token: str) -> user_pb2.Token:
        request = user_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        return await call_user(lambda stub: stub.RefreshToken(request))

    session = Session(renew=renew)
    login = user_pb2.User(
        email=email or settings.cli.cli_email, pwd=settings.cli.login_password(password)
    )
    session.started(await call_user(lambda stub: stub.Auth(login)))
    return session


def session_channel(
    endpoint: Endpoint, service: str, settings: ClientSettings, session: Session
) -> grpc.aio.Channel:
    """A CLI's channel to a service: TLS as settings say, every call carrying the session's
    token, refreshed when needed."""
    return open_channel(
        endpoint,
        tls=settings.tls.client_tls(),
        server_name=service,
        interceptors=[SessionInterceptor(session)],
    )
