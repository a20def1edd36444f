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
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

import nats
from audit.server.bootstrap import build as build_audit
from audit.server.events.authenticity import EventAuthenticator, ProducerKey
from audit.server.events.wire import ReceivedEvent, header_block, parse_header_block
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
from global_utils.events.audit_event import AUDIT_STREAM, ActionType, AuditEvent, AuditHeader
from global_utils.events.envelope import DEFAULT_ENVELOPE_EVENTS, envelope_headers, envelope_version
from global_utils.events.envelope import decode as decode_envelope
from global_utils.events.envelope import encode as encode_envelope
from global_utils.events.signing import EventSigner
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.messaging.broker import Broker
from global_utils.messaging.outbox import NOTIFY_CHANNEL, OutboxAuditEmitter, OutboxRelay
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

    async def audit_stores_exactly(self, ids: list[str]) -> None:
        """exactly(ids) with an audit service started for it, and stopped after."""
        audit = await started(build_audit(self.audit_settings()))
        try:
            await self.exactly(ids)
        finally:
            await audit.stop()


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


async def produce(database: Database, n: int, tracer: Tracer | None = None) -> list[str]:
    """Commits n events into the user database's outbox, as a service change would (with
    tracer, each row keeps the current trace's traceparent)."""
    ids = [uuid.uuid4().hex for _ in range(n)]
    async with UnitOfWork(database, OutboxAuditEmitter(SIGNER, tracer=tracer)) as uow:
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

    async def _mark(self, conn: asyncpg.Connection, acked: list[Any], claimed: list[Any]) -> None:
        raise RuntimeError("relay killed")


async def crashed_relays_lease_runs_out(database: Database) -> None:
    """Moves the crashed relay's lease into the past, as time would (15 s at the least)."""
    async with database.connection() as conn:
        await conn.execute(
            "UPDATE audit_outbox SET leaseuntil = clock_timestamp() - interval '1 second'"
            " WHERE sentat IS NULL AND leaseuntil IS NOT NULL"
        )


@pytest.mark.parametrize("envelope_events", [1, DEFAULT_ENVELOPE_EVENTS])
async def test_republish_after_a_relay_crash_is_deduplicated(
    pipeline: Pipeline, producer: tuple[Database, Broker], envelope_events: int
) -> None:
    """Re-sent as it was (a message per event, or one envelope): JetStream drops the copy."""
    database, broker = producer
    ids = await produce(database, 10)
    admin = await pipeline.admin()
    try:
        js = admin.jetstream()
        before = (await js.stream_info(AUDIT_STREAM)).state.messages
        with pytest.raises(RuntimeError, match="relay killed"):
            await CrashBeforeMarking(database, broker, envelope_events=envelope_events).relay_once()
        assert await pipeline.pending_in_outbox() == 10  # nothing was marked sent
        relay = OutboxRelay(database, broker, envelope_events=envelope_events)
        assert await relay.relay_once() == 0  # leased to the crashed relay: not sent twice now
        await crashed_relays_lease_runs_out(database)
        assert await relay.relay_once() == 10  # published again
        assert await pipeline.pending_in_outbox() == 0
        messages = 10 if envelope_events == 1 else 1
        assert (await js.stream_info(AUDIT_STREAM)).state.messages == before + messages  # not 2x
    finally:
        await admin.close()
    await pipeline.audit_stores_exactly(ids)


