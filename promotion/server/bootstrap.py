"""Composition root of the promotion service: builds every dependency and hands it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from global_utils.grpc.host import ServiceDefinition, ServiceHost
from global_utils.wiring import service_parts
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
    parts = service_parts(SERVICE_NAME, settings, span_exporter)
    db = settings.db
    database = parts.database(db.postgres_connect, db.postgres_password, db.db_pool_max_size)
    relay, emitter = parts.outbox(database, settings.audit_signing)
    tokens = user_service_verifier(parts, settings.auth)
    servicer = PromotionServicer(
        PromotionService(PromotionStorage(database, emitter), promotion_to_proto),
        settings.server.app_language,
    )
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: promotion_pb2_grpc.add_PromotionSrvServicer_to_server(
            servicer, server
        ),
    )
    return parts.host(
        definition, database, verifier=tokens.verifier, components=(relay, *tokens.components)
    )
