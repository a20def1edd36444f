"""Tracing (OpenTelemetry API) of a process: what the composition root hands to the components
that trace. Spans per RPC are rpc_tracing, per SQL statement sql_tracing, trace context across
processes propagation; configuration (OTEL_* settings, the SDK's provider) is tracing_setup.

Off unless an exporter is configured, and then a true no-op: no span is made, nothing is
wrapped (no interceptor, the plain connection class), and neither the SDK nor an exporter is
imported. Components take `tracer: Tracer | None`; None means off."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import grpc
from opentelemetry.trace import (
    Tracer,
)

from global_utils.data.database import PooledConnection
from global_utils.observability.rpc_tracing import (
    ClientTracingInterceptor,
    ServerTracingInterceptor,
    Shortcut,
)
from global_utils.observability.sql_tracing import traced_connection_class
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

INSTRUMENTATION_NAME = "gotemp"


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
        # choose trace ids (tracing_setup.tracer_provider's do)
        ids = provider.id_generator if provider is not None else None
        self._shortcut = (
            Shortcut(sampling, ids)
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
        tracing = self.server_tracing()
        return [] if tracing is None else [tracing]

    def server_tracing(self) -> ServerTracingInterceptor | None:
        """The server side's span per call (a concern of the server's chain); None when off."""
        if self.tracer is None:
            return None
        return ServerTracingInterceptor(self.tracer, self._shortcut)

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