async def test_a_failed_publish_gives_its_rows_back_at_once(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """The acknowledged rows are marked sent, the others are not left leased: the next pass
    (after the relay's short back-off, not the lease's end) publishes them."""
    database, broker = producer
    ids = await produce(database, 6)

    class HalfAnswered(OutboxRelay):
        async def _publish(
            self, rows: list[asyncpg.Record]
        ) -> tuple[list[Any], BaseException | None]:
            acked, _ = await super()._publish(rows[:3])  # these really went out
            return acked, RuntimeError("JetStream did not answer")

    with pytest.raises(RuntimeError, match="did not answer"):
        await HalfAnswered(database, broker, envelope_events=1).relay_once()
    assert await pipeline.pending_in_outbox() == 3
    assert await OutboxRelay(database, broker).relay_once() == 3
    await pipeline.audit_stores_exactly(ids)


async def test_relays_claiming_at_once_share_the_rows_without_overlap(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    database, broker = producer
    ids = await produce(database, 40)
    claimed: list[list[Any]] = []

    class Recording(OutboxRelay):
        async def _publish(
            self, rows: list[asyncpg.Record]
        ) -> tuple[list[Any], BaseException | None]:
            claimed.append([row["eventid"] for row in rows])
            return await super()._publish(rows)

    relays = [Recording(database, broker, batch_size=20) for _ in range(3)]
    counts = await asyncio.gather(*(relay.relay_once() for relay in relays))
    assert sum(counts) == 40, counts
    every = [event_id for batch in claimed for event_id in batch]
    assert len(every) == len(set(every)) == 40
    assert await pipeline.pending_in_outbox() == 0
    await pipeline.audit_stores_exactly(ids)


async def test_a_change_and_its_events_in_one_statement_are_kept_or_dropped_together(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """AuditEmitter.record with changes (how a login stores its outcome): no transaction, and
    still the change and its event together or neither."""
    database, broker = producer
    emitter = OutboxAuditEmitter(SIGNER)
    email = f"one-statement-{uuid.uuid4().hex[:8]}@example.com"
    add = [
        "added AS (INSERT INTO login_throttle (email, windowstart, failures) VALUES ($1, now(), 1))"
    ]
    row = "SELECT count(*) FROM login_throttle WHERE email = $1"
    ids = [uuid.uuid4().hex]
    async with database.connection() as conn:
        await emitter.record(conn, [event(ids[0])], add, [email])
        assert await conn.fetchval(row, email) == 1
        assert await pipeline.pending_in_outbox() == 1
        with pytest.raises(asyncpg.UniqueViolationError):  # the same row again
            await emitter.record(conn, [event(uuid.uuid4().hex)], add, [email])
        assert await pipeline.pending_in_outbox() == 1  # its event went with it
        # changes without events run on their own
        await emitter.record(
            conn, [], ["gone AS (DELETE FROM login_throttle WHERE email = $1)"], [email]
        )
        assert await conn.fetchval(row, email) == 0
        assert await pipeline.pending_in_outbox() == 1
    assert await OutboxRelay(database, broker).relay_once() == 1
    await pipeline.audit_stores_exactly(ids)


async def test_an_envelope_re_sent_made_up_differently_is_stored_once(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """After a crash the same rows may go out in other envelopes (another relay instance,
    another size): JetStream cannot tell, the audit table's unique key does."""
    database, broker = producer
    ids = await produce(database, 10)
    admin = await pipeline.admin()
    try:
        js = admin.jetstream()
        before = (await js.stream_info(AUDIT_STREAM)).state.messages
        with pytest.raises(RuntimeError, match="relay killed"):
            await CrashBeforeMarking(database, broker).relay_once()  # one envelope of 10
        await crashed_relays_lease_runs_out(database)
        assert await OutboxRelay(database, broker, envelope_events=4).relay_once() == 10
        # 4 + 4 + 2 again: every event twice in the stream
        assert (await js.stream_info(AUDIT_STREAM)).state.messages == before + 1 + 3
    finally:
        await admin.close()
    await pipeline.audit_stores_exactly(ids)


def events_of(delivery: Delivery) -> list[tuple[bytes | None, bytes]]:
    """A delivery's events (header block, payload): an envelope's, or the message itself."""
    if envelope_version(delivery.headers) is None:
        return [(delivery.headers, delivery.data)]
    return list(decode_envelope(delivery.data))


class CrashBeforeAck(AuditConsumer):
    """A consumer that dies once after committing part of a batch (every other event of it,
    so an envelope is partly stored), before acknowledging anything: the batch stays
    unacknowledged, as when the process is killed between commit and ack."""

    crashed = False

    async def handle(self, deliveries: list[Delivery]) -> None:
        events = [each for d in deliveries for each in events_of(d)]
        if self.crashed or len(events) < 2:  # a lone event cannot be stored in part
            return await super().handle(deliveries)
        rows = [ReceivedEvent.from_header_block(block, data) for block, data in events[::2]]
        async with self._db.connection() as conn:
            await AuditRepository(conn).insert_events(rows)
        self.crashed = True  # and no ack


@pytest.mark.parametrize("envelope_events", [1, DEFAULT_ENVELOPE_EVENTS])
async def test_redelivery_after_a_consumer_crash_is_stored_once(
    pipeline: Pipeline, producer: tuple[Database, Broker], envelope_events: int
) -> None:
    database, broker = producer
    ids = await produce(database, 10)
    await OutboxRelay(database, broker, envelope_events=envelope_events).relay_once()
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
            await pipeline.exactly(ids)  # redelivered after ack_wait, completed, none twice
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


# ---- envelopes: several events in one message (global_utils/events/envelope.py)


async def stream_events(pipeline: Pipeline, after: int) -> tuple[int, list[str]]:
    """The messages in the stream after sequence after, and the object ids of their events in
    stream order (an envelope's in its order)."""
    admin = await pipeline.admin()
    try:
        js = admin.jetstream()
        last = (await js.stream_info(AUDIT_STREAM)).state.last_seq
        object_ids = []
        for seq in range(after + 1, last + 1):
            message = await js.get_msg(AUDIT_STREAM, seq)
            block = header_block(message.headers or {})
            delivery = Delivery(b"Audit", b"", block, message.data or b"")
            for event_block, _ in events_of(delivery):
                object_ids.append(parse_header_block(event_block)["objectId"])
        return last - after, object_ids
    finally:
        await admin.close()


async def last_seq(pipeline: Pipeline) -> int:
    admin = await pipeline.admin()
    try:
        return (await admin.jetstream().stream_info(AUDIT_STREAM)).state.last_seq
    finally:
        await admin.close()


async def test_a_relay_sends_its_rows_as_envelopes_in_the_outbox_order(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    database, broker = producer
    ids: list[str] = []
    for _ in range(5):  # five units of work: the outbox orders them by commit, then event id
        ids += await produce(database, 50)
    outbox_order = await pipeline_outbox_order(pipeline, ids)
    after = await last_seq(pipeline)
    relay = OutboxRelay(database, broker, batch_size=500, envelope_events=100)
    assert await relay.relay_once() == 250
    messages, stream_order = await stream_events(pipeline, after)
    assert messages == 3  # 100 + 100 + 50
    assert stream_order == outbox_order  # events of one object keep their order
    await pipeline.audit_stores_exactly(ids)


async def pipeline_outbox_order(pipeline: Pipeline, object_ids: list[str]) -> list[str]:
    """object_ids in the order the relay claims their outbox rows."""
    conn = await asyncpg.connect(pipeline.pg.dsn("appuser"))
    try:
        rows = await conn.fetch(
            "SELECT headers->>'objectId' AS objectid FROM audit_outbox"
            " WHERE sentat IS NULL AND headers->>'objectId' = ANY($1)"
            " ORDER BY createdat, eventid",
            object_ids,
        )
        return [row["objectid"] for row in rows]
    finally:
        await conn.close()


def signed_block(e: AuditEvent, **changes: str) -> tuple[bytes, bytes]:
    """e as an envelope holds it (header block, payload), its headers changed after signing."""
    return header_block({**signed(e), **changes}), e.payload


async def test_a_bad_event_in_an_envelope_is_rejected_alone_and_the_rest_stored(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    _, broker = producer
    audit = await started(build_audit(pipeline.audit_settings()))
    conn = await asyncpg.connect(pipeline.pg.dsn("audit"))
    try:
        good = [event(uuid.uuid4().hex) for _ in range(6)]
        altered, unreadable = event("altered-" + uuid.uuid4().hex), event(uuid.uuid4().hex)
        entries = [signed_block(e) for e in good[:3]]
        entries.append(signed_block(altered))
        entries[-1] = (entries[-1][0], entries[-1][1] + b"\x00")  # its MAC no longer matches
        entries.append(signed_block(unreadable, actionTime="yesterday"))
        entries += [signed_block(e) for e in good[3:]]
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_rejects")
        await broker.client.jetstream().publish(
            "Audit", encode_envelope(entries), headers=envelope_headers("envelope-bad-one")
        )
        await pipeline.exactly([e.object_id for e in good])  # and the envelope acknowledged
        assert await pipeline.stored([altered.object_id, unreadable.object_id]) == 0
        rejects = await conn.fetch(
            "SELECT kind, headers->>'objectId' AS objectid, payload FROM audit_rejects"
            " WHERE id > $1 ORDER BY id",
            before,
        )
        # each kept as the event it is (its own headers and payload), not as the envelope
        assert [(r["kind"], r["objectid"]) for r in rejects] == [
            ("altered", altered.object_id),
            ("malformed", unreadable.object_id),
        ]
        assert rejects[0]["payload"] == altered.payload + b"\x00"
    finally:
        await conn.close()
        await audit.stop()


async def test_an_envelope_this_consumer_cannot_read_is_set_aside_whole(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """An unknown version, or a body that is not an envelope: nothing of it stored, one reject
    each (terminated, not redelivered), and the pipeline goes on."""
    database, broker = producer
    audit = await started(build_audit(pipeline.audit_settings()))
    conn = await asyncpg.connect(pipeline.pg.dsn("audit"))
    try:
        inside = [event(uuid.uuid4().hex) for _ in range(3)]
        body = encode_envelope([signed_block(e) for e in inside])
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_rejects")
        js = broker.client.jetstream()
        future = {**envelope_headers("envelope-v2"), AuditHeader.ENVELOPE.value: "2"}
        await js.publish("Audit", body, headers=future)
        await js.publish("Audit", body[:-1], headers=envelope_headers("envelope-truncated"))
        await js.publish("Audit", body + b"\x00", headers=envelope_headers("envelope-longer"))
        ids = await produce(database, 5)
        await OutboxRelay(database, broker).relay_once()
        await pipeline.exactly(ids)
        assert await pipeline.stored([e.object_id for e in inside]) == 0
        rejects = await conn.fetch(
            "SELECT kind, reason, payload FROM audit_rejects WHERE id > $1", before
        )
        # (batches in flight side by side: in any order)
        by_payload = {bytes(r["payload"]): r for r in rejects}
        assert len(rejects) == 3 and {r["kind"] for r in rejects} == {"malformed"}
        # kept whole, so nothing is lost
        assert set(by_payload) == {body, body[:-1], body + b"\x00"}
        assert "envelope version '2' unknown" in by_payload[body]["reason"]
        assert "not an audit envelope" in by_payload[body[:-1]]["reason"]
        assert "bytes after" in by_payload[body + b"\x00"]["reason"]
    finally:
        await conn.close()
        await audit.stop()


async def test_messages_of_one_event_and_envelopes_are_read_side_by_side(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """A rolling upgrade: relays of the previous release (a message per event, as
    AUDIT_ENVELOPE_EVENTS=1 sends them) and new ones publish into the same stream."""
    database, broker = producer
    after = await last_seq(pipeline)
    single = await produce(database, 7)
    assert await OutboxRelay(database, broker, envelope_events=1).relay_once() == 7
    enveloped = await produce(database, 7)
    assert await OutboxRelay(database, broker, envelope_events=3).relay_once() == 7
    messages, _ = await stream_events(pipeline, after)
    assert messages == 7 + 3  # 3 + 3 + 1: an envelope of one is that event's own message
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        await pipeline.exactly(single + enveloped)
    finally:
        await audit.stop()


async def test_each_event_of_an_envelope_carries_its_own_publish_span(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """Traced changes relayed in one envelope: one PRODUCER span per event, a child of that
    event's change, and the event's traceparent names it (the audit side continues from it)."""
    database, broker = producer
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    changes = {}
    for _ in range(3):  # three traced units of work
        with tracer.start_as_current_span("change") as change:
            [object_id] = await produce(database, 1, tracer=tracer)
            changes[object_id] = change.get_span_context()
    after = await last_seq(pipeline)
    assert await OutboxRelay(database, broker, tracer=tracer).relay_once() == 3
    admin = await pipeline.admin()
    try:
        message = await admin.jetstream().get_msg(AUDIT_STREAM, after + 1)
    finally:
        await admin.close()
    assert (message.headers or {}).get(AuditHeader.ENVELOPE.value) == "1"
    publishes = {
        s.context.span_id: s for s in exporter.get_finished_spans() if s.name == "Audit publish"
    }
    for block, _ in decode_envelope(message.data or b""):
        headers = parse_header_block(block)
        _, trace_id, span_id, _ = headers["traceparent"].split("-")
        publish = publishes[int(span_id, 16)]
        assert publish.kind is SpanKind.PRODUCER
        change = changes[headers["objectId"]]
        assert int(trace_id, 16) == change.trace_id == publish.context.trace_id
        assert publish.attributes is not None
        assert publish.attributes["messaging.message.id"] == headers["eventId"]
    assert len(publishes) == 3


async def test_envelopes_stay_within_their_byte_bound(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """Events too large to share 512 KiB go in envelopes of fewer (here: alone), never past
    the bound, and are stored like the rest."""
    database, broker = producer
    large = [
        AuditEvent(
            service="pipeline-test",
            action_func="AfterCreateUser",
            action_type=ActionType.INSERT,
            object_name="user",
            object_id=uuid.uuid4().hex,
            performed_by="1",
            payload_type="user.User",
            payload=bytes(200 * 1024),
        )
        for _ in range(5)
    ]
    async with UnitOfWork(database, OutboxAuditEmitter(SIGNER)) as uow:
        for each in large:
            uow.emit(each)
        await uow.commit()
    after = await last_seq(pipeline)
    assert await OutboxRelay(database, broker).relay_once() == 5
    messages, events = await stream_events(pipeline, after)
    assert messages == 3 and len(events) == 5  # 2 + 2 + 1: 400 KiB fits, 600 KiB does not
    audit = await started(build_audit(pipeline.audit_settings()))
    try:
        await pipeline.exactly([e.object_id for e in large])
    finally:
        await audit.stop()


async def test_a_commit_wakes_other_relays_but_not_its_own_twice(
    pipeline: Pipeline, producer: tuple[Database, Broker]
) -> None:
    """The NOTIFY of a commit names the committing process's relay, which committed() woke
    already: that relay does not take it for a second wake-up (a pass finding nothing), every
    other relay does; a NOTIFY from no relay (a revocation's) wakes them all."""
    database, broker = producer
    own, other = OutboxRelay(database, broker), OutboxRelay(database, broker)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await database.connect()
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *n: heard.put_nowait(n[3]))
        async with UnitOfWork(database, OutboxAuditEmitter(SIGNER, own)) as uow:
            uow.emit(event(uuid.uuid4().hex))
            await uow.commit()
        payload = await asyncio.wait_for(heard.get(), 10)
    finally:
        await listener.close()
    assert payload == own.notice
    assert not own.notified(payload)
    assert other.notified(payload)
    assert own.notified("") and other.notified("")
