"""Tracing's pure parts: when OTEL_* turn it on, the sampler they name, SQL span names, and the
trace ids a log line gets."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    TraceIdRatioBased,
)
from pydantic import ValidationError

from global_utils.logs import RequestIdFilter
from global_utils.tracing import (
    Tracing,
    context_from_traceparent,
    current_traceparent,
    log_ids,
    statement_summary,
)
from global_utils.tracing_config import TracingSettings, sampler, tracer_provider


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
        {"otel_exporter_otlp_protocol": "http/protobuf"},
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
