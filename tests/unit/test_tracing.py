"""Tracing's pure parts: when OTEL_* turn it on, the sampler they name, SQL span names, and the
trace ids a log line gets."""

from __future__ import annotations

import logging
import random
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext
from pydantic import ValidationError

from global_utils.observability.logs import RequestIdFilter
from global_utils.observability.propagation import (
    context_from_traceparent,
    current_traceparent,
    log_ids,
)
from global_utils.observability.rpc_tracing import ServerTracingInterceptor
from global_utils.observability.sql_tracing import statement_summary
from global_utils.observability.tracing import Tracing
from global_utils.observability.tracing_setup import (
    RootSampling,
    TracingSettings,
    sampler,
    tracer_provider,
)


def settings(**values: object) -> TracingSettings:
    defaults: dict[str, object] = {
        "otel_sdk_disabled": False,
        "otel_traces_exporter": "",
        "otel_exporter_otlp_endpoint": "",
        "otel_exporter_otlp_traces_endpoint": "",
    }
    return TracingSettings(**(defaults | values))


@pytest.mark.parametrize(
    ("values", "enabled"),
    [
        ({}, False),
        ({"otel_exporter_otlp_endpoint": "http://jaeger:4317"}, True),
        ({"otel_exporter_otlp_traces_endpoint": "http://jaeger:4317"}, True),
        ({"otel_traces_exporter": "otlp"}, True),
        ({"otel_traces_exporter": "console"}, True),
        ({"otel_traces_exporter": "none", "otel_exporter_otlp_endpoint": "http://j:4317"}, False),
        ({"otel_sdk_disabled": True, "otel_traces_exporter": "otlp"}, False),
    ],
)
def test_tracing_is_on_only_when_an_exporter_is_configured(
    values: dict[str, object], enabled: bool
) -> None:
    assert settings(**values).tracing_enabled is enabled
    assert (tracer_provider(settings(**values), "user") is not None) is enabled


def test_the_traces_endpoint_wins_over_the_general_one() -> None:
    both = settings(
        otel_exporter_otlp_endpoint="http://a:4317",
        otel_exporter_otlp_traces_endpoint="http://b:4317",
    )
    assert both.otlp_traces_endpoint == "http://b:4317"
    assert settings(otel_traces_exporter="otlp").otlp_traces_endpoint == "http://localhost:4317"


def test_unknown_exporters_protocols_and_ratios_are_refused() -> None:
    for bad in (
        {"otel_traces_exporter": "zipkin"},
        {"otel_exporter_otlp_protocol": "http/json"},
        {"otel_traces_sampler": "sometimes"},
        {"otel_traces_sampler_arg": 1.5},
    ):
        with pytest.raises(ValidationError):
            settings(**bad)


def test_the_sampler_is_the_one_named() -> None:
    assert sampler(settings(otel_traces_sampler="always_on")) is ALWAYS_ON
    assert sampler(settings(otel_traces_sampler="ALWAYS_OFF")) is ALWAYS_OFF
    ratio = sampler(settings(otel_traces_sampler="traceidratio", otel_traces_sampler_arg=0.25))
    assert isinstance(ratio, TraceIdRatioBased) and ratio.rate == 0.25
    default = sampler(settings())
    assert isinstance(default, ParentBased) and "AlwaysOn" in default.get_description()
    parent_ratio = sampler(
        settings(otel_traces_sampler="parentbased_traceidratio", otel_traces_sampler_arg=0.1)
    )
    assert isinstance(parent_ratio, ParentBased)
    assert "TraceIdRatioBased{0.1}" in parent_ratio.get_description()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("SELECT id, name FROM appuser WHERE id = $1", "SELECT appuser"),
        ("INSERT INTO appuser (a) VALUES ($1) RETURNING id", "INSERT appuser"),
        ("UPDATE audit_outbox SET sentat = now() WHERE eventid = ANY($1)", "UPDATE audit_outbox"),
        (
            "WITH s AS (INSERT INTO audit_outbox (eventid) SELECT 1) SELECT pg_notify('x', '')",
            "INSERT audit_outbox",
        ),
        ("SELECT a FROM audit_outbox FOR UPDATE SKIP LOCKED", "SELECT audit_outbox"),
        ("BEGIN;", "BEGIN"),
        ("COPY audit", "COPY audit"),
        ("SELECT 1", "SELECT"),
        ("   ", "SQL"),
    ],
)
def test_sql_spans_are_named_by_operation_and_table(query: str, name: str) -> None:
    assert statement_summary(query) == name


def test_log_lines_carry_the_ids_of_the_active_span_only() -> None:
    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    with_ids = RequestIdFilter(log_ids)
    with_ids.filter(record)
    assert record.trace_ids == ""
    with tracer.start_as_current_span("call") as span:
        with_ids.filter(record)
        context = span.get_span_context()
        expected = f" trace_id={context.trace_id:032x} span_id={context.span_id:016x}"
        assert record.trace_ids == expected
        RequestIdFilter().filter(record)  # tracing off: no ids
        assert record.trace_ids == ""


def test_a_traceparent_round_trips_and_garbage_is_no_context() -> None:
    tracer = TracerProvider().get_tracer("test")
    assert current_traceparent() is None
    with tracer.start_as_current_span("call") as span:
        traceparent = current_traceparent()
    assert traceparent is not None
    context = context_from_traceparent(traceparent)
    assert context is not None
    with tracer.start_as_current_span("child", context=context) as child:
        assert child.get_span_context().trace_id == span.get_span_context().trace_id
    for garbage in (None, "", "00-xyz", "00-" + "0" * 32 + "-" + "1" * 16 + "-01"):
        assert context_from_traceparent(garbage) is None


def test_tracing_off_wraps_nothing() -> None:
    off = Tracing(None)
    assert not off.enabled and off.tracer is None
    assert off.server_interceptors() == [] and off.client_interceptors() == []
    assert off.connection_class().__name__ == "PooledConnection"


class _Call:
    """What the server interceptor reads of a call: its metadata and final code."""

    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def code(self) -> None:
        return None


def _traced_method(
    sampler_name: str, ratio: float = 1.0
) -> tuple[InMemorySpanExporter, Any, list[SpanContext]]:
    """A method wrapped by the server interceptor of Tracing.configured's kind, the exporter
    its spans end in, and the span contexts the handler saw as current."""
    spans = InMemorySpanExporter()
    values = settings(otel_traces_sampler=sampler_name, otel_traces_sampler_arg=ratio)
    tracing = Tracing.configured(values, "user", spans)
    seen: list[SpanContext] = []

    async def handler(request: object, context: object) -> str:
        seen.append(trace.get_current_span().get_span_context())
        return "done"

    (interceptor,) = tracing.server_interceptors()
    assert isinstance(interceptor, ServerTracingInterceptor)
    wrapped = interceptor.replace(
        grpc.unary_unary_rpc_method_handler(handler), "/user.UserSrv/GetUserById"
    )
    return spans, wrapped.unary_unary, seen


@pytest.mark.parametrize(
    ("sampler_name", "ratio", "kept"),
    [("always_off", 1.0, 0.0), ("traceidratio", 0.25, 0.25), ("always_on", 0.0, 1.0)],
)
def test_root_sampling_decides_as_the_sdk_sampler_does(
    sampler_name: str, ratio: float, kept: float
) -> None:
    values = settings(otel_traces_sampler=sampler_name, otel_traces_sampler_arg=ratio)
    roots, sdk = RootSampling(values), sampler(values)
    trace_ids = [random.getrandbits(128) or 1 for _ in range(2000)]
    for trace_id in trace_ids:
        decided = sdk.should_sample(None, trace_id, "call").decision.is_sampled()
        assert roots.drops(trace_id) is not decided
    share = sum(not roots.drops(t) for t in trace_ids) / len(trace_ids)
    assert abs(share - kept) < 0.05


async def test_dropped_calls_make_no_span_but_carry_ids_and_kept_ones_keep_the_drawn_id() -> None:
    spans, behavior, seen = _traced_method("parentbased_traceidratio", 0.5)
    for _ in range(200):
        assert await behavior(object(), _Call()) == "done"
    roots = RootSampling(settings(otel_traces_sampler="traceidratio", otel_traces_sampler_arg=0.5))
    finished = {span.context.trace_id for span in spans.get_finished_spans() if span.context}
    assert len(seen) == 200 and all(context.is_valid for context in seen)
    for context in seen:
        # every call has ids (logs, traceparents); exactly the ones the sampler keeps recorded
        assert context.trace_flags.sampled is (context.trace_id in finished)
        assert roots.drops(context.trace_id) is not context.trace_flags.sampled
    assert 40 < len(finished) < 160


async def test_a_callers_decision_is_kept_whatever_the_ratio() -> None:
    spans, behavior, seen = _traced_method("parentbased_traceidratio", 0.0)
    caller_id, parent_span = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7
    for flags, recorded in (("01", True), ("00", False)):
        spans.clear()
        traceparent = f"00-{caller_id:032x}-{parent_span:016x}-{flags}"
        await behavior(object(), _Call(("user-agent", "test"), ("traceparent", traceparent)))
        assert seen[-1].trace_id == caller_id and seen[-1].trace_flags.sampled is recorded
        finished = spans.get_finished_spans()
        assert len(finished) == (1 if recorded else 0)
        if recorded:
            assert finished[0].parent is not None and finished[0].parent.span_id == parent_span
            assert finished[0].name == "user.UserSrv/GetUserById"
