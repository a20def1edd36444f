"""What the one composition place hands a service's host: the components in their start order,
one server interceptor running the concerns in their order (tracing outside metrics on both
sides, then logging, error mapping, authentication, parsing), the side port's routes, the traced
pool, zero series."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from global_utils.config.settings import ServiceSettings
from global_utils.data.database import PooledConnection
from global_utils.discovery.registry import StaticRegistry
from global_utils.grpc.chain import ServerChain
from global_utils.grpc.host import ServiceDefinition
from global_utils.grpc.http_side import Handler, HttpResponse
from global_utils.grpc.interceptors import (
    AuthInterceptor,
    ErrorMappingInterceptor,
    RequestLoggingInterceptor,
    RequestParsingInterceptor,
)
from global_utils.identity.principal import Principal
from global_utils.observability.gauges import Prober
from global_utils.observability.metrics import (
    ClientMetricsInterceptor,
    ServerMetricsInterceptor,
)
from global_utils.observability.rpc_tracing import (
    ClientTracingInterceptor,
    ServerTracingInterceptor,
)
from global_utils.wiring import Assembly, ServiceParts, service_parts
from user.proto import user_pb2_grpc

DSN = "postgresql://someone@127.0.0.1:1/nothing"
# after tracing and metrics, on every service: parsing last, so a body that does not parse is
# reported only to a caller authentication let in
HOST_INTERCEPTORS = [
    RequestLoggingInterceptor,
    ErrorMappingInterceptor,
    AuthInterceptor,
    RequestParsingInterceptor,
]


class OwnClient(Client):
    """A service's own NATS client class (the audit service's reads raw bytes)."""


class OwnComponent:
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class NobodyVerifier:
    async def verify(self, token: str) -> Principal:
        raise AssertionError("no call reaches the host in these tests")


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="user",
        grpc_service="user.UserSrv",
        add_to_server=lambda server: user_pb2_grpc.add_UserSrvServicer_to_server(
            user_pb2_grpc.UserSrvServicer(), server
        ),
    )


def parts(*, metrics_enabled: bool = True, traced: bool = True) -> ServiceParts[Client]:
    settings = ServiceSettings(
        micro_registry="static",
        micro_server_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        metrics_enabled=metrics_enabled,
    )
    return service_parts("user", settings, InMemorySpanExporter() if traced else None)


def server_concerns(assembly: Assembly) -> list[type]:
    """The types of the concerns the host's one server interceptor runs, the first outermost."""
    (chain,) = assembly.interceptors
    assert isinstance(chain, ServerChain)
    return [type(concern) for concern in chain.concerns]


def assembly_of(
    shared: ServiceParts[Client], routes: Mapping[str, Handler] | None = None
) -> Assembly:
    return shared.assemble(
        definition(),
        shared.database(DSN, "", 3),
        verifier=NobodyVerifier(),
        components=(),
        routes=routes,
    )


def test_the_services_own_components_start_after_the_broker_and_before_the_prober() -> None:
    shared = parts()
    database = shared.database(DSN, "", 3)
    first, second = OwnComponent(), OwnComponent()
    assembly = shared.assemble(
        definition(), database, verifier=NobodyVerifier(), components=(first, second)
    )
    started = assembly.components
    assert started[:5] == (assembly.http, database, shared.registry, shared.tracing, shared.broker)
    assert isinstance(shared.registry, StaticRegistry)
    assert started[5:7] == (first, second)
    assert isinstance(started[7], Prober) and len(started) == 8


def test_the_host_runs_the_components_and_interceptors_it_is_given() -> None:
    shared = parts()
    assembly = assembly_of(shared)
    host = assembly.host(shared.settings)
    assert host.components == assembly.components
    assert host.interceptors == assembly.interceptors
    assert (host.database, host.registry, host.http) == (
        assembly.database,
        assembly.registry,
        assembly.http,
    )


@pytest.mark.parametrize("traced", [True, False])
def test_tracing_wraps_metrics_on_the_server_and_the_client_side(traced: bool) -> None:
    shared = parts(traced=traced)
    assembly = assembly_of(shared)
    tracing = [ServerTracingInterceptor] if traced else []
    assert server_concerns(assembly) == [
        *tracing,
        ServerMetricsInterceptor,
        *HOST_INTERCEPTORS,
    ]
    tracing_client = [ClientTracingInterceptor] if traced else []
    assert [type(i) for i in shared.client_interceptors()] == [
        *tracing_client,
        ClientMetricsInterceptor,
    ]


def test_the_side_port_serves_the_services_routes_before_metrics() -> None:
    shared = parts()

    def own() -> HttpResponse:
        return HttpResponse(b"{}")

    assembly = assembly_of(shared, {"/own": own})
    assert list(assembly.http._routes) == ["/own", "/metrics"]
    unmeasured = parts(metrics_enabled=False)
    quiet = assembly_of(unmeasured)
    assert list(quiet.http._routes) == []
    assert server_concerns(quiet) == [ServerTracingInterceptor, *HOST_INTERCEPTORS]


def test_the_pool_is_traced_when_tracing_is_on_and_an_empty_password_is_none() -> None:
    traced = parts().database(DSN, "", 3)
    plain = parts(traced=False).database(DSN, "secret", 4)
    assert traced._connection_class is not PooledConnection
    assert issubclass(traced._connection_class, PooledConnection)
    assert traced._password is None and traced._max_size == 3
    assert plain._connection_class is PooledConnection
    assert plain._password == "secret" and plain._max_size == 4


def test_the_host_lists_its_services_methods_at_zero_and_the_pools_gauges() -> None:
    shared = parts()
    assembly_of(shared)
    text = shared.metrics.exposition().body.decode()
    assert 'grpc_method="GetUserById",grpc_service="user.UserSrv"' in text
    # the pool's gauges are registered (no sample before the pool exists)
    assert [name for name, *_ in shared.metrics._state._metrics][:4] == [
        "gotemp_db_pool_size",
        "gotemp_db_pool_in_use",
        "gotemp_db_pool_idle",
        "gotemp_db_pool_max_size",
    ]


def test_the_broker_connects_with_the_client_class_named() -> None:
    settings = ServiceSettings(micro_registry="static")
    assert service_parts("user", settings, None).broker._client_class is Client
    own = service_parts("audit", settings, None, client_class=OwnClient)
    assert own.broker._client_class is OwnClient
