"""Tracing configuration: the standard OTEL_* variables, and the tracer provider (OpenTelemetry
SDK) they describe. Nothing of OpenTelemetry is imported here until a provider is made, so a
process with tracing off (and every CLI, which reads its settings through this module) loads
neither the SDK nor an exporter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

DEFAULT_OTLP_ENDPOINT = "http://localhost:4317"

Sampling = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TracingSettings(BaseSettings):
    """The OpenTelemetry variables this suite reads (their standard meanings). Tracing is on
    when OTEL_TRACES_EXPORTER names an exporter, or it is unset and an OTLP endpoint is set."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    otel_sdk_disabled: bool = False
    otel_traces_exporter: Literal["", "otlp", "console", "none"] = ""
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    # Only OTLP over gRPC is installed (grpcio is here anyway; the HTTP exporter would add
    # requests and its dependencies).
    otel_exporter_otlp_protocol: Literal["", "grpc"] = ""
    otel_exporter_otlp_traces_protocol: Literal["", "grpc"] = ""
    otel_service_name: str = ""
    otel_traces_sampler: Sampling = "parentbased_always_on"
    # the ratio of the *traceidratio samplers, 0..1
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("otel_traces_exporter", "otel_traces_sampler", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def tracing_enabled(self) -> bool:
        if self.otel_sdk_disabled:
            return False
        if self.otel_traces_exporter:
            return self.otel_traces_exporter != "none"
        return bool(self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint)

    @property
    def otlp_traces_endpoint(self) -> str:
        return (
            self.otel_exporter_otlp_traces_endpoint
            or self.otel_exporter_otlp_endpoint
            or DEFAULT_OTLP_ENDPOINT
        )


def tracer_provider(
    settings: TracingSettings, service: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The provider a service traces with, or None when tracing is off. A given exporter (the
    tests' in-memory one) turns tracing on and gets each span as it ends; otherwise spans are
    batched (OTEL_BSP_* tune the batches) to the exporter OTEL_TRACES_EXPORTER names.
    The SDK is imported here only, so a process with tracing off never loads it."""
    if exporter is None and not settings.tracing_enabled:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES; the name given here wins over them.
    resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service})
    provider = TracerProvider(resource=resource, sampler=sampler(settings))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_configured_exporter(settings)))
    return provider


def sampler(settings: TracingSettings) -> Sampler:
    """OTEL_TRACES_SAMPLER (and _ARG) as the SDK's sampler."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        ParentBased,
        TraceIdRatioBased,
    )

    kind = settings.otel_traces_sampler
    parent_based = kind.startswith("parentbased_")
    root: Sampler
    match kind.removeprefix("parentbased_"):
        case "always_on":
            root = ALWAYS_ON
        case "always_off":
            root = ALWAYS_OFF
        case _:
            root = TraceIdRatioBased(settings.otel_traces_sampler_arg)
    return ParentBased(root) if parent_based else root


def _configured_exporter(settings: TracingSettings) -> SpanExporter:
    if settings.otel_traces_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=settings.otel_service_name or None)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    # TLS, headers, timeout and compression: OTEL_EXPORTER_OTLP_(TRACES_)* as the exporter reads
    # them; an http:// endpoint is plaintext.
    return OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint)
