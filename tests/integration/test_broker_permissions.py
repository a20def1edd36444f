"""NATS accounts and permissions (nats/nats.conf), against the session's real nats-server:
nobody gets in without a listed key; producers may only publish on Audit and hear their own
acks; the audit service may only pull from and ack its consumer; provisioning (the admin's)
is idempotent; and a service whose stream or consumer is missing waits for provisioning."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig
from nats.js.errors import NoStreamResponseError, NotFoundError

import nats
from audit.server.events.authenticity import EventAuthenticator, parse_producer_keys
from audit.server.ingest.consumer import AuditConsumer
from audit.server.ingest.raw_client import RawClient
from devtools.databases import runtime_dsn, runtime_password
from devtools.dev_secrets import AuditKeys, NatsKeys, make_nats_keys
from devtools.stack import AUDIT_DATABASE, EmbeddedNats, EmbeddedPostgres
from global_utils.config.settings import ServiceSettings
from global_utils.data.database import Database
from global_utils.events.audit_event import (
    AUDIT_CONSUMER,
    AUDIT_STREAM,
    ActionType,
    AuditEvent,
    Subject,
)
from global_utils.events.signing import EventSigner
from global_utils.messaging.broker import Broker
from provision.broker import provision_broker
from tests.helpers import eventually


class Session:
    """A client connected as one NATS user, with the errors the server sent it."""

    def __init__(self, client: Client, errors: list[str]) -> None:
        self.client = client
        self.errors = errors

    async def refused(self, what: str) -> None:
        """Waits for the server's permissions violation naming what (e.g. 'publish to
        "audit"'; nats-py lower-cases the text)."""

        async def seen() -> bool:
            return any("permissions violation" in e and what.lower() in e for e in self.errors)

        await eventually(seen, timeout=5, what=f"a permissions violation for {what}")


@pytest.fixture
async def connect_as(
    nats_server: EmbeddedNats, nats_keys: NatsKeys
) -> AsyncIterator[Callable[[str], Awaitable[Session]]]:
    """Connects as a NATS user of nats.conf (admin, user, promotion, audit), with the inbox
    prefix that user's service has."""
    clients: list[Client] = []

    async def connect(user: str) -> Session:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        client = await nats.connect(
            f"nats://{nats_server.address}",
            allow_reconnect=False,
            error_cb=on_error,
            **nats_keys.access(user).connect_options(),
        )
        clients.append(client)
        return Session(client, errors)

    yield connect
    for client in clients:
        await client.close()


def audit_event(object_id: str) -> AuditEvent:
    return AuditEvent(
        service="user",
        action_func="AfterUpdateUser",
        action_type=ActionType.UPDATE,
        object_name="permissions-test",
        object_id=object_id,
        performed_by="1",
        payload_type="user.User",
        payload=b"\x08\x01",
    )


def user_signer(audit_keys: AuditKeys) -> EventSigner:
    return EventSigner(audit_keys.key_id("user"), audit_keys.key("user").encode())


async def stored(postgres: EmbeddedPostgres, object_id: str) -> int:
    conn = await asyncpg.connect(postgres.dsn(AUDIT_DATABASE))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM audit WHERE objectid = $1", object_id))
    finally:
        await conn.close()


