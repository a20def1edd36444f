"""Composition root of the audit service: builds every dependency and hands it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.proto import audit_pb2_grpc
from audit.server.events.authenticity import EventAuthenticator, RejectKind
from audit.server.ingest.consumer import AuditConsumer
from audit.server.ingest.raw_client import RawClient
from audit.server.queries.history_check import HistoryChecker
from audit.server.queries.service import AuditService
from audit.server.servicer import AuditServicer
from audit.server.settings import AuditSettings
from global_utils.grpc.host import ServiceDefinition, ServiceHost
from global_utils.observability.metrics import ServiceMetrics
from global_utils.wiring import service_parts
from user.client.auth import user_service_verifier

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


SERVICE_NAME = "audit"
GRPC_SERVICE = "audit.AuditSrv"


def build(settings: AuditSettings, *, span_exporter: SpanExporter | None = None) -> ServiceHost:
    """The audit service; span_exporter (tests) gets its spans whatever OTEL_* say."""
    parts = service_parts(SERVICE_NAME, settings, span_exporter, client_class=RawClient)
    db = settings.db
    database = parts.database(db.db_connect, db.db_password, db.db_pool_max_size)
    consumer = AuditConsumer(
        database,
        parts.broker,
        EventAuthenticator(settings.ingest.producer_keys),
        batch_size=settings.ingest.consumer_batch_size,
        tracer=parts.tracing.tracer,
    )
    tokens = user_service_verifier(parts, settings.auth)
    service = AuditService(database)
    servicer = AuditServicer(service, HistoryChecker(database))
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: audit_pb2_grpc.add_AuditSrvServicer_to_server(
            servicer, server
        ),
        ready_details=service.storage_mode,
    )
    watch_consumer(parts.metrics, consumer)
    return parts.host(
        definition,
        database,
        verifier=tokens.verifier,
        components=(consumer, *tokens.components),
    )


def watch_consumer(metrics: ServiceMetrics, consumer: AuditConsumer) -> None:
    """The audit pipeline's end: the durable consumer's backlog (shared by every instance)
    and what this instance stored and rejected."""
    metrics.probe("audit consumer lag", consumer.check_lag)
    metrics.gauge(
        "gotemp_audit_consumer_pending_events",
        "Audit messages (an event, or an envelope of several) in the stream not yet delivered"
        " to the consumer (when last asked).",
        lambda: None if consumer.lag is None else consumer.lag.pending,
    )
    metrics.gauge(
        "gotemp_audit_consumer_ack_pending_events",
        "Audit messages (an event, or an envelope of several) delivered and not yet"
        " acknowledged (when last asked).",
        lambda: None if consumer.lag is None else consumer.lag.ack_pending,
    )
    metrics.counter(
        "gotemp_audit_events_stored_total",
        "Audit rows this instance inserted (a redelivered event adds none).",
        lambda: consumer.stored,
    )
    metrics.labelled_counter(
        "gotemp_audit_events_rejected_total",
        "Audit events rejected and kept in audit_rejects (an envelope that cannot be read"
        " counts once), by why.",
        "kind",
        lambda: {kind.value: consumer.rejected[kind] for kind in RejectKind},
    )
