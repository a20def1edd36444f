"""Composition root of the user service: builds every dependency and hands it in."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from global_utils.grpc.host import ServiceDefinition, ServiceHost
from global_utils.grpc.http_side import HttpResponse
from global_utils.identity.revocations import RevocationFeed
from global_utils.identity.token_cache import TokenCache
from global_utils.identity.token_keys import jwks_document
from global_utils.observability.gauges import watch_revocations, watch_token_cache
from global_utils.observability.metrics import ServiceMetrics
from global_utils.wiring import service_parts
from user.proto import user_pb2_grpc
from user.server.accounts import Accounts
from user.server.audit_events import SERVICE_NAME
from user.server.passwords import PasswordHasher
from user.server.servicer import UserServicer, login_to_proto, user_to_proto
from user.server.sessions import Sessions
from user.server.settings import UserSettings
from user.server.tokens import TokenCodec
from user.server.unit_of_work import UserStorage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


GRPC_SERVICE = "user.UserSrv"
# Token checks and key publication need no token; a refresh token replaces one.
PUBLIC_METHODS = tuple(
    f"/{GRPC_SERVICE}/{method}"
    for method in ("Auth", "ValidateToken", "RefreshToken", "GetPublicKeys")
)
# Reads whose use cases check the caller's standing in their own query: the interceptor only
# verifies the token's signature (Sessions.signature_verifier).
READ_METHODS = tuple(
    f"/{GRPC_SERVICE}/{method}" for method in ("GetUserById", "GetUsers", "GetUsersByEmail")
)
JWKS_PATH = "/.well-known/jwks.json"
# Verifiers refetch on an unknown kid anyway; caches may keep the document this long.
JWKS_MAX_AGE_SECONDS = 300


def build(settings: UserSettings, *, span_exporter: SpanExporter | None = None) -> ServiceHost:
    """The user service; span_exporter (tests) gets its spans whatever OTEL_* say."""
    parts = service_parts(SERVICE_NAME, settings, span_exporter)
    db = settings.db
    database = parts.database(db.postgres_connect, db.postgres_password, db.db_pool_max_size)
    jwt = settings.jwt
    tokens = TokenCodec(jwt.signing_keys, lifetime=timedelta(seconds=jwt.access_token_seconds))
    passwords = settings.passwords
    hasher = PasswordHasher(passwords.bcrypt_rounds, passwords.bcrypt_workers)
    signatures = TokenCache(
        settings.token_cache.token_cache_size, settings.token_cache.token_cache_seconds
    )
    relay, emitter = parts.outbox(database, settings.audit_signing)
    storage = UserStorage(database, emitter, passwords.throttle_policy)
    revocations = RevocationFeed(parts.broker, max_age_seconds=jwt.revocation_feed_max_age_seconds)
    accounts = Accounts(storage, hasher, user_to_proto)
    sessions = Sessions(
        storage,
        hasher,
        tokens,
        login_to_proto,
        refresh_lifetime=timedelta(seconds=jwt.refresh_token_seconds),
        signatures=signatures,
        revocations=revocations,
    )
    jwks = jwks_document(tokens.public_keys)
    servicer = UserServicer(accounts, sessions, settings.server.app_language)
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: user_pb2_grpc.add_UserSrvServicer_to_server(servicer, server),
        public_methods=PUBLIC_METHODS,
        method_verifiers=dict.fromkeys(READ_METHODS, sessions.signature_verifier),
    )
    watch_token_cache(parts.metrics, signatures)
    watch_revocations(parts.metrics, revocations)
    watch_hashing(parts.metrics, hasher)
    return parts.host(
        definition,
        database,
        # no token cache in front: a deactivated or deleted user's token is refused at once
        verifier=sessions,
        components=(relay, revocations, hasher),
        routes={
            JWKS_PATH: lambda: HttpResponse(jwks, "application/jwk-set+json", JWKS_MAX_AGE_SECONDS)
        },
    )


def watch_hashing(metrics: ServiceMetrics, hasher: PasswordHasher) -> None:
    metrics.gauge("gotemp_bcrypt_workers", "Password hashing processes.", lambda: hasher.workers)
    metrics.gauge(
        "gotemp_bcrypt_in_flight", "Password hashes being computed now.", lambda: hasher.in_flight
    )
    metrics.gauge(
        "gotemp_bcrypt_queued", "Password hashes waiting for a free process.", lambda: hasher.queued
    )