async def test_a_client_without_a_listed_key_is_refused(
    nats_server: EmbeddedNats, stack_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"nats://{nats_server.address}"
    with pytest.raises(NatsError, match="(?i)authorization"):
        await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    stranger = make_nats_keys(stack_dir / f"stranger-{uuid.uuid4().hex[:6]}")
    with pytest.raises(NatsError, match="(?i)authorization"):
        await nats.connect(
            url,
            allow_reconnect=False,
            connect_timeout=2,
            **stranger.access("user").connect_options(),
        )
    # A service left without NATS_NKEY_SEED (the setting's default) keeps retrying and says
    # why, once.
    settings = ServiceSettings(micro_broker_address=nats_server.address)
    broker = Broker(
        settings.broker.broker_url, name="no-credentials", access=settings.broker.broker_access("x")
    )
    with caplog.at_level(logging.WARNING, logger="global_utils.messaging.broker"):
        await broker.start()
        try:

            async def said_why() -> bool:
                return any("refused no-credentials's credentials" in m for m in caplog.messages)

            await eventually(said_why, what="the refusal logged")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(broker.wait_connected(), 0.5)
        finally:
            await broker.stop()


async def test_producers_publish_on_audit_and_nothing_else(
    connect_as: Callable[[str], Awaitable[Session]],
    audit_host: object,
    audit_keys: AuditKeys,
    postgres: EmbeddedPostgres,
) -> None:
    admin = await connect_as("admin")
    before = (await admin.client.jetstream().stream_info(AUDIT_STREAM)).state.messages
    for service in ("user", "promotion"):
        producer = await connect_as(service)
        # the relay's own path: a JetStream publish, acked on the service's inbox
        event = audit_event(f"{service}-{uuid.uuid4().hex[:8]}")
        ack = await producer.client.jetstream().publish(
            Subject.AUDIT.value,
            event.payload,
            headers=user_signer(audit_keys).sign(event.headers(), event.payload),
        )
        assert ack.stream == AUDIT_STREAM
        # ... and nothing of JetStream's API: not even reading the stream, let alone deleting it
        await producer.client.publish(f"$JS.API.STREAM.DELETE.{AUDIT_STREAM}", b"")
        await producer.refused(f'publish to "$js.api.stream.delete.{AUDIT_STREAM}"')
    info = await admin.client.jetstream().stream_info(AUDIT_STREAM)
    assert info.state.messages == before + 2


async def test_promotion_cannot_consume_the_stream_or_read_audits_deliveries(
    connect_as: Callable[[str], Awaitable[Session]],
    audit_host: object,
    audit_keys: AuditKeys,
    postgres: EmbeddedPostgres,
) -> None:
    promotion = await connect_as("promotion")
    admin = await connect_as("admin")
    seen: list[str] = []
    marker: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        seen.append(msg.subject)

    async def on_marker(msg: Msg) -> None:
        await marker.put(msg.data)

    # pull from the audit consumer
    await promotion.client.publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{AUDIT_STREAM}.{AUDIT_CONSUMER}",
        b'{"batch": 10}',
        reply=f"{promotion.client.new_inbox()}.1",
    )
    await promotion.refused(f'publish to "$js.api.consumer.msg.next.{AUDIT_STREAM}')
    # make a consumer of its own
    with pytest.raises(NatsError):
        await promotion.client.jetstream().add_consumer(
            AUDIT_STREAM, ConsumerConfig(durable_name="sneaky"), timeout=1
        )
    await promotion.refused(f'publish to "$js.api.consumer.durable.create.{AUDIT_STREAM}')
    with pytest.raises(NotFoundError):
        await admin.client.jetstream().consumer_info(AUDIT_STREAM, "sneaky")
    # listen on Audit, or on the audit service's inbox (where its deliveries arrive)
    await promotion.client.subscribe(Subject.AUDIT.value, cb=collect)
    await promotion.refused('subscription to "audit"')
    await promotion.client.subscribe("_INBOX.audit.>", cb=collect)
    await promotion.refused('subscription to "_inbox.audit.>"')
    await promotion.client.subscribe("_INBOX.promotion.marker", cb=on_marker)

    # An event the audit service stores: published on Audit, delivered to audit's inbox.
    user = await connect_as("user")
    event = audit_event(f"watched-{uuid.uuid4().hex[:8]}")
    headers = user_signer(audit_keys).sign(event.headers(), event.payload)
    await user.client.jetstream().publish(Subject.AUDIT.value, event.payload, headers=headers)

    async def stored_once() -> bool:
        return await stored(postgres, event.object_id) == 1

    await eventually(stored_once, what="the event stored by the audit service")
    # Sent after the delivery: had any subscription been let through, its message would
    # have reached promotion before this one.
    await admin.client.publish("_INBOX.promotion.marker", b"after")
    assert await asyncio.wait_for(marker.get(), 5) == b"after"
    assert seen == []


