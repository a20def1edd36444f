"""Tracing of RPCs and SQL in a running service: the span tree of a call, streams with tracing
on, and log lines carrying the ids (spans caught by an in-memory exporter)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from global_utils.grpc.host import ServiceHost
from global_utils.identity.principal import bearer_metadata
from global_utils.observability.logs import log_handler
from global_utils.observability.propagation import log_ids
from global_utils.observability.rpc_tracing import ClientTracingInterceptor
from global_utils.observability.tracing_setup import TracingSettings, tracer_provider
from tests.helpers import eventually, new_user, started
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Every span the traced services and clients of this module end."""
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced_user(
    user_settings_factory: Callable[..., UserSettings], spans: InMemorySpanExporter
) -> AsyncIterator[ServiceHost]:
    """A user service tracing into spans (OTEL_* play no part: the exporter is given)."""
    host = await started(build(user_settings_factory(), span_exporter=spans))
    yield host
    await host.stop()


@pytest.fixture(scope="module")
async def traced_channel(
    traced_user: ServiceHost, spans: InMemorySpanExporter
) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to it whose calls are CLIENT spans sending their traceparent."""
    provider = tracer_provider(TracingSettings(), "test-client", spans)
    assert provider is not None
    interceptor = ClientTracingInterceptor(provider.get_tracer("test"))
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{traced_user.port}", interceptors=[interceptor]
    ) as channel:
        yield channel
    provider.shutdown()


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The lines the services' log handler writes (the RPC debug line included)."""
    stream = io.StringIO()
    handler = log_handler(log_ids)
    handler.setStream(stream)  # type: ignore[attr-defined]  # log_handler makes a StreamHandler
    root, interceptors = logging.getLogger(), logging.getLogger("global_utils.grpc.interceptors")
    level = interceptors.level
    root.addHandler(handler)
    interceptors.setLevel(logging.DEBUG)
    yield stream
    interceptors.setLevel(level)
    root.removeHandler(handler)


def hexid(value: int, digits: int = 32) -> str:
    return f"{value:0{digits}x}"


def children(all_spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s for s in all_spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


async def token(channel: grpc.aio.Channel) -> str:
    reply = await user_pb2_grpc.UserSrvStub(channel).Auth(
        user_pb2.User(email="duck@mymail.com", pwd="1234")
    )
    return reply.token


async def test_a_call_is_a_client_span_over_a_server_span_over_its_sql(
    traced_channel: grpc.aio.Channel, spans: InMemorySpanExporter, debug_log: io.StringIO
) -> None:
    md = bearer_metadata(await token(traced_channel))
    spans.clear()
    reply = await user_pb2_grpc.UserSrvStub(traced_channel).CreateUser(new_user(), metadata=md)
    assert reply.user.id
    finished = list(spans.get_finished_spans())

    client = next(s for s in finished if s.kind is SpanKind.CLIENT and s.parent is None)
    assert client.name == "user.UserSrv/CreateUser"
    server = next(s for s in finished if s.kind is SpanKind.SERVER)
    assert server.parent is not None and client.context is not None
    assert server.parent.span_id == client.context.span_id  # traceparent went in the metadata
    assert server.name == "user.UserSrv/CreateUser"
    assert server.attributes is not None and server.attributes["rpc.grpc.status_code"] == 0
    assert server.resource.attributes["service.name"] == "user"

    assert client.context is not None and server.context is not None
    trace_id = client.context.trace_id
    # one trace; other spans here are the relay publishing earlier changes (the login's event)
    others = {s.name for s in finished if s.context is None or s.context.trace_id != trace_id}
    assert others <= {"Audit publish"}, others
    sql = [s.name for s in children(finished, server) if s.kind is SpanKind.CLIENT]
    assert "BEGIN" in sql and "INSERT appuser" in sql and "COMMIT" in sql, sql
    # every statement of the call ran inside it
    assert all(
        server.start_time <= s.start_time and s.end_time <= server.end_time  # type: ignore[operator]  # ended spans have times
        for s in children(finished, server)
    )

    # the service's debug line of the call carries the server span's ids
    line = next(line for line in debug_log.getvalue().splitlines() if "CreateUser" in line)
    assert f"trace_id={hexid(trace_id)} span_id={hexid(server.context.span_id, 16)}" in line


async def test_a_refused_call_is_a_span_with_its_code(
    traced_channel: grpc.aio.Channel, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await user_pb2_grpc.UserSrvStub(traced_channel).GetUserById(user_pb2.SearchId(id=1))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED

    def server_spans() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]

    async def ended() -> bool:
        return bool(server_spans())

    # a refusal is sent when the service aborts the call, and the span ends as that unwinds:
    # the caller may read the refusal first
    await eventually(ended, timeout=5, what="the refused call's server span")
    (server,) = server_spans()
    assert server.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    # the caller's mistake, not the server's: the server span's status stays unset
    assert server.status.status_code is StatusCode.UNSET


async def test_health_watch_streams_with_tracing_on(
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    # an exporter of its own: stopping a host shuts its exporter down
    spans = InMemorySpanExporter()
    host = await started(build(user_settings_factory(), span_exporter=spans))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            await token(channel)  # traced meanwhile
            await host.stop()
            after = await watch.read()
            assert after.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await host.stop()
    names = [s.name for s in spans.get_finished_spans()]
    assert "user.UserSrv/Auth" in names and not [n for n in names if "Health" in n]


async def test_a_streaming_call_is_one_span(
    traced_user: ServiceHost, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{traced_user.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        answer = await call.read()
        await call.done_writing()
        assert "user.UserSrv" in [s.name for s in answer.list_services_response.service]
        assert await call.read() is grpc.aio.EOF

    def reflection_spans() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if "ServerReflectionInfo" in s.name]

    async def ended() -> bool:
        return bool(reflection_spans())

    # the server ends its span as its handler returns, which may be just after the status
    await eventually(ended, timeout=5, what="the stream's span")
    [span] = reflection_spans()
    assert span.kind is SpanKind.SERVER
