"""Spans per RPC: the server interceptor (continuing the caller's trace, deciding sampling up
front) and the client interceptor (passing the trace on in metadata)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextvars import Token
from random import getrandbits
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from global_utils.grpc.interceptors import HandlerInterceptor
from global_utils.observability.propagation import PROPAGATOR, TRACEPARENT, context_from
from global_utils.observability.tracing_setup import (
    PresetTraceIds,
    RootSampling,
)

# A call's invocation metadata, and what starts its span from it (and its traceparent).
Metadata = Sequence[tuple[str, str | bytes]]
_Start = Callable[[Metadata, str | None], Span]

logger = logging.getLogger(__name__)


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
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


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


class Shortcut:
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


def _traceparent_in(metadata: Metadata) -> str | None:
    for key, value in metadata:
        if key == TRACEPARENT and isinstance(value, str):
            return value
    return None


class CallSpan:
    """A method's server span per call, begun and ended by a chain running every concern in
    one coroutine, as ServerTracingInterceptor's wrapper does around the rest: current while
    the call runs, ERROR when something other than an abort escapes, ended with the call's
    status."""

    __slots__ = ("_start",)

    def __init__(self, start: _Start) -> None:
        self._start = start

    def begin(self, metadata: Metadata, traceparent: str | None) -> tuple[Span, Token[Context]]:
        """The call's span, and the token that makes it current until end()."""
        span = self._start(metadata, traceparent)
        return span, attach(trace.set_span_in_context(span))

    def end(
        self,
        begun: tuple[Span, Token[Context]],
        context: grpc.aio.ServicerContext,
        raised: BaseException | None = None,
    ) -> None:
        """Ends what begin() began, after the call ended with context's status or raised."""
        span, token = begun
        if raised is not None and not isinstance(raised, grpc.aio.AbortError):
            span.set_status(Status(StatusCode.ERROR, "handler raised"))
        detach(token)
        if span.is_recording():
            _end_rpc(span, context.code(), _SERVER_ERRORS)
            span.end()


class ServerTracingInterceptor(HandlerInterceptor):
    """A SERVER span around every call (unary or streamed, health excepted), child of the
    caller's traceparent when the metadata carries one, and the current span while the
    handler (and the interceptors inside this one) run: it goes first in the list.
    With a shortcut, calls the sampler drops cost a random id and a context switch."""

    def __init__(self, tracer: Tracer, shortcut: Shortcut | None = None) -> None:
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

    def _starter(self, method: str) -> _Start:
        """Starts a call's span from its metadata (and the traceparent found in it); the name
        and attributes are made once per method."""
        name, attributes = _rpc_attributes(method)
        tracer, shortcut = self._tracer, self._shortcut
        if shortcut is not None:

            def start(metadata: Metadata, traceparent: str | None) -> Span:
                return shortcut.start(tracer, name, attributes, traceparent)

            return start

        def start_unshortened(metadata: Metadata, traceparent: str | None) -> Span:
            carrier = {k: v for k, v in metadata if isinstance(v, str)}
            return tracer.start_span(
                name, context=context_from(carrier), kind=SpanKind.SERVER, attributes=attributes
            )

        return start_unshortened

    def call_span(self, method: str) -> CallSpan | None:
        """The span of each call of method for a chain that runs every concern in one
        coroutine (global_utils.grpc.chain); None for a method served untraced."""
        if method.startswith(UNTRACED_PREFIXES):
            return None
        return CallSpan(self._starter(method))

    def _coroutine(
        self, inner: Callable[..., Awaitable[Any]], method: str
    ) -> Callable[..., Awaitable[Any]]:
        start = self._starter(method)

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = context.invocation_metadata() or ()
            span = start(metadata, _traceparent_in(metadata))
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
            metadata = context.invocation_metadata() or ()
            span = start(metadata, _traceparent_in(metadata))
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
    PROPAGATOR.inject(carrier)
    metadata = grpc.aio.Metadata(
        *[(k, v) for k, v in (details.metadata or ()) if k not in carrier], *carrier.items()
    )
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )
