"""One change's trace end to end: RPC -> PostgreSQL -> outbox -> NATS -> audit -> audit table,
caught by an in-memory exporter that the user and audit services (in-process, on a stack of
this module's own, so no other instance relays or consumes its events) both export to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from audit.client.cli import line
from audit.proto import audit_pb2, audit_pb2_grpc
from audit.server.bootstrap import build as build_audit
from audit.server.settings import AuditSettings
from devtools.databases import provision_databases, service_db_settings
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.nats_stack import start_nats
from devtools.stack import EmbeddedPostgres
from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.observability.rpc_tracing import ClientTracingInterceptor
from global_utils.observability.tracing_setup import TracingSettings, tracer_provider
from tests.helpers import eventually, new_user, started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build as build_user
from user.server.settings import UserSettings


@dataclass
class TracedSuite:
    spans: InMemorySpanExporter
    user: ServiceHost
    audit: ServiceHost


@pytest.fixture(scope="module")
async def suite(
    stack_dir: Path, jwt_key: str, audit_keys: AuditKeys, nats_keys: NatsKeys
) -> AsyncIterator[TracedSuite]:
    """The user and audit services tracing into one exporter, on their own PostgreSQL and
    NATS."""
    pg = EmbeddedPostgres(stack_dir / "tracing-pg", durable=False).start()
    provision_databases(pg)  # the migrations, and the services as their runtime roles
    broker = start_nats(stack_dir / "tracing-nats", nats_keys)  # provisioned
    common = {
        "micro_server_address": "127.0.0.1:0",
        "micro_broker_address": broker.address,
        "mdns_interfaces": "127.0.0.1",
        "mdns_service_type": f"_gtt-{uuid.uuid4().hex[:8]}._tcp.local.",
        "shutdown_grace_seconds": 1,
    }
    spans = InMemorySpanExporter()
    user = build_user(
        UserSettings(
            **service_db_settings(pg, "user"),
            jwt_private_key=jwt_key,
            bcrypt_rounds=4,
            **audit_keys.producer_settings("user"),
            **nats_keys.client_settings("user"),
            **common,
        ),
        span_exporter=spans,
    )
    audit = build_audit(
        AuditSettings(
            **service_db_settings(pg, "audit"),
            **audit_keys.consumer_settings(),
            **nats_keys.client_settings("audit"),
            **common,
        ),
        span_exporter=spans,
    )
    try:
        await started(user)
        await started(audit)
        yield TracedSuite(spans, user, audit)
    finally:
        await audit.stop()
        await user.stop()
        broker.stop()
        pg.stop()


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans if s.context is not None}


def parent_of(span: ReadableSpan, index: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return index.get(span.parent.span_id) if span.parent is not None else None


def child(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> ReadableSpan:
    assert parent.context is not None
    found = [
        s
        for s in spans
        if s.name == name and s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def service(span: ReadableSpan) -> object:
    return span.resource.attributes["service.name"]


async def test_one_create_user_is_one_trace_from_rpc_to_the_audit_table(
    suite: TracedSuite,
) -> None:
    spans = suite.spans
    client_provider = tracer_provider(TracingSettings(), "test-client", spans)
    assert client_provider is not None
    interceptor = ClientTracingInterceptor(client_provider.get_tracer("test"))
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{suite.user.port}", interceptors=[interceptor]
    ) as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        token = (await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        created = await stub.CreateUser(new_user(), metadata=bearer_metadata(token))
    user_id = str(created.user.id)

    def insert_spans() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.name == "audit insert"]

    rpc = next(
        s
        for s in spans.get_finished_spans()
        if s.name == "user.UserSrv/CreateUser" and s.kind is SpanKind.CLIENT
    )
    assert rpc.context is not None
    trace_id = rpc.context.trace_id

    def traced() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id
        ]

    async def stored() -> bool:
        process = [s for s in traced() if s.name == "Audit process"]
        return bool(process) and any(
            link.context.span_id == process[0].context.span_id  # type: ignore[union-attr]  # ended spans have contexts
            for insert in insert_spans()
            for link in insert.links
        )

    await eventually(stored, timeout=30, what="the audit service storing the traced event")
    finished = traced()
    index = by_id(finished)

    # RPC: the client's span, the user service's server span under it
    server = child(finished, rpc, "user.UserSrv/CreateUser")
    assert server.kind is SpanKind.SERVER and service(server) == "user"
    # PostgreSQL: the change's statements and the outbox write inside the call
    for statement in ("BEGIN", "INSERT appuser", "COMMIT"):
        assert child(finished, server, statement).kind is SpanKind.CLIENT
    outbox = child(finished, server, "audit outbox write")
    child(finished, outbox, "INSERT audit_outbox")
    # the relay, later and in another task, continues from the stored traceparent
    publish = child(finished, outbox, "Audit publish")
    assert publish.kind is SpanKind.PRODUCER and service(publish) == "user"
    # NATS -> audit: the event's span in the audit service, a child of the publish
    process = child(finished, publish, "Audit process")
    assert process.kind is SpanKind.CONSUMER and service(process) == "audit"
    assert process.attributes is not None
    assert process.attributes["gotemp.audit.service"] == "user"
    # every span of the chain hangs from the client's root
    for span in finished:
        ancestor: ReadableSpan | None = span
        while ancestor is not None and ancestor is not rpc:
            ancestor = parent_of(ancestor, index)
        assert ancestor is rpc, span.name

    # the audit table: the batch's insert links to every event it stored, this one among them
    assert process.context is not None
    [insert] = [
        s
        for s in insert_spans()
        if any(link.context.span_id == process.context.span_id for link in s.links)
    ]
    assert service(insert) == "audit"
    assert all(link.context.trace_flags.sampled for link in insert.links)
    assert insert.context is not None
    insert_children = [
        s.name
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == insert.context.span_id
    ]
    assert "COPY audit" in insert_children, insert_children

    # the audit record keeps the trace id, and the audit API returns it
    async with grpc.aio.insecure_channel(f"127.0.0.1:{suite.audit.port}") as channel:
        records = await audit_pb2_grpc.AuditSrvStub(channel).GetAuditRecords(
            audit_pb2.SearchParams(object_name="user", object_id=user_id),
            metadata=bearer_metadata(token),
        )
    [record] = records.record
    assert record.trace_id == f"{trace_id:032x}"
    assert f"trace {record.trace_id}" in line(record)  # as the audit CLI prints it
    client_provider.shutdown()
