"""The trace context through the gateway: a caller's traceparent reaches the service, under
the gateway's own spans when it traces, as it came when it does not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.host import Gateway
from gateway.settings import GatewaySettings
from global_utils.grpc.host import ServiceHost
from tests.helpers import started
from tests.integration.conftest import SEED_EMAIL, SEED_PASSWORD
from tests.integration.test_gateway import http
from user.server.bootstrap import build
from user.server.settings import UserSettings

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Every span the traced user service and gateway of this module end."""
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced_user(
    user_settings_factory: Callable[..., UserSettings], spans: InMemorySpanExporter
) -> AsyncIterator[ServiceHost]:
    """A user service tracing into spans."""
    host = await started(build(user_settings_factory(), span_exporter=spans))
    yield host
    await host.stop()


def settings_for(user: ServiceHost) -> GatewaySettings:
    return GatewaySettings(
        micro_server_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        micro_registry="static",
        micro_registry_address=f"user=127.0.0.1:{user.port}",
    )


async def login(gateway: Gateway) -> None:
    status, _, body = await http(
        gateway,
        "POST",
        "/user.UserSrv/Auth",
        json.dumps({"email": SEED_EMAIL, "pwd": SEED_PASSWORD}).encode(),
        {"content-type": "application/json", "traceparent": TRACEPARENT},
    )
    assert status == 200, body


async def test_a_tracing_gateway_puts_its_spans_between_caller_and_service(
    traced_user: ServiceHost, spans: InMemorySpanExporter
) -> None:
    # its own exporter: stopping the gateway shuts its exporter down
    gateway_spans = InMemorySpanExporter()
    gateway = Gateway(settings_for(traced_user), span_exporter=gateway_spans)
    await gateway.start()
    try:
        spans.clear()
        await login(gateway)
    finally:
        await gateway.stop()
    [entry] = [
        s
        for s in gateway_spans.get_finished_spans()
        if s.name == "user.UserSrv/Auth" and s.kind is SpanKind.SERVER
    ]
    [outgoing] = [s for s in gateway_spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    [service] = [
        s
        for s in spans.get_finished_spans()
        if s.name == "user.UserSrv/Auth" and s.kind is SpanKind.SERVER
    ]
    assert {s.context.trace_id for s in (entry, outgoing, service)} == {int(CALLER_TRACE, 16)}
    assert entry.parent is not None and entry.parent.span_id == int(CALLER_SPAN, 16)
    assert outgoing.parent is not None and outgoing.parent.span_id == entry.context.span_id
    assert service.parent is not None and service.parent.span_id == outgoing.context.span_id


async def test_a_gateway_without_tracing_passes_the_callers_context_on(
    traced_user: ServiceHost, spans: InMemorySpanExporter
) -> None:
    gateway = Gateway(settings_for(traced_user))
    await gateway.start()
    try:
        spans.clear()
        await login(gateway)
    finally:
        await gateway.stop()
    [service] = [s for s in spans.get_finished_spans() if s.name == "user.UserSrv/Auth"]
    assert service.kind is SpanKind.SERVER
    assert service.context.trace_id == int(CALLER_TRACE, 16)
    assert service.parent is not None and service.parent.span_id == int(CALLER_SPAN, 16)
