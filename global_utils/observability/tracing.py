"""Tracing (OpenTelemetry API): spans per RPC (server and client) and per SQL statement, and
the W3C `traceparent` that carries a trace across gRPC metadata, the outbox and NATS headers.
How a process is configured (OTEL_* settings, the SDK's provider) is
global_utils.observability.tracing_setup.

Off unless an exporter is configured, and then a true no-op: no span is made, nothing is
wrapped (no interceptor, the plain connection class), and neither the SDK nor an exporter is
imported. Components take `tracer: Tracer | None`; None means off."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import nullcontext
from functools import lru_cache
from random import getrandbits
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import grpc
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from global_utils.data.database import PooledConnection
from global_utils.grpc.interceptors import HandlerInterceptor
from global_utils.observability.tracing_setup import (
    PresetTraceIds,
    RootSampling,
    TracingSettings,
    tracer_provider,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
INSTRUMENTATION_NAME = "gotemp"
# Health is asked every few seconds by probes and balancers: a trace each time would bury the
# traces people look for, so it is served unwrapped (Watch streams exactly as without tracing).
UNTRACED_PREFIXES = ("/grpc.health.v1.Health/",)
# Server span statuses that are errors of the server (OpenTelemetry's RPC conventions): a
# refused or invalid call is the caller's, and its span stays unset.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_PROPAGATOR = TraceContextTextMapPropagator()
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


class Tracing:
    """A process's tracing, handed to the components that trace: its tracer (None when off),
    the interceptors and connection class to use, and a lifecycle that flushes the spans
    still batched when the process stops (started first among the components, so stopped
    last)."""

    def __init__(
        self, provider: TracerProvider | None, sampling: RootSampling | None = None
    ) -> None:
        self._provider = provider
        self.tracer: Tracer | None = (
            provider.get_tracer(INSTRUMENTATION_NAME) if provider is not None else None
        )
        # the sampler's decisions known beforehand, when the provider lets the interceptor
        # choose trace ids (tracing_config.tracer_provider's do)
        ids = provider.id_generator if provider is not None else None
        self._shortcut = (
            _Shortcut(sampling, ids)
            if sampling is not None and isinstance(ids, PresetTraceIds)
            else None
        )

    @classmethod
    def configured(
        cls, settings: TracingSettings, service: str, exporter: SpanExporter | None = None
    ) -> Tracing:
        return cls(tracer_provider(settings, service, exporter), RootSampling(settings))

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        if self.tracer is None:
            return []
        return [ServerTracingInterceptor(self.tracer, self._shortcut)]

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        if self.tracer is None:
            return []
        parent_based = self._shortcut is not None and self._shortcut.sampling.parent_based
        return [ClientTracingInterceptor(self.tracer, skip_unsampled=parent_based)]

    def connection_class(self) -> type[PooledConnection]:
        return PooledConnection if self.tracer is None else traced_connection_class(self.tracer)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._provider is None:
            return
        try:
            # Flushing waits on the exporter (a network call): not on the event loop.
            await asyncio.to_thread(self._provider.shutdown)
        except Exception as exc:  # stop() never raises
            logger.warning("flushing traces failed: %s", exc)


# --- propagation ---------------------------------------------------------------------------


def context_from(carrier: Mapping[str, str]) -> Context:
    """The trace context a carrier (gRPC metadata, message headers) brings, W3C tracecontext."""
    return _PROPAGATOR.extract(carrier)


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The context of a stored or received traceparent; None when missing or invalid."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({TRACEPARENT: traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def current_traceparent() -> str | None:
    """The active span's traceparent (sampled or not: downstream keeps the decision), or None
    outside any span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def log_ids() -> str:
    """' trace_id=… span_id=…' of the active span for a log line, '' outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ""
    return f" trace_id={context.trace_id:032x} span_id={context.span_id:016x}"


# --- gRPC ----------------------------------------------------------------------------------


def _rpc_attributes(method: str) -> tuple[str, dict[str, str]]:
    """The span name (package.Service/Method) and attributes of a full method name."""
    name = method.lstrip("/")
    service, _, rpc_method = name.partition("/")
    return name, {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc_method}


def _end_rpc(span: Span, code: grpc.StatusCode | None, errors: frozenset[grpc.StatusCode]) -> None:
    code = code or grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in errors:
        span.set_status(Status(StatusCode.ERROR, code.name))


class _Shortcut:
    """The server interceptor's way around the SDK for calls whose span would not be sampled:
    a span that records nothing, made directly (ids drawn here, as the SDK would), costs a
    fraction of the SDK's start_span. Calls the sampler keeps get the SDK's span, with the
    trace id drawn here (the sampler decides on it)."""

    def __init__(self, sampling: RootSampling, ids: PresetTraceIds) -> None:
        self.sampling = sampling
        self._ids = ids

    def start(
        self, tracer: Tracer, name: str, attributes: dict[str, str], traceparent: str | None
    ) -> Span:
        if traceparent is None:
            trace_id = getrandbits(128) or 1  # 0 is the invalid id
            if self.sampling.drops(trace_id):
                return NonRecordingSpan(SpanContext(trace_id, _span_id(), False, _UNSAMPLED))
            self._ids.preset = trace_id
            return tracer.start_span(
                name, context=Context(), kind=SpanKind.SERVER, attributes=attributes
            )
        parent = context_from({TRACEPARENT: traceparent})
        caller = trace.get_current_span(parent).get_span_context()
        if caller.is_valid and self.sampling.parent_based and not caller.trace_flags.sampled:
            # a parent-based sampler drops the children of an unsampled caller
            return NonRecordingSpan(
                SpanContext(caller.trace_id, _span_id(), False, _UNSAMPLED, caller.trace_state)
            )
        return tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)


def _span_id() -> int:
    return getrandbits(64) or 1


def _traceparent_of(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == TRACEPARENT and isinstance(value, str):
            return value
    return None


class ServerTracingInterceptor(HandlerInterceptor):
    """A SERVER span around every call (unary or streamed, health excepted), child of the
    caller's traceparent when the metadata carries one, and the current span while the
    handler (and the interceptors inside this one) run: it goes first in the list.
    With a shortcut, calls the sampler drops cost a random id and a context switch."""

    def __init__(self, tracer: Tracer, shortcut: _Shortcut | None = None) -> None:
        super().__init__()
        self._tracer = tracer
        self._shortcut = shortcut

    def replace(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if method.startswith(UNTRACED_PREFIXES):
            return handler
        kinds = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
        )
        for behavior, make in kinds:
            if behavior is None:
                continue
            wrapped = (
                self._generator(behavior, method)
                if inspect.isasyncgenfunction(behavior)
                else self._coroutine(behavior, method)
            )
            return make(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _starter(self, method: str) -> Callable[[grpc.aio.ServicerContext], Span]:
        """Starts a call's span; the name and attributes are made once per method."""
        name, attributes = _rpc_attributes(method)
        tracer, shortcut = self._tracer, self._shortcut
        if shortcut is not None:

            def start(context: grpc.aio.ServicerContext) -> Span:
                return shortcut.start(tracer, name, attributes, _traceparent_of(context))

            return start

        def start_unshortened(context: grpc.aio.ServicerContext) -> Span:
            metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
            return tracer.start_span(
                name, context=context_from(metadata), kind=SpanKind.SERVER, attributes=attributes
            )

        return start_unshortened

    def _coroutine(
        self, inner: Callable[..., Awaitable[Any]], method: str
    ) -> Callable[..., Awaitable[Any]]:
        start = self._starter(method)

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span = start(context)
            token = attach(trace.set_span_in_context(span))
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except BaseException:
                span.set_status(Status(StatusCode.ERROR, "handler raised"))
                raise
            finally:
                detach(token)
                if span.is_recording():
                    _end_rpc(span, context.code(), _SERVER_ERRORS)
                    span.end()

        return behavior

    def _generator(
        self, inner: Callable[..., AsyncGenerator[Any, None]], method: str
    ) -> Callable[..., AsyncIterator[Any]]:
        start = self._starter(method)

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            span = start(context)
            current = trace.set_span_in_context(span)
            responses = inner(request, context)
            try:
                while True:
                    # The span is current while the handler runs, not while grpc holds the
                    # yielded message (the context must not leak across the yield).
                    token = attach(current)
                    try:
                        response = await anext(responses)
                    except StopAsyncIteration:
                        break
                    finally:
                        detach(token)
                    yield response
            finally:
                await responses.aclose()
                if span.is_recording():
                    _end_rpc(span, context.code(), _SERVER_ERRORS)
                    span.end()

        return behavior


class ClientTracingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """A CLIENT span around each unary call, its traceparent sent in the metadata. With
    skip_unsampled (a parent-based sampler, which would drop the span), a call made inside
    an unsampled span makes none and sends that span's traceparent."""

    def __init__(self, tracer: Tracer, *, skip_unsampled: bool = False) -> None:
        self._tracer = tracer
        self._skip_unsampled = skip_unsampled
        self._names: dict[str | bytes, tuple[str, dict[str, str]]] = {}

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if self._skip_unsampled:
            current = trace.get_current_span()
            if not current.is_recording() and current.get_span_context().is_valid:
                return await continuation(_with_traceparent(client_call_details), request)
        method = client_call_details.method
        shape = self._names.get(method)
        if shape is None:
            text = method.decode() if isinstance(method, bytes) else method
            shape = self._names[method] = _rpc_attributes(text)
        name, attributes = shape
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            call = await continuation(_with_traceparent(client_call_details), request)
            code = await call.code()
            # any failure is the call's, from the client's side
            _end_rpc(span, code, frozenset(grpc.StatusCode) - {grpc.StatusCode.OK})
        return call


def _with_traceparent(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    metadata = grpc.aio.Metadata(
        *[(k, v) for k, v in (details.metadata or ()) if k not in carrier], *carrier.items()
    )
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# --- SQL -----------------------------------------------------------------------------------

_TABLE_RE = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+([A-Za-z_][\w.]*)", re.IGNORECASE)
_CTE_BODY_RE = re.compile(r"\b(INSERT|UPDATE|DELETE|SELECT)\b", re.IGNORECASE)


@lru_cache(maxsize=512)
def statement_summary(query: str) -> str:
    """A SQL span's name: the operation and its first table ('SELECT appuser', 'COMMIT');
    a statement starting WITH is named by the first operation inside it."""
    words = query.split(None, 1)
    if not words:
        return "SQL"
    operation = words[0].rstrip(";").upper()
    if operation == "WITH" and (body := _CTE_BODY_RE.search(query)) is not None:
        operation = body.group(1).upper()
    if operation == "COPY" and len(words) > 1:
        return f"COPY {words[1].split()[0]}"
    table = _TABLE_RE.search(query)
    return f"{operation} {table.group(1)}" if table else operation


@lru_cache(maxsize=512)
def _statement_span(query: str) -> tuple[str, dict[str, str]]:
    """A statement's span name and attributes, made once per statement text."""
    return statement_summary(query), {"db.system.name": "postgresql", "db.query.text": query}


class _StatementSpan:
    """A statement's CLIENT span, current while it runs (a plain class: cheaper than a
    generator-based context manager on a path every traced statement takes)."""

    __slots__ = ("_span", "_token")

    def __init__(self, tracer: Tracer, query: str) -> None:
        name, attributes = _statement_span(query)
        self._span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._token = attach(trace.set_span_in_context(self._span))

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        detach(self._token)
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._span.end()


def _recording() -> bool:
    return trace.get_current_span().is_recording()


class _TracedConnection(PooledConnection):
    """A pooled connection whose statements are spans (CLIENT, db.* attributes) while a traced
    operation is under way; outside one (health checks, relay polls, calls not sampled) they
    are not traced and cost one check."""

    _tracer: ClassVar[Tracer]

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().execute(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().execute(query, *args, **kwargs)

    async def executemany(self, command: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().executemany(command, *args, **kwargs)
        with _StatementSpan(self._tracer, command):
            return await super().executemany(command, *args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().fetch(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().fetchrow(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _recording():
            return await super().fetchval(query, *args, **kwargs)
        with _StatementSpan(self._tracer, query):
            return await super().fetchval(query, *args, **kwargs)

    async def copy_records_to_table(self, table_name: str, **kwargs: Any) -> Any:
        if not _recording():
            return await super().copy_records_to_table(table_name, **kwargs)
        with _StatementSpan(self._tracer, f"COPY {table_name}"):
            return await super().copy_records_to_table(table_name, **kwargs)


def traced_connection_class(tracer: Tracer) -> type[PooledConnection]:
    """The pool's connection class for a process tracing with tracer."""
    return type("TracedConnection", (_TracedConnection,), {"_tracer": tracer})


# --- spans the pipeline makes ----------------------------------------------------------------


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
