"""Composition root of the product service: builds every dependency and hands it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from global_utils.grpc.host import ServiceDefinition, ServiceHost
from global_utils.wiring import service_parts
from product.proto import product_pb2_grpc
from product.server.service import SERVICE_NAME, ProductService
from product.server.servicer import ProductServicer, product_to_proto
from product.server.settings import ProductSettings
from product.server.unit_of_work import ProductStorage
from user.client.auth import user_service_verifier

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


GRPC_SERVICE = "product.ProductSrv"


def build(settings: ProductSettings, *, span_exporter: SpanExporter | None = None) -> ServiceHost:
    """The product service; span_exporter (tests) gets its spans whatever OTEL_* say."""
    parts = service_parts(SERVICE_NAME, settings, span_exporter)
    db = settings.db
    database = parts.database(db.postgres_connect, db.postgres_password, db.db_pool_max_size)
    relay, emitter = parts.outbox(database, settings.audit_signing)
    tokens = user_service_verifier(parts, settings.auth)
    servicer = ProductServicer(
        ProductService(ProductStorage(database, emitter), product_to_proto),
        settings.server.app_language,
    )
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: product_pb2_grpc.add_ProductSrvServicer_to_server(
            servicer, server
        ),
    )
    return parts.host(
        definition, database, verifier=tokens.verifier, components=(relay, *tokens.components)
    )
