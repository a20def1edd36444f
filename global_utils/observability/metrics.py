"""Prometheus metrics of one service process: gRPC server and client metrics named and labelled
as go-grpc-prometheus names them, and the process's registry that the state gauges
(global_utils.observability.gauges) hang off. The composition root makes one per process."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
)
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from pydantic import Field
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG
from global_utils.grpc.http_side import HttpResponse
from global_utils.grpc.interceptors import HandlerInterceptor
from global_utils.observability.gauges import Prober, StateCollector, unlabelled

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# go-grpc-prometheus's default buckets (Prometheus' DefBuckets) with 1 ms and 2.5 ms in front:
# most calls here finish in a few milliseconds.
HANDLING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Served by every host besides its own service (global_utils.grpc.host).
STANDARD_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
# grpc_code values are Go's names for the status codes, as go-grpc-prometheus reports them.
GO_CODE_NAMES = {
    code: "Canceled"
    if code is grpc.StatusCode.CANCELLED
    else "OK"
    if code is grpc.StatusCode.OK
    else "".join(part.title() for part in code.name.split("_"))
    for code in grpc.StatusCode
}


class MetricsSettings(BaseSettings):
    """Whether the service keeps and serves metrics, and how fresh the probed values are."""

    model_config = GROUP_CONFIG

    metrics_enabled: bool = True
    """false: no gRPC metric interceptors, no probes, /metrics answers 404 (for measuring
    their cost)."""
    metrics_refresh_seconds: float = Field(default=5.0, gt=0, le=300)
    """How often the probed values (the outbox backlog, the audit consumer's lag) are read, a
    query each time."""


def grpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming and server_streaming:
        return "bidi_stream"
    if client_streaming:
        return "client_stream"
    return "server_stream" if server_streaming else "unary"


def split_method(full: str | bytes) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    text = full.decode() if isinstance(full, bytes) else full
    service, _, method = text.lstrip("/").rpartition("/")
    return service or "unknown", method


class _RpcMetrics:
    """One side's (server or client) five go-grpc-prometheus metrics."""

    def __init__(self, registry: CollectorRegistry, side: str) -> None:
        what = "the server" if side == "server" else "the client"
        self.started = Counter(
            f"grpc_{side}_started_total",
            f"Total number of RPCs started on {what}.",
            GRPC_LABELS,
            registry=registry,
        )
        self.handled = Counter(
            f"grpc_{side}_handled_total",
            f"Total number of RPCs completed on {what}, regardless of success or failure.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.received = Counter(
            f"grpc_{side}_msg_received_total",
            f"Total number of RPC stream messages received on {what}.",
            GRPC_LABELS,
            registry=registry,
        )
        self.sent = Counter(
            f"grpc_{side}_msg_sent_total",
            f"Total number of gRPC stream messages sent by {what}.",
            GRPC_LABELS,
            registry=registry,
        )
        self.seconds = Histogram(
            f"grpc_{side}_handling_seconds",
            f"Histogram of response latency (seconds) of gRPC that had been application-level"
            f" handled by {what}.",
            GRPC_LABELS,
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )

    def method(self, kind: str, service: str, method: str) -> MethodMetrics:
        return MethodMetrics(self, (kind, service, method))


class MethodMetrics:
    """The label children of one method, resolved once: a call then costs a few additions."""

    def __init__(self, rpc: _RpcMetrics, labels: tuple[str, str, str]) -> None:
        self._rpc = rpc
        self._labels = labels
        self.started = rpc.started.labels(*labels)
        self.received = rpc.received.labels(*labels)
        self.sent = rpc.sent.labels(*labels)
        self.seconds = rpc.seconds.labels(*labels)
        self._handled: dict[grpc.StatusCode, Any] = {}
        self.streams_responses = labels[0] in ("server_stream", "bidi_stream")

    def initialize(self) -> None:
        """Every code at zero, as go-grpc-prometheus's InitializeMetrics does: rates and
        ratios over them exist before the first error."""
        for code in grpc.StatusCode:
            self._child(code)

    def _child(self, code: grpc.StatusCode) -> Any:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._rpc.handled.labels(
                *self._labels, GO_CODE_NAMES[code]
            )
        return child

    def handled(self, code: grpc.StatusCode, started: float) -> None:
        self._child(code).inc()
        self.seconds.observe(time.perf_counter() - started)


class ServiceMetrics:
    """A process's registry and what feeds it. Made once in the composition root; with
    enabled False it hands out no interceptors, no route and no probes."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.enabled = settings.metrics_enabled
        self.refresh_seconds = settings.metrics_refresh_seconds
        # go-grpc-prometheus has no *_created series; dashboards written for it expect none.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self._server = _RpcMetrics(self.registry, "server")
        self._client = _RpcMetrics(self.registry, "client")
        self._state = StateCollector()
        self._probes: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if self.enabled:
            ProcessCollector(registry=self.registry)
            self.registry.register(self._state)

    # --- what the composition root hands to the host and the clients --------------------

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        metrics = self.server_metrics()
        return [] if metrics is None else [metrics]

    def server_metrics(self) -> ServerMetricsInterceptor | None:
        """The server side's metrics (a concern of the server's chain); None when disabled."""
        return ServerMetricsInterceptor(self._server) if self.enabled else None

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        return [ClientMetricsInterceptor(self._client)] if self.enabled else []

    def server_method(self, service: str, method: str) -> MethodMetrics | None:
        """A unary method's server metrics, for a server that is not a grpc.aio one (the
        gateway counts its Connect calls as go-grpc-prometheus would); None when disabled."""
        return self._server.method("unary", service, method) if self.enabled else None

    def routes(self) -> dict[str, Callable[[], HttpResponse]]:
        return {METRICS_PATH: self.exposition} if self.enabled else {}

    def exposition(self) -> HttpResponse:
        return HttpResponse(generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4)

    def initialize_services(self, *grpc_services: str) -> None:
        """Zero series for every method of the named services and of the standard ones every
        host serves (from the protobuf descriptor pool), on every code."""
        if not self.enabled:
            return
        pool = descriptor_pool.Default()
        for name in (*grpc_services, *STANDARD_SERVICES):
            for method in pool.FindServiceByName(name).methods:
                kind = grpc_type(method.client_streaming, method.server_streaming)
                self._server.method(kind, name, method.name).initialize()

    # --- state read when scraped -----------------------------------------------------------

    def gauge(self, name: str, documentation: str, read: Callable[[], float | None]) -> None:
        """A gauge whose value read() returns at each scrape (None: not known yet)."""
        self._state.add(name, documentation, "gauge", lambda: unlabelled(read()))

    def counter(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A counter kept by its owner as a number that only grows."""
        self._state.add(name, documentation, "counter", lambda: unlabelled(read()))

    def labelled_counter(
        self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, float]]
    ) -> None:
        self._state.add(name, documentation, "counter", read, label)

    # --- values that need I/O: refreshed by a lifecycle component -----------------------

    def probe(self, name: str, refresh: Callable[[], Awaitable[object]]) -> None:
        """refresh() runs every METRICS_REFRESH_SECONDS while the service runs; it stores
        what it reads where the gauges find it."""
        if self.enabled:
            self._probes.append((name, refresh))

    def prober(self, after: Callable[[], Awaitable[object]] | None = None) -> Prober:
        """The lifecycle component running the probes, from when after() returns (e.g. the
        database is ready) on."""
        return Prober(self._probes, self.refresh_seconds, after)


