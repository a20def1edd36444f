"""The audit consumer's batch span under ratio sampling: kept with the traces of the events it
stores, on a real NATS server and PostgreSQL (a sampler that keeps no new root stands for a
small ratio)."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

import nats
from audit.server.events.authenticity import EventAuthenticator, parse_producer_keys
from audit.server.ingest.consumer import AuditConsumer
from audit.server.ingest.raw_client import RawClient
from devtools.databases import runtime_dsn, runtime_password
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.stack import AUDIT_DATABASE, EmbeddedNats, EmbeddedPostgres
from global_utils.data.database import Database
from global_utils.events.audit_event import ActionType, AuditEvent, Subject
from global_utils.events.signing import EventSigner
from global_utils.messaging.broker import Broker
from provision.broker import provision_broker
from tests.helpers import eventually


async def test_the_insert_span_stays_with_a_sampled_events_trace(
    stack_dir: Path, nats_keys: NatsKeys, postgres: EmbeddedPostgres, audit_keys: AuditKeys
) -> None:
    server = EmbeddedNats(
        stack_dir / f"insert-span-{uuid.uuid4().hex[:6]}", env=nats_keys.server_env()
    ).start()
    url = f"nats://{server.address}"
    await provision_broker(url, nats_keys.access("admin"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # new roots: never kept
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    database = Database(runtime_dsn(postgres, "audit"), password=runtime_password("audit"))
    broker = Broker(url, name="audit", client_class=RawClient, access=nats_keys.access("audit"))
    keys = parse_producer_keys(audit_keys.producer_keys_file.read_text())
    consumer = AuditConsumer(
        database, broker, EventAuthenticator(keys), tracer=provider.get_tracer("test")
    )
    producer = await nats.connect(url, **nats_keys.access("user").connect_options())
    event = AuditEvent(
        service="user",
        action_func="AfterUpdateUser",
        action_type=ActionType.UPDATE,
        object_name="insert-span-test",
        object_id=uuid.uuid4().hex,
        performed_by="1",
        payload_type="",
        payload=b"",
    )
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    signer = EventSigner(audit_keys.key_id("user"), audit_keys.key("user").encode())
    headers = signer.sign(event.headers(), event.payload)
    headers["traceparent"] = f"00-{trace_id}-{parent_id}-01"  # a trace its producer kept
    try:
        for part in (database, broker, consumer):
            await part.start()
        await producer.jetstream().publish(Subject.AUDIT.value, event.payload, headers=headers)

        async def stored() -> bool:
            conn = await asyncpg.connect(postgres.dsn(AUDIT_DATABASE))
            try:
                found = "SELECT count(*) FROM audit WHERE objectid = $1"
                return int(await conn.fetchval(found, event.object_id)) == 1
            finally:
                await conn.close()

        await eventually(stored, timeout=20, what="the traced event stored")
    finally:
        await producer.close()
        for part in (consumer, broker, database):
            await part.stop()
        server.stop()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    process, insert = spans["Audit process"], spans.get("audit insert")
    assert process.context is not None and process.context.trace_id == int(trace_id, 16)
    # not a root the sampler would judge on its own: a child of the event's span, in its trace
    assert insert is not None, sorted(spans)
    assert insert.parent is not None and insert.parent.span_id == process.context.span_id
    assert [link.context.span_id for link in insert.links] == [process.context.span_id]
