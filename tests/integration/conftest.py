"""Fixtures for the services running in-process against the session's servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
import pytest
from pydantic_settings import BaseSettings

from audit.proto import audit_pb2_grpc
from audit.server.bootstrap import build as build_audit
from audit.server.settings import AuditSettings
from devtools.databases import service_db_settings
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2_grpc
from promotion.server.bootstrap import build as build_promotion
from promotion.server.settings import PromotionSettings
from tests.helpers import started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings

SEED_EMAIL = "duck@mymail.com"
SEED_PASSWORD = "1234"
SESSION_MDNS_TYPE = f"_gts-{uuid.uuid4().hex[:8]}._tcp.local."
SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def factory(
    cls: type[SettingsT], nats_server: EmbeddedNats | str, **own: Any
) -> Callable[..., SettingsT]:
    """Settings of cls for an in-process service on a free loopback port, talking to the
    session's NATS (or the one at the address given), mDNS on 127.0.0.1; keyword overrides
    win."""
    address = nats_server if isinstance(nats_server, str) else nats_server.address

    def make(**overrides: Any) -> SettingsT:
        values = {
            "micro_server_address": "127.0.0.1:0",
            "micro_broker_address": address,
            "micro_registry": "mdns",
            "mdns_interfaces": "127.0.0.1",
            # this session's own: services of another test session on the machine stay apart
            "mdns_service_type": SESSION_MDNS_TYPE,
            "shutdown_grace_seconds": 1,
            **own,
            **overrides,
        }
        return cls(**values)

    return make


@pytest.fixture(scope="session")
def user_settings_factory(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    jwt_key: str,
    audit_keys: AuditKeys,
) -> Callable[..., UserSettings]:
    """Builds user settings pointing at the session's servers."""
    return factory(
        UserSettings,
        nats_server,
        **service_db_settings(postgres, "user"),
        **nats_keys.client_settings("user"),
        jwt_private_key=jwt_key,
        bcrypt_rounds=4,
        **audit_keys.producer_settings("user"),
    )


@pytest.fixture(scope="session")
def promotion_settings_factory(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    audit_keys: AuditKeys,
) -> Callable[..., PromotionSettings]:
    """Builds promotion settings pointing at the session's servers."""
    return factory(
        PromotionSettings,
        nats_server,
        **service_db_settings(postgres, "promotion"),
        **nats_keys.client_settings("promotion"),
        **audit_keys.producer_settings("promotion"),
    )


@pytest.fixture(scope="session")
def audit_settings_factory(
    postgres: EmbeddedPostgres,
    nats_server: EmbeddedNats,
    nats_keys: NatsKeys,
    audit_keys: AuditKeys,
) -> Callable[..., AuditSettings]:
    """Builds audit settings pointing at the session's servers."""
    return factory(
        AuditSettings,
        nats_server,
        **service_db_settings(postgres, "audit"),
        **nats_keys.client_settings("audit"),
        **audit_keys.consumer_settings(),
    )


@pytest.fixture(scope="session")
async def user_host(
    user_settings_factory: Callable[..., UserSettings],
) -> AsyncIterator[ServiceHost]:
    """The user service, started and SERVING."""
    host = await started(build(user_settings_factory()))
    yield host
    await host.stop()


@pytest.fixture(scope="session")
async def promotion_host(
    user_host: ServiceHost, promotion_settings_factory: Callable[..., PromotionSettings]
) -> AsyncIterator[ServiceHost]:
    """The promotion service, validating tokens through the user service over mDNS."""
    host = await started(build_promotion(promotion_settings_factory()))
    yield host
    await host.stop()


@pytest.fixture(scope="session")
async def audit_host(
    user_host: ServiceHost, audit_settings_factory: Callable[..., AuditSettings]
) -> AsyncIterator[ServiceHost]:
    """The audit service, consuming the session's JetStream."""
    host = await started(build_audit(audit_settings_factory()))
    yield host
    await host.stop()


@pytest.fixture(scope="session")
async def user_channel(user_host: ServiceHost) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the in-process user service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user_host.port}") as channel:
        yield channel


@pytest.fixture(scope="session")
def user_stub(user_channel: grpc.aio.Channel) -> user_pb2_grpc.UserSrvStub:
    """A UserSrv stub."""
    return user_pb2_grpc.UserSrvStub(user_channel)


@pytest.fixture(scope="session")
async def promotion_stub(
    promotion_host: ServiceHost,
) -> AsyncIterator[promotion_pb2_grpc.PromotionSrvStub]:
    """A PromotionSrv stub on a channel to the in-process promotion service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{promotion_host.port}") as channel:
        yield promotion_pb2_grpc.PromotionSrvStub(channel)


@pytest.fixture(scope="session")
async def audit_stub(audit_host: ServiceHost) -> AsyncIterator[audit_pb2_grpc.AuditSrvStub]:
    """An AuditSrv stub on a channel to the in-process audit service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{audit_host.port}") as channel:
        yield audit_pb2_grpc.AuditSrvStub(channel)


@pytest.fixture(scope="session")
async def duck_token(user_stub: user_pb2_grpc.UserSrvStub) -> str:
    """A token for the seed user Super Duck."""
    reply = await user_stub.Auth(user_pb2.User(email=SEED_EMAIL, pwd=SEED_PASSWORD))
    return reply.token


@pytest.fixture(scope="session")
def auth(duck_token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying Super Duck's token."""
    return bearer_metadata(duck_token)
