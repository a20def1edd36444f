"""Trace context across process boundaries: the W3C `traceparent` in gRPC metadata, the outbox
and NATS headers; the active span's ids for log lines; a span only when tracing is on."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    SpanKind,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    pass


TRACEPARENT = "traceparent"
PROPAGATOR = TraceContextTextMapPropagator()


def context_from(carrier: Mapping[str, str]) -> Context:
    """The trace context a carrier (gRPC metadata, message headers) brings, W3C tracecontext."""
    return PROPAGATOR.extract(carrier)


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The context of a stored or received traceparent; None when missing or invalid."""
    if not traceparent:
        return None
    context = PROPAGATOR.extract({TRACEPARENT: traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def current_traceparent() -> str | None:
    """The active span's traceparent (sampled or not: downstream keeps the decision), or None
    outside any span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def log_ids() -> str:
    """' trace_id=… span_id=…' of the active span for a log line, '' outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ""
    return f" trace_id={context.trace_id:032x} span_id={context.span_id:016x}"


def span_or_nothing(
    tracer: Tracer | None,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
    links: list[Link] | None = None,
    attributes: dict[str, Any] | None = None,
) -> Any:
    """tracer's span as the current one, or nothing when tracing is off."""
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(
        name, context=context, kind=kind, links=links, attributes=attributes
    )
