"""The audit pipeline through outages: every change stored exactly once.

These tests run on a stack of their own (PostgreSQL, a NATS they restart, their own mDNS type)
so stopping parts of it cannot disturb the other tests."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

import nats
from audit.server.bootstrap import build as build_audit
from audit.server.events.authenticity import EventAuthenticator, ProducerKey
from audit.server.events.wire import ReceivedEvent, header_block
from audit.server.ingest.consumer import AUDIT_CONSUMER, AuditConsumer
from audit.server.ingest.pull import Delivery
from audit.server.ingest.raw_client import RawClient
from audit.server.repository import AuditRepository
from audit.server.settings import AuditSettings
from devtools.databases import (
    provision_databases,
    runtime_dsn,
    runtime_password,
    service_db_settings,
)
from devtools.dev_secrets import NatsKeys
from devtools.stack import EmbeddedNats, EmbeddedPostgres
from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import AUDIT_STREAM, ActionType, AuditEvent
from global_utils.events.signing import EventSigner
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.messaging.broker import Broker
from global_utils.messaging.outbox import OutboxAuditEmitter, OutboxRelay
from provision.broker import provision_broker
from tests.helpers import eventually, new_user, started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings
from user.server.signing_keys import new_signing_key_pem

# This module's producers: the test's own events and the user service, each with its key
# (given directly, AUDIT_PRODUCER_KEYS and AUDIT_SIGNING_KEY, not as files).
TEST_KEY = secrets.token_hex(32)
USER_KEY = secrets.token_hex(32)
SIGNER = EventSigner("pipeline-test-1", TEST_KEY.encode())
PRODUCER_KEYS = f"pipeline-test-1 pipeline-test {TEST_KEY}; user-1 user {USER_KEY}"
# Unacknowledged events come back within seconds (the consumer's ack wait, as provisioned).
ACK_WAIT_SECONDS = 2.0


def signed(e: AuditEvent) -> dict[str, str]:
    """e's headers with its MAC, as a producer's outbox row holds them."""
    return SIGNER.sign(e.headers(), e.payload)


@dataclass
class Pipeline:
    pg: EmbeddedPostgres
    nats: EmbeddedNats
    keys: NatsKeys
    mdns_type: str
    jwt_key: str = field(default_factory=new_signing_key_pem)

    @property
    def url(self) -> str:
        return f"nats://{self.nats.address}"

    async def provision(self, ack_wait_seconds: float = ACK_WAIT_SECONDS) -> None:
        await provision_broker(
            self.url, self.keys.access("admin"), ack_wait_seconds=ack_wait_seconds
        )

    async def admin(self) -> nats.NATS:
        """A client with the admin credential (observing and changing JetStream)."""
        return await nats.connect(self.url, **self.keys.access("admin").connect_options())

    def audit_settings(self, **overrides: object) -> AuditSettings:
        values: dict[str, Any] = {
            **service_db_settings(self.pg, "audit"),
            "micro_server_address": "127.0.0.1:0",
            "micro_broker_address": self.nats.address,
            "mdns_interfaces": "127.0.0.1",
            "mdns_service_type": self.mdns_type,
            "shutdown_grace_seconds": 1,
            "audit_producer_keys": PRODUCER_KEYS,
            **self.keys.client_settings("audit"),
        }
        values.update(overrides)
        return AuditSettings(**values)

    def user_settings(self) -> UserSettings:
        return UserSettings(
            **service_db_settings(self.pg, "user"),
            micro_server_address="127.0.0.1:0",
            micro_broker_address=self.nats.address,
            mdns_interfaces="127.0.0.1",
            mdns_service_type=self.mdns_type,
            jwt_private_key=self.jwt_key,
            audit_signing_key=USER_KEY,
            audit_signing_key_id="user-1",
            bcrypt_rounds=4,
            shutdown_grace_seconds=1,
            nats_nkey_seed_file=self.keys.seed_file("user"),
        )

    async def query(self, database: str, sql: str, *args: object) -> Any:
        conn = await asyncpg.connect(self.pg.dsn(database))
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def stored(self, ids: list[str]) -> int:
        return int(
            await self.query("audit", "SELECT count(*) FROM audit WHERE objectid = ANY($1)", ids)
        )

    async def pending_in_outbox(self) -> int:
        return int(
            await self.query("appuser", "SELECT count(*) FROM audit_outbox WHERE sentat IS NULL")
        )

    async def consumer_idle(self) -> bool:
        client = await self.admin()
        try:
            info = await client.jetstream().consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
            return info.num_pending == 0 and info.num_ack_pending == 0
        finally:
            await client.close()

    async def exactly(self, ids: list[str]) -> None:
        """Waits until every event is stored and nothing is left to deliver, then checks the
        count is exact (a duplicate would show as more rows than events)."""

        async def all_stored() -> bool:
            return await self.stored(ids) >= len(ids)

        await eventually(all_stored, timeout=40, what=f"{len(ids)} audit rows")

        async def drained() -> bool:
            return await self.pending_in_outbox() == 0 and await self.consumer_idle()

        await eventually(drained, timeout=40, what="the pipeline to drain")
        assert await self.stored(ids) == len(ids)


@pytest.fixture(scope="module")
async def pipeline(stack_dir: Path, nats_keys: NatsKeys) -> AsyncIterator[Pipeline]:
    """An isolated PostgreSQL (all schemas) and a restartable NATS with JetStream, provisioned
    (its store outlives restarts)."""
    pg = EmbeddedPostgres(stack_dir / "pipeline-pg", durable=False).start()
    provision_databases(pg)
    broker = EmbeddedNats(stack_dir / "pipeline-nats", env=nats_keys.server_env()).start()
    ready = Pipeline(pg, broker, nats_keys, f"_gt-{uuid.uuid4().hex[:8]}._tcp.local.")
    await ready.provision()
    yield ready
    broker.stop()
    pg.stop()


def event(object_id: str) -> AuditEvent:
    return AuditEvent.for_record(
        service="pipeline-test",
        action_func="AfterCreateUser",
        action_type=ActionType.INSERT,
        object_name="user",
        object_id=object_id,
        performed_by="1",
        record=user_pb2.User(firstname="x"),
    )


async def produce(database: Database, n: int) -> list[str]:
    """Commits n events into the user database's outbox, as a service change would."""
    ids = [uuid.uuid4().hex for _ in range(n)]
    async with UnitOfWork(database, OutboxAuditEmitter(SIGNER)) as uow:
        for object_id in ids:
            uow.emit(event(object_id))
        await uow.commit()
    return ids


