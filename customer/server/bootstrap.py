"""Composition root of the customer service: builds every dependency and hands it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from customer.proto import customer_pb2_grpc
from customer.server.service import SERVICE_NAME, CustomerService
from customer.server.servicer import CustomerServicer, customer_to_proto
from customer.server.settings import CustomerSettings
from customer.server.unit_of_work import CustomerStorage
from global_utils.grpc.host import ServiceDefinition, ServiceHost
from global_utils.wiring import service_parts
from user.client.auth import user_service_verifier

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


GRPC_SERVICE = "customer.CustomerSrv"


def build(settings: CustomerSettings, *, span_exporter: SpanExporter | None = None) -> ServiceHost:
    """The customer service; span_exporter (tests) gets its spans whatever OTEL_* say."""
    parts = service_parts(SERVICE_NAME, settings, span_exporter)
    db = settings.db
    database = parts.database(db.postgres_connect, db.postgres_password, db.db_pool_max_size)
    relay, emitter = parts.outbox(database, settings.audit_signing)
    tokens = user_service_verifier(parts, settings.auth)
    servicer = CustomerServicer(
        CustomerService(CustomerStorage(database, emitter), customer_to_proto),
        settings.server.app_language,
    )
    definition = ServiceDefinition(
        name=SERVICE_NAME,
        grpc_service=GRPC_SERVICE,
        add_to_server=lambda server: customer_pb2_grpc.add_CustomerSrvServicer_to_server(
            servicer, server
        ),
    )
    return parts.host(
        definition, database, verifier=tokens.verifier, components=(relay, *tokens.components)
    )