# --- the server side -----------------------------------------------------------------------


def code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status a call that raised exc ends with."""
    if isinstance(exc, asyncio.CancelledError):
        # grpc cancels the handler when the caller went away or its deadline passed
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an exception it did not expect


class _CountingContext:
    """A streaming call's context that counts messages written and read through it (the
    health Watch writes with context.write)."""

    def __init__(self, context: grpc.aio.ServicerContext, metrics: MethodMetrics) -> None:
        self._context = context
        self._metrics = metrics

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._metrics.sent.inc()

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._metrics.received.inc()
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _counted(requests: AsyncIterable[Any], metrics: MethodMetrics) -> AsyncIterator[Any]:
    async for request in requests:
        metrics.received.inc()
        yield request


class ServerMetricsInterceptor(HandlerInterceptor):
    """go-grpc-prometheus's server metrics for every kind of method; must be the outermost
    interceptor so refusals by the others (authentication, parsing) are counted too. A
    streaming call is counted as handled when its stream ends."""

    def __init__(self, metrics: _RpcMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def method_metrics(self, handler: grpc.RpcMethodHandler, method: str) -> MethodMetrics:
        """The series of method (served by handler), made once per method."""
        kind = grpc_type(handler.request_streaming, handler.response_streaming)
        return self._metrics.method(kind, *split_method(method))

    def replace(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        metrics = self.method_metrics(handler, method)
        parse, serialize = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary_unary(handler.unary_unary, metrics), parse, serialize
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, metrics, requests_streamed=False),
                parse,
                serialize,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _streaming(handler.stream_unary, metrics, requests_streamed=True), parse, serialize
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streaming(handler.stream_stream, metrics, requests_streamed=True),
                parse,
                serialize,
            )
        return handler


def _unary_unary(inner: Callable[..., Awaitable[Any]], metrics: MethodMetrics) -> Any:
    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        metrics.started.inc()
        metrics.received.inc()
        started = time.perf_counter()
        try:
            response = await inner(request, context)
        except BaseException as exc:
            metrics.handled(code_of(exc, context), started)
            raise
        metrics.sent.inc()
        metrics.handled(context.code() or grpc.StatusCode.OK, started)
        return response

    return behavior


def _streaming(
    inner: Callable[..., Any], metrics: MethodMetrics, *, requests_streamed: bool
) -> Any:
    """A streaming behaviour counted: an async generator stays one (each yield a message
    sent), a coroutine writing with context.write stays a coroutine."""

    def begin(request: Any, context: grpc.aio.ServicerContext) -> tuple[Any, Any]:
        metrics.started.inc()
        if requests_streamed:
            request = _counted(request, metrics)
        else:
            metrics.received.inc()
        return request, _CountingContext(context, metrics)

    if inspect.isasyncgenfunction(inner):

        async def generator(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            request, counting = begin(request, context)
            try:
                async for response in inner(request, counting):
                    metrics.sent.inc()
                    yield response
            except BaseException as exc:
                metrics.handled(code_of(exc, context), started)
                raise
            metrics.handled(context.code() or grpc.StatusCode.OK, started)

        return generator

    # a stream-unary behaviour returns its one response; streamed responses are written
    one_response = requests_streamed and not metrics.streams_responses

    async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        request, counting = begin(request, context)
        try:
            response = await inner(request, counting)
        except BaseException as exc:
            metrics.handled(code_of(exc, context), started)
            raise
        if one_response:
            metrics.sent.inc()  # streamed messages went out through context.write instead
        metrics.handled(context.code() or grpc.StatusCode.OK, started)
        return response

    return coroutine


# --- the client side -----------------------------------------------------------------------


class ClientMetricsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """go-grpc-prometheus's client metrics for the unary calls one service makes to another
    (the only kind they make)."""

    def __init__(self, metrics: _RpcMetrics) -> None:
        self._metrics = metrics
        self._methods: dict[str, MethodMetrics] = {}

    def _method(self, full: str | bytes) -> MethodMetrics:
        key = full.decode() if isinstance(full, bytes) else full
        metrics = self._methods.get(key)
        if metrics is None:
            metrics = self._methods[key] = self._metrics.method("unary", *split_method(key))
        return metrics

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metrics = self._method(client_call_details.method)
        metrics.started.inc()
        started = time.perf_counter()
        try:
            call = await continuation(client_call_details, request)
            metrics.sent.inc()
            code = await call.code()
        except asyncio.CancelledError:
            metrics.handled(grpc.StatusCode.CANCELLED, started)
            raise
        except grpc.aio.AioRpcError as exc:
            metrics.handled(exc.code(), started)
            raise
        if code is grpc.StatusCode.OK:
            metrics.received.inc()
        metrics.handled(code, started)
        return call