@pytest.fixture
async def producer(pipeline: Pipeline) -> AsyncIterator[tuple[Database, Broker]]:
    """A database pool on the user database and a broker connection with the user service's
    NATS credential (what a relay may do), without a relay."""
    database = Database(runtime_dsn(pipeline.pg, "user"), password=runtime_password("user"))
    broker = Broker(pipeline.url, name="pipeline-test", access=pipeline.keys.access("user"))
    await database.start()
    await broker.start()
    await database.wait_ready()
    await broker.wait_connected()
    yield database, broker
    await broker.stop()
    await database.stop()


async def user_changes(user: ServiceHost, n: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user.port}") as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        token = (await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        ids = []
        for _ in range(n):
            reply = await stub.CreateUser(new_user(), metadata=bearer_metadata(token))
            ids.append(str(reply.user.id))
        return ids


async def test_changes_made_while_audit_is_down_are_stored_once_it_is_back(
    pipeline: Pipeline,
) -> None:
    user = await started(build_user(pipeline.user_settings()))
    try:
        ids = await user_changes(user, 15)

        async def relayed() -> bool:
            return await pipeline.pending_in_outbox() == 0

        await eventually(relayed, what="the outbox to be relayed to JetStream")
        assert await pipeline.stored(ids) == 0
        audit = await started(build_audit(pipeline.audit_settings()))
        try:
            await pipeline.exactly(ids)
        finally:
            await audit.stop()
    finally:
        await user.stop()


