"""Composition root of the audit service: builds every dependency and hands it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.proto import audit_pb2_grpc
from audit.server.authenticity import EventAuthenticator, RejectKind
from audit.server.consumer import AuditConsumer
from audit.server.history_check import HistoryChecker, VerifyingAuditServicer
from audit.server.raw_client import RawClient
from audit.server.service import AuditService
from audit.server.settings import AuditSettings
from global_utils.broker import Broker
from global_utils.db import Database
from global_utils.grpc_host import ServiceDefinition, ServiceHost
from global_utils.http_side import HttpSidePort
from global_utils.metrics import ServiceMetrics, watch_database, watch_token_cache
from global_utils.tracing import Tracing
from user.client.auth import user_service_verifier

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


SERVICE_NAME = "audit"
GRPC_SERVICE = "audit.AuditSrv"


def build(settings: AuditSettings, *, span_exporter: SpanExporter | None = None) -> ServiceHost:
    """The audit service; span_exporter (tests) gets its spans whatever OTEL_* say."""
    metrics = ServiceMetrics(settings)
    tracing = Tracing.configured(settings, SERVICE_NAME, span_exporter)
    database = Database(
        settings.db_connect,
        password=settings.db_password or None,
        max_size=settings.db_pool_max_size,
        connection_class=tracing.connection_class(),
    )
    broker = Broker(
        settings.broker_url,
        name=SERVICE_NAME,
        client_class=RawClient,
        access=settings.broker_access(SERVICE_NAME),
    )
    consumer = AuditConsumer(
        database,
        broker,
        EventAuthenticator(settings.producer_keys),
        batch_size=settings.consumer_batch_size,
        tracer=tracing.tracer,
    )
    registry = settings.create_registry()
    verifier, users = user_service_verifier(
        registry, settings, [*tracing.client_interceptors(), *metrics.client_interceptors()]
    )
    service = AuditService(database)
    servicer = VerifyingAuditServicer(service, HistoryChecker(database))
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: audit_pb2_grpc.add_AuditSrvServicer_to_server(
            servicer, server
        ),
        ready_details=service.storage_mode,
    )
    metrics.initialize_services(GRPC_SERVICE)
    watch_database(metrics, database)
    watch_token_cache(metrics, verifier.cache)
    watch_consumer(metrics, consumer)
    return ServiceHost(
        definition,
        settings,
        database=database,
        registry=registry,
        verifier=verifier,
        components=(tracing, broker, consumer, users, metrics.prober(after=database.wait_ready)),
        http=HttpSidePort(settings.http_address, metrics.routes()),
        # tracing outermost: its span covers the call as the others see it
        interceptors=[*tracing.server_interceptors(), *metrics.server_interceptors()],
    )


def watch_consumer(metrics: ServiceMetrics, consumer: AuditConsumer) -> None:
    """The audit pipeline's end: the durable consumer's backlog (shared by every instance)
    and what this instance stored and rejected."""
    metrics.probe("audit consumer lag", consumer.check_lag)
    metrics.gauge(
        "gotemp_audit_consumer_pending_events",
        "Audit events in the stream not yet delivered to the consumer (when last asked).",
        lambda: None if consumer.lag is None else consumer.lag.pending,
    )
    metrics.gauge(
        "gotemp_audit_consumer_ack_pending_events",
        "Audit events delivered and not yet acknowledged (when last asked).",
        lambda: None if consumer.lag is None else consumer.lag.ack_pending,
    )
    metrics.counter(
        "gotemp_audit_events_stored_total",
        "Audit rows this instance inserted (a redelivered event adds none).",
        lambda: consumer.stored,
    )
    metrics.labelled_counter(
        "gotemp_audit_events_rejected_total",
        "Deliveries terminated and kept in audit_rejects, by why.",
        "kind",
        lambda: {kind.value: consumer.rejected[kind] for kind in RejectKind},
    )
