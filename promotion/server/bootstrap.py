"""Composition root of the promotion service: builds every dependency and hands it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from global_utils.broker import Broker
from global_utils.db import Database
from global_utils.grpc_host import ServiceDefinition, ServiceHost
from global_utils.http_side import HttpSidePort
from global_utils.metrics import ServiceMetrics, watch_database, watch_outbox, watch_token_cache
from global_utils.outbox import OutboxAuditEmitter, OutboxRelay
from global_utils.tracing import Tracing
from promotion.proto import promotion_pb2_grpc
from promotion.server.service import SERVICE_NAME, PromotionService
from promotion.server.servicer import PromotionServicer, promotion_to_proto
from promotion.server.settings import PromotionSettings
from promotion.server.unit_of_work import PromotionStorage
from user.client.auth import user_service_verifier

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


GRPC_SERVICE = "promotion.PromotionSrv"


def build(settings: PromotionSettings, *, span_exporter: SpanExporter | None = None) -> ServiceHost:
    """The promotion service; span_exporter (tests) gets its spans whatever OTEL_* say."""
    metrics = ServiceMetrics(settings)
    tracing = Tracing.configured(settings, SERVICE_NAME, span_exporter)
    database = Database(
        settings.postgres_connect,
        password=settings.postgres_password or None,
        max_size=settings.db_pool_max_size,
        connection_class=tracing.connection_class(),
    )
    broker = Broker(
        settings.broker_url, name=SERVICE_NAME, access=settings.broker_access(SERVICE_NAME)
    )
    relay = OutboxRelay(database, broker, tracer=tracing.tracer)
    emitter = OutboxAuditEmitter(settings.audit_signer(), relay, tracer=tracing.tracer)
    registry = settings.create_registry()
    verifier, users = user_service_verifier(
        registry, settings, [*tracing.client_interceptors(), *metrics.client_interceptors()]
    )
    servicer = PromotionServicer(
        PromotionService(PromotionStorage(database, emitter), promotion_to_proto),
        settings.app_language,
    )
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: promotion_pb2_grpc.add_PromotionSrvServicer_to_server(
            servicer, server
        ),
    )
    metrics.initialize_services(GRPC_SERVICE)
    watch_database(metrics, database)
    watch_outbox(metrics, relay)
    watch_token_cache(metrics, verifier.cache)
    return ServiceHost(
        definition,
        settings,
        database=database,
        registry=registry,
        verifier=verifier,
        components=(tracing, broker, relay, users, metrics.prober(after=database.wait_ready)),
        http=HttpSidePort(settings.http_address, metrics.routes()),
        # tracing outermost: its span covers the call as the others see it
        interceptors=[*tracing.server_interceptors(), *metrics.server_interceptors()],
    )