async def test_changes_made_while_nats_is_down_are_stored_once_it_is_back(
    pipeline: Pipeline,
) -> None:
    user = await started(build_user(pipeline.user_settings()))
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        await pipeline.exactly(await user_changes(user, 2))  # the pipeline works before
        pipeline.nats.stop()
        ids = await user_changes(user, 15)  # the RPCs succeed with the broker down
        # the 15 changes, and the login that made them (logins are audited too)
        assert await pipeline.pending_in_outbox() == 15 + 1
        pipeline.nats.start()
        await pipeline.exactly(ids)
        await pipeline.exactly(await user_changes(user, 2))  # and works after
    finally:
        await audit.stop()
        await user.stop()


class CrashBeforeMarking(OutboxRelay):
    """A relay that dies after JetStream acknowledged the batch, before marking it sent."""

    async def _mark_sent(self, conn: asyncpg.Connection, event_ids: list[object]) -> None:
        raise RuntimeError("relay killed")


async def test_republish_after_a_relay_crash_is_deduplicated(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    database, broker = producer
    ids = await produce(database, 10)
    admin = await pipeline.admin()
    try:
        js = admin.jetstream()
        before = (await js.stream_info(AUDIT_STREAM)).state.messages
        with pytest.raises(RuntimeError, match="relay killed"):
            await CrashBeforeMarking(database, broker).relay_once()
        assert await pipeline.pending_in_outbox() == 10  # nothing was marked sent
        assert await OutboxRelay(database, broker).relay_once() == 10  # published again
        assert await pipeline.pending_in_outbox() == 0
        assert (await js.stream_info(AUDIT_STREAM)).state.messages == before + 10  # not 20
    finally:
        await admin.close()
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        await pipeline.exactly(ids)
    finally:
        await audit.stop()


class CrashBeforeAck(AuditConsumer):
    """A consumer that dies once after committing a batch, before acknowledging it: the batch
    stays unacknowledged, as when the process is killed between commit and ack."""

    crashed = False

    async def handle(self, deliveries: list[Delivery]) -> None:
        if self.crashed:
            return await super().handle(deliveries)
        rows = [ReceivedEvent.from_header_block(d.headers, d.data) for d in deliveries]
        async with self._db.connection() as conn:
            await AuditRepository(conn).insert_events(rows)
        self.crashed = True  # and no ack


async def test_redelivery_after_a_consumer_crash_is_stored_once(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    database, broker = producer
    ids = await produce(database, 10)
    await OutboxRelay(database, broker).relay_once()
    audit_db = Database(runtime_dsn(pipeline.pg, "audit"), password=runtime_password("audit"))
    # The consumer's own connection, of the client class the audit service uses.
    audit_broker = Broker(
        pipeline.url,
        name="pipeline-audit",
        client_class=RawClient,
        access=pipeline.keys.access("audit"),
    )
    await audit_db.start()
    await audit_broker.start()
    crashing = CrashBeforeAck(
        audit_db,
        audit_broker,
        EventAuthenticator({"pipeline-test-1": ProducerKey("pipeline-test", TEST_KEY.encode())}),
    )
    await crashing.start()
    try:

        async def crashed_after_storing() -> bool:
            return crashing.crashed and await pipeline.stored(ids) > 0

        await eventually(crashed_after_storing, what="the consumer to store and crash")
        audit = await started(build_audit(pipeline.audit_settings()))
        try:
            await pipeline.exactly(ids)  # redelivered after ack_wait, not stored twice
        finally:
            await audit.stop()
    finally:
        await crashing.stop()
        await audit_broker.stop()
        await audit_db.stop()


async def test_two_audit_instances_share_the_work_without_duplicates(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    database, broker = producer
    first = await started(build_audit(pipeline.audit_settings(consumer_batch_size=5)))
    second = await started(build_audit(pipeline.audit_settings(consumer_batch_size=5)))
    try:
        ids: list[str] = []
        relay = OutboxRelay(database, broker, batch_size=20)
        for _ in range(10):
            ids += await produce(database, 20)
            await relay.relay_once()
        await pipeline.exactly(ids)
        consumers = [
            c for host in (first, second) for c in host._started if isinstance(c, AuditConsumer)
        ]
        shares = [c.stored for c in consumers]
        assert sum(shares) == len(ids) and all(share > 0 for share in shares), shares
    finally:
        await first.stop()
        await second.stop()


async def publish_raw(pipeline: Pipeline, messages: list[tuple[bytes, bytes]]) -> None:
    """Writes HPUB frames to the Audit subject as they are, over a plain connection with the
    user service's credential (a producer's, as a misbehaving one would write them)."""
    host, port = pipeline.nats.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        connect = pipeline.keys.connect_frame("user", await reader.readline())  # INFO
        frames = b"".join(
            b"HPUB Audit %d %d\r\n%s%s\r\n" % (len(block), len(block) + len(data), block, data)
            for block, data in messages
        )
        writer.write(connect + frames + b"PING\r\n")
        while (line := await reader.readline()) != b"PONG\r\n":
            assert line and not line.startswith(b"-ERR"), line
    finally:
        writer.close()


async def test_malformed_messages_are_set_aside_and_do_not_stop_the_pipeline(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    database, broker = producer
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        js = broker.client.jetstream()
        rejects_before = int(await pipeline.query("audit", "SELECT count(*) FROM audit_rejects"))
        good = event("good-1")
        garbage = [
            (b"no headers at all", None),
            (b"", {"service": "x"}),
            (good.payload, {**signed(good), "actionTime": "yesterday", "Nats-Msg-Id": "g3"}),
            (good.payload, {**signed(good), "actionType": "explode", "Nats-Msg-Id": "g4"}),
            (good.payload, {**signed(good), "eventId": "not-a-uuid", "Nats-Msg-Id": "g5"}),
        ]
        for payload, headers in garbage:
            await js.publish("Audit", payload, headers=headers)
        # Frames no well-behaved client writes: a header block dressed as a server status
        # (which the consumer must not mistake for one), invalid UTF-8, a 60 kB header.
        raw = [
            b"NATS/1.0 503\r\n\r\n",
            b"NATS/1.0\r\nservice: \xff\xfe\r\n\r\n",
            b"NATS/1.0\r\nservice: " + b"s" * 60_000 + b"\r\n\r\n",
        ]
        await publish_raw(pipeline, [(block, b"odd") for block in raw])
        ids = await produce(database, 5)
        await OutboxRelay(database, broker).relay_once()
        await pipeline.exactly(ids)
        rejects = int(await pipeline.query("audit", "SELECT count(*) FROM audit_rejects"))
        assert rejects - rejects_before == len(garbage) + len(raw)
    finally:
        await audit.stop()


async def test_events_trickling_in_are_stored_promptly_not_redelivered(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    # With the default 30 s ack wait, an event the consumer dropped would only come back after
    # half a minute; each lone event must be stored well before that.
    database, broker = producer
    await pipeline.provision(ack_wait_seconds=30)  # provisioning updates the consumer
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        relay = OutboxRelay(database, broker)
        for _ in range(6):
            ids = await produce(database, 1)
            await relay.relay_once()

            async def stored(ids: list[str] = ids) -> bool:
                return await pipeline.stored(ids) == 1

            await eventually(stored, timeout=5, what="a lone event to be stored")
        consumers = [c for c in audit._started if isinstance(c, AuditConsumer)]
        assert consumers and consumers[0].resubscriptions == 0
    finally:
        await audit.stop()
        await pipeline.provision()  # back to the module's ack wait


async def test_a_deleted_consumer_is_waited_for_then_nothing_is_stored_twice(
    pipeline: Pipeline, producer: tuple[Database, Broker], caplog: pytest.LogCaptureFixture
) -> None:
    database, broker = producer
    audit = await started(build_audit(pipeline.audit_settings()))
    admin = await pipeline.admin()
    try:
        relay = OutboxRelay(database, broker)
        before = await produce(database, 5)
        await relay.relay_once()
        await pipeline.exactly(before)
        await admin.jetstream().delete_consumer(AUDIT_STREAM, AUDIT_CONSUMER)
        # The open pull requests are answered "consumer deleted"; the audit service may not
        # make it again (only provisioning may) and says so once, and keeps waiting.
        after = await produce(database, 5)
        await relay.relay_once()

        async def waiting() -> bool:
            return any("provisioning makes them" in r.getMessage() for r in caplog.records)

        await eventually(waiting, what="the audit consumer to report the missing consumer")
        await pipeline.provision()
        # Delivering from the start of the stream, the consumer hands over old events once
        # more: none is stored twice.
        await pipeline.exactly(before + after)
        consumers = [c for c in audit._started if isinstance(c, AuditConsumer)]
        assert consumers and consumers[0].resubscriptions >= 1
        assert sum("provisioning makes them" in r.getMessage() for r in caplog.records) == 1
    finally:
        await admin.close()
        await audit.stop()


async def test_audit_database_outage_delays_events_without_losing_them(
    pipeline: Pipeline,
) -> None:
    audit = await started(build_audit(pipeline.audit_settings()))
    client = await pipeline.admin()
    try:
        js = client.jetstream()
        before = (await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)).delivered.consumer_seq
        pipeline.pg.stop()
        events = [event(uuid.uuid4().hex) for _ in range(20)]
        for each in events:
            await js.publish("Audit", each.payload, headers=signed(each))

        async def delivered_during_the_outage() -> bool:
            info = await js.consumer_info(AUDIT_STREAM, AUDIT_CONSUMER)
            return info.delivered.consumer_seq >= before + len(events)

        await eventually(delivered_during_the_outage, what="deliveries while the database is down")
        pipeline.pg.start()
        await pipeline.exactly([e.object_id for e in events])  # none lost, none twice
    finally:
        await client.close()
        await audit.stop()


async def test_a_row_the_database_refuses_is_set_aside_and_its_batch_stored(
    pipeline: Pipeline,
) -> None:
    # Every field passes the consumer's checks; the database refuses one row (a constraint
    # added for the test), which must not cost the rest of its batch.
    conn = await asyncpg.connect(pipeline.pg.dsn("audit"))
    await conn.execute(
        "ALTER TABLE audit ADD CONSTRAINT test_no_poison CHECK (objectid <> 'poison') NOT VALID"
    )
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        rejects_before = await conn.fetchval(
            "SELECT count(*) FROM audit_rejects WHERE reason LIKE 'database refused it%'"
        )
        good = [event(uuid.uuid4().hex) for _ in range(10)]
        batch = [*good[:5], event("poison"), *good[5:]]
        frames = [(header_block(signed(e)), e.payload) for e in batch]
        await publish_raw(pipeline, frames)  # one write: usually one batch
        await pipeline.exactly([e.object_id for e in good])
        assert await pipeline.stored(["poison"]) == 0

        async def set_aside() -> bool:
            refused = await conn.fetchval(
                "SELECT count(*) FROM audit_rejects WHERE reason LIKE 'database refused it%'"
            )
            return refused == rejects_before + 1

        await eventually(set_aside, what="the refused row in audit_rejects")
    finally:
        await audit.stop()
        await conn.execute("ALTER TABLE audit DROP CONSTRAINT test_no_poison")
        await conn.close()
