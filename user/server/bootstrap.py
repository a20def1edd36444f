"""Composition root of the user service: builds every dependency and hands it in."""

from __future__ import annotations

from global_utils.broker import Broker
from global_utils.db import Database
from global_utils.grpc_host import ServiceDefinition, ServiceHost
from global_utils.outbox import OutboxAuditEmitter, OutboxRelay
from global_utils.token_cache import CachingVerifier, TokenCache
from user.proto import user_pb2_grpc
from user.server.passwords import PasswordHasher
from user.server.service import SERVICE_NAME, UserService
from user.server.servicer import UserServicer, login_to_proto, user_to_proto
from user.server.settings import UserSettings
from user.server.tokens import TokenCodec
from user.server.unit_of_work import UserStorage

GRPC_SERVICE = "user.UserSrv"
PUBLIC_METHODS = (f"/{GRPC_SERVICE}/Auth", f"/{GRPC_SERVICE}/ValidateToken")


def build(settings: UserSettings) -> ServiceHost:
    database = Database(settings.postgres_connect, max_size=settings.db_pool_max_size)
    broker = Broker(settings.broker_url, name=SERVICE_NAME)
    relay = OutboxRelay(database, broker)
    emitter = OutboxAuditEmitter(relay)
    tokens = TokenCodec(settings.jwt_key)
    hasher = PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_workers)
    service = UserService(
        UserStorage(database, emitter, settings.throttle_policy),
        hasher,
        tokens,
        user_to_proto,
        login_to_proto,
    )
    servicer = UserServicer(service, settings.app_language)
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: user_pb2_grpc.add_UserSrvServicer_to_server(servicer, server),
        public_methods=PUBLIC_METHODS,
    )
    return ServiceHost(
        definition,
        settings,
        database=database,
        registry=settings.create_registry(),
        verifier=CachingVerifier(
            tokens, TokenCache(settings.token_cache_size, settings.token_cache_seconds)
        ),
        components=(broker, relay, hasher),
    )
