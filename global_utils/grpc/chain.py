"""The server's one grpc.aio interceptor: tracing, metrics, the request id and its log line,
error mapping, authentication and request parsing, run in turn by one coroutine per call."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import AbortError

from global_errors import MessageKey, Unauthenticated
from global_utils.grpc.interceptors import (
    REQUEST_ID_HEADER,
    AuthInterceptor,
    Behavior,
    ErrorMappingInterceptor,
    HandlerInterceptor,
    RequestLoggingInterceptor,
    RequestParsingInterceptor,
    abort_with,
    call_request_id,
    log_handled,
    parse_unary,
)
from global_utils.identity.principal import bind_principal, reset_principal, token_from_metadata
from global_utils.observability.logs import request_id
from global_utils.observability.metrics import ServerMetricsInterceptor, code_of
from global_utils.observability.propagation import TRACEPARENT

if TYPE_CHECKING:
    from global_utils.observability.rpc_tracing import ServerTracingInterceptor


class ServerChain(HandlerInterceptor):
    """Every server-side concern, the first listed outermost: tracing (its span covers the call
    as the others see it), metrics (they count the refusals of those after them), the request
    id and its log line, error mapping, authentication, and parsing last (a body that does not
    parse is reported only to a caller authentication let in).

    Each concern keeps its rules in its own class. The chain asks them once per method for
    what that method needs (its metric series, its span's name, its verifier, its parser), and
    runs a unary-unary call (every method the services define) through all of them in one
    coroutine, reading the call's metadata once: grpc.aio would otherwise run an interceptor
    coroutine per concern to find the handler and a wrapping coroutine per concern around
    it, on every call. Streaming methods (health's Watch, reflection) get the concerns' own
    wrappers, composed in the same order once per method."""

    def __init__(
        self,
        *,
        tracing: ServerTracingInterceptor | None,
        metrics: ServerMetricsInterceptor | None,
        logging: RequestLoggingInterceptor,
        errors: ErrorMappingInterceptor,
        auth: AuthInterceptor,
        parsing: RequestParsingInterceptor,
    ) -> None:
        super().__init__()
        self._tracing = tracing
        self._metrics = metrics
        self._errors = errors
        self._auth = auth
        self.concerns: tuple[HandlerInterceptor, ...] = (
            *([tracing] if tracing is not None else []),
            *([metrics] if metrics is not None else []),
            logging,
            errors,
            auth,
            parsing,
        )

    def replace(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.unary_unary is None:
            for concern in reversed(self.concerns):
                handler = concern.replace(handler, method)
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._unary(handler, method), response_serializer=handler.response_serializer
        )

    def _unary(self, handler: grpc.RpcMethodHandler, method: str) -> Behavior:
        """One coroutine per call doing what the concerns' wrappers, nested in the chain's
        order, would do."""
        inner: Behavior = handler.unary_unary
        parse = handler.request_deserializer
        span = self._tracing.call_span(method) if self._tracing is not None else None
        series = self._metrics.method_metrics(handler, method) if self._metrics else None
        verifier = self._auth.verifier_for(method)
        language = self._errors.language

        async def call(body: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = context.invocation_metadata() or ()
            sent_id: str | None = None
            traceparent: str | None = None
            for key, value in metadata:
                if key == REQUEST_ID_HEADER:
                    if sent_id is None and isinstance(value, str):
                        sent_id = value
                elif key == TRACEPARENT and traceparent is None and isinstance(value, str):
                    traceparent = value
            # tracing
            begun = span.begin(metadata, traceparent) if span is not None else None
            # metrics
            if series is not None:
                series.started.inc()
                series.received.inc()
            started = time.perf_counter()
            # the request id and its log line
            id_token = request_id.set(call_request_id(sent_id or ""))
            try:
                # error mapping
                try:
                    request = body
                    if verifier is None:
                        if parse is not None:
                            request = parse_unary(parse, body)
                        response = await inner(request, context)
                    else:
                        # authentication
                        token = token_from_metadata(metadata)
                        if token is None:
                            raise Unauthenticated(MessageKey.TOKEN_MISSING)
                        bound = bind_principal(await verifier.verify(token))
                        try:
                            # parsing
                            if parse is not None:
                                request = parse_unary(parse, body)
                            response = await inner(request, context)
                        finally:
                            reset_principal(bound)
                except AbortError:
                    raise
                except Exception as exc:
                    await abort_with(context, method, exc, language)
                finally:
                    log_handled(method, context, started)
                    request_id.reset(id_token)
            except BaseException as exc:
                if series is not None:
                    series.handled(code_of(exc, context), started)
                if span is not None and begun is not None:
                    span.end(begun, context, exc)
                raise
            if series is not None:
                series.sent.inc()
                series.handled(context.code() or grpc.StatusCode.OK, started)
            if span is not None and begun is not None:
                span.end(begun, context)
            return response

        return call
