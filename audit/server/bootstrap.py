"""Composition root of the audit service: builds every dependency and hands it in."""

from __future__ import annotations

from audit.proto import audit_pb2_grpc
from audit.server.authenticity import EventAuthenticator
from audit.server.consumer import AuditConsumer
from audit.server.history_check import HistoryChecker, VerifyingAuditServicer
from audit.server.raw_client import RawClient
from audit.server.service import AuditService
from audit.server.settings import AuditSettings
from global_utils.broker import Broker
from global_utils.db import Database
from global_utils.grpc_host import ServiceDefinition, ServiceHost
from user.client.auth import user_service_verifier

SERVICE_NAME = "audit"
GRPC_SERVICE = "audit.AuditSrv"


def build(settings: AuditSettings) -> ServiceHost:
    database = Database(settings.db_connect, max_size=settings.db_pool_max_size)
    broker = Broker(settings.broker_url, name=SERVICE_NAME, client_class=RawClient)
    consumer = AuditConsumer(
        database,
        broker,
        EventAuthenticator(settings.producer_keys),
        batch_size=settings.consumer_batch_size,
        ack_wait_seconds=settings.consumer_ack_wait_seconds,
        stream_replicas=settings.audit_stream_replicas,
    )
    registry = settings.create_registry()
    verifier, users = user_service_verifier(registry, settings)
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
    return ServiceHost(
        definition,
        settings,
        database=database,
        registry=registry,
        verifier=verifier,
        components=(broker, consumer, users),
    )