async def test_audit_cannot_publish_events(
    connect_as: Callable[[str], Awaitable[Session]], audit_keys: AuditKeys
) -> None:
    audit = await connect_as("audit")
    admin = await connect_as("admin")
    js = admin.client.jetstream()
    before = (await js.stream_info(AUDIT_STREAM)).state.messages
    event = audit_event(f"forged-{uuid.uuid4().hex[:8]}")
    headers = user_signer(audit_keys).sign(event.headers(), event.payload)
    await audit.client.publish(Subject.AUDIT.value, event.payload, headers=headers)
    await audit.refused('publish to "audit"')
    # nor change its consumer (it may only read its info)
    await audit.client.publish(f"$JS.API.CONSUMER.DELETE.{AUDIT_STREAM}.{AUDIT_CONSUMER}", b"")
    await audit.refused(f'publish to "$js.api.consumer.delete.{AUDIT_STREAM}')
    info = await audit.client.jetstream().consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
    assert info.name == AUDIT_CONSUMER
    assert (await js.stream_info(AUDIT_STREAM)).state.messages == before


async def test_provisioning_is_idempotent_and_applies_changed_settings(
    nats_server: EmbeddedNats, nats_keys: NatsKeys, nats_client: Client
) -> None:
    js = nats_client.jetstream()
    url, admin = f"nats://{nats_server.address}", nats_keys.access("admin")
    stream_before = await js.stream_info(AUDIT_STREAM)
    consumer_before = await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
    done = await provision_broker(url, admin)
    assert "up to date" in done
    stream_after = await js.stream_info(AUDIT_STREAM)
    consumer_after = await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
    assert stream_after.config == stream_before.config
    assert stream_after.state.first_seq == stream_before.state.first_seq  # nothing purged
    assert consumer_after.config == consumer_before.config
    assert consumer_after.delivered.stream_seq >= consumer_before.delivered.stream_seq
    try:
        await provision_broker(url, admin, ack_wait_seconds=45, max_ack_pending=123)
        changed = (await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)).config
        assert (changed.ack_wait, changed.max_ack_pending) == (45, 123)
    finally:
        await provision_broker(url, admin)
    restored = (await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)).config
    assert restored == consumer_before.config


async def test_services_wait_for_provisioning_and_say_so(
    stack_dir: Path,
    nats_keys: NatsKeys,
    postgres: EmbeddedPostgres,
    audit_keys: AuditKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server of this test's own, not provisioned yet.
    server = EmbeddedNats(
        stack_dir / f"unprovisioned-{uuid.uuid4().hex[:6]}", env=nats_keys.server_env()
    ).start()
    url = f"nats://{server.address}"
    database = Database(runtime_dsn(postgres, "audit"), password=runtime_password("audit"))
    broker = Broker(url, name="audit", client_class=RawClient, access=nats_keys.access("audit"))
    keys = parse_producer_keys(audit_keys.producer_keys_file.read_text())
    consumer = AuditConsumer(database, broker, EventAuthenticator(keys), batch_size=10)
    producer = await nats.connect(url, **nats_keys.access("user").connect_options())
    try:
        for part in (database, broker, consumer):
            await part.start()
        # the producer: JetStream answers that no stream takes Audit (the relay keeps the
        # event in its outbox and says provisioning makes the stream)
        event = audit_event(f"early-{uuid.uuid4().hex[:8]}")
        headers = user_signer(audit_keys).sign(event.headers(), event.payload)
        with pytest.raises(NoStreamResponseError):
            await producer.jetstream().publish(
                Subject.AUDIT.value, event.payload, headers=headers, timeout=2
            )

        # the consumer: one line, then it keeps checking
        async def waiting() -> bool:
            return any("provisioning makes them" in m for m in caplog.messages)

        await eventually(waiting, what="the audit consumer to report the missing consumer")
        await provision_broker(url, nats_keys.access("admin"))
        await producer.jetstream().publish(Subject.AUDIT.value, event.payload, headers=headers)

        async def stored_once() -> bool:
            return await stored(postgres, event.object_id) == 1

        await eventually(stored_once, timeout=20, what="the event stored once provisioned")
        assert sum("provisioning makes them" in m for m in caplog.messages) == 1
    finally:
        await producer.close()
        for part in (consumer, broker, database):
            await part.stop()
        server.stop()
