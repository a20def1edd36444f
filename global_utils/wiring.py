"""The one composition place: what every service's bootstrap builds alike (metrics and tracing,
the registry, the NATS connection, the traced pool, the outbox) and the complete, ordered lists
of lifecycle components and server interceptors its ServiceHost runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, overload

import grpc
from nats.aio.client import Client

from global_utils.config.settings import ServiceSettings
from global_utils.data.database import Database
from global_utils.discovery.registry import Registry
from global_utils.events.signing import AuditSigningSettings
from global_utils.grpc.chain import ServerChain
from global_utils.grpc.host import Lifecycle, ServiceDefinition, ServiceHost
from global_utils.grpc.http_side import Handler, HttpSidePort
from global_utils.grpc.interceptors import (
    AuthInterceptor,
    ErrorMappingInterceptor,
    RequestLoggingInterceptor,
    RequestParsingInterceptor,
)
from global_utils.identity.principal import TokenVerifier
from global_utils.messaging.broker import Broker, ClientT
from global_utils.messaging.outbox import OutboxAuditEmitter, OutboxRelay
from global_utils.observability.gauges import watch_database, watch_outbox
from global_utils.observability.metrics import ServiceMetrics
from global_utils.observability.tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


@dataclass(frozen=True)
class ServiceParts(Generic[ClientT]):
    """The parts every service builds the same way (service_parts() makes them); a
    bootstrap builds its own with them and hands everything to assemble() or host()."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    tracing: Tracing
    registry: Registry
    broker: Broker[ClientT]

    def database(self, dsn: str, password: str, pool_max_size: int) -> Database:
        """The service's pool (password "" for none; kept out of the URL), its statements
        traced when tracing is on, its pool's gauges the first state metrics lists."""
        database = Database(
            dsn,
            password=password or None,
            max_size=pool_max_size,
            connection_class=self.tracing.connection_class(),
        )
        watch_database(self.metrics, database)
        return database

    def outbox(
        self, database: Database, signing: AuditSigningSettings
    ) -> tuple[OutboxRelay, OutboxAuditEmitter]:
        """A producing service's relay (one of its host's components, its backlog watched by
        the state metrics) and the emitter its units of work write their signed events with."""
        relay = OutboxRelay(
            database,
            self.broker,
            envelope_events=signing.audit_envelope_events,
            tracer=self.tracing.tracer,
        )
        emitter = OutboxAuditEmitter(signing.audit_signer(), relay, tracer=self.tracing.tracer)
        watch_outbox(self.metrics, relay)
        return relay, emitter

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """For the channels to other services (tracing outermost, as on the server side)."""
        return [*self.tracing.client_interceptors(), *self.metrics.client_interceptors()]

    def assemble(
        self,
        definition: ServiceDefinition,
        database: Database,
        *,
        verifier: TokenVerifier,
        components: Sequence[Lifecycle],
        routes: Mapping[str, Handler] | None = None,
    ) -> Assembly:
        """Everything definition's host runs, in order, with zero series for its methods.
        components: the service's own; routes: its own HTTP paths on the side port
        (HTTP_ADDRESS)."""
        self.metrics.initialize_services(definition.grpc_service)
        http = HttpSidePort(
            self.settings.server.http_address, {**(routes or {}), **self.metrics.routes()}
        )
        return Assembly(
            definition,
            database,
            self.registry,
            http,
            components=(
                # the side port first (it is named in the ready line), then what calls need
                http,
                database,
                self.registry,
                self.tracing,
                self.broker,
                *components,
                # last: its first probes read what the components above started
                self.metrics.prober(after=database.wait_ready),
            ),
            interceptors=(
                # one interceptor: each concern in turn, in the order its docstring gives
                ServerChain(
                    tracing=self.tracing.server_tracing(),
                    metrics=self.metrics.server_metrics(),
                    logging=RequestLoggingInterceptor(),
                    errors=ErrorMappingInterceptor(self.settings.server.app_language),
                    auth=AuthInterceptor(
                        verifier, definition.public_methods, definition.method_verifiers
                    ),
                    parsing=RequestParsingInterceptor(self.settings.server.app_language),
                ),
            ),
        )

    def host(
        self,
        definition: ServiceDefinition,
        database: Database,
        *,
        verifier: TokenVerifier,
        components: Sequence[Lifecycle],
        routes: Mapping[str, Handler] | None = None,
    ) -> ServiceHost:
        """The host running assemble()'s components and interceptors."""
        return self.assemble(
            definition,
            database,
            verifier=verifier,
            components=components,
            routes=routes,
        ).host(self.settings)


@dataclass(frozen=True)
class Assembly:
    """A service host's parts and their orders: components start in this order and stop in
    reverse; interceptors run in this order (the first outermost)."""

    definition: ServiceDefinition
    database: Database
    registry: Registry
    http: HttpSidePort
    components: tuple[Lifecycle, ...]
    interceptors: tuple[grpc.aio.ServerInterceptor, ...]

    def host(self, settings: ServiceSettings) -> ServiceHost:
        return ServiceHost(
            self.definition,
            settings,
            database=self.database,
            registry=self.registry,
            components=self.components,
            interceptors=self.interceptors,
            http=self.http,
        )


@overload
def service_parts(
    name: str, settings: ServiceSettings, exporter: SpanExporter | None
) -> ServiceParts[Client]: ...


@overload
def service_parts(
    name: str,
    settings: ServiceSettings,
    exporter: SpanExporter | None,
    *,
    client_class: type[ClientT],
) -> ServiceParts[ClientT]: ...


# The overloads above type what callers get, as Broker's do; the default makes nats-py's Client.
def service_parts(
    name: str,
    settings: ServiceSettings,
    exporter: SpanExporter | None,
    *,
    client_class: type[Any] = Client,
) -> ServiceParts[Any]:
    """The parts of the service called name, from its settings; exporter (tests): gets the
    spans whatever OTEL_* say; client_class: a subclass of nats-py's Client for the broker to
    connect with (the audit service's raw-bytes client)."""
    metrics = ServiceMetrics(settings.metrics)
    tracing = Tracing.configured(settings.tracing, name, exporter)
    broker = Broker(
        settings.broker.broker_url,
        name=name,
        client_class=client_class,
        access=settings.broker.broker_access(name),
    )
    return ServiceParts(settings, metrics, tracing, settings.registry.create_registry(), broker)
