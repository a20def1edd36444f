"""Tracing configuration: the standard OTEL_* variables, and the tracer provider (OpenTelemetry
SDK) they describe, exporting over OTLP/gRPC or OTLP/HTTP. Nothing of OpenTelemetry is imported
here until a provider is made, so a process with tracing off (and every CLI, which reads its
settings through this module) loads neither the SDK nor an exporter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler

OtlpProtocol = Literal["grpc", "http/protobuf"]
OTLP_PROTOCOLS: tuple[OtlpProtocol, ...] = ("grpc", "http/protobuf")
# The specification recommends http/protobuf as the default but allows grpc where it was the
# default before, as it is here (and in the Python SDK's own configuration).
DEFAULT_OTLP_PROTOCOL: OtlpProtocol = "grpc"
# the receivers' standard ports: a collector (or Jaeger) takes OTLP/gRPC on 4317, OTLP/HTTP on 4318
DEFAULT_OTLP_ENDPOINTS: dict[OtlpProtocol, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318",
}
# where OTLP/HTTP traces go relative to the general endpoint (a base URL)
OTLP_HTTP_TRACES_PATH = "v1/traces"

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

    model_config = GROUP_CONFIG

    otel_sdk_disabled: bool = False
    """true turns tracing off whatever else is set."""
    otel_traces_exporter: Literal["", "otlp", "console", "none"] = ""
    """Where spans go; empty: OTLP when an endpoint is set, else tracing is off."""
    otel_exporter_otlp_endpoint: str = ""
    """The OTLP receiver (`http://` is plaintext); setting it turns tracing on. Over HTTP it is
    a base URL, traces going to its `v1/traces`."""
    otel_exporter_otlp_traces_endpoint: str = ""
    """The OTLP receiver of traces alone (wins over OTEL_EXPORTER_OTLP_ENDPOINT; over HTTP the
    full URL); setting it turns tracing on."""
    otel_exporter_otlp_protocol: Literal["", "grpc", "http/protobuf"] = ""
    """The OTLP transport; empty: grpc."""
    otel_exporter_otlp_traces_protocol: Literal["", "grpc", "http/protobuf"] = ""
    """The OTLP transport of traces (wins over OTEL_EXPORTER_OTLP_PROTOCOL)."""
    otel_service_name: str = ""
    """The resource's service.name; empty: the process's own name (user, promotion, ...)."""
    otel_traces_sampler: Sampling = "parentbased_always_on"
    """The standard sampler deciding which traces are kept."""
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0.0, le=1.0)
    """The ratio the *traceidratio samplers keep, 0..1 (0.01 is the recommended 1 %)."""

    @field_validator("otel_traces_exporter", "otel_traces_sampler", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "otel_exporter_otlp_protocol", "otel_exporter_otlp_traces_protocol", mode="before"
    )
    @classmethod
    def _known_protocol(cls, value: Any) -> Any:
        # stripped but not lower-cased, as the SDK's own configuration reads these
        if not isinstance(value, str):
            return value
        protocol = value.strip()
        if protocol and protocol not in OTLP_PROTOCOLS:
            raise ValueError(f"unsupported OTLP protocol {protocol!r} (grpc or http/protobuf)")
        return protocol

    @property
    def tracing_enabled(self) -> bool:
        if self.otel_sdk_disabled:
            return False
        if self.otel_traces_exporter:
            return self.otel_traces_exporter != "none"
        return bool(self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint)

    @property
    def otlp_traces_protocol(self) -> OtlpProtocol:
        return (
            self.otel_exporter_otlp_traces_protocol
            or self.otel_exporter_otlp_protocol
            or DEFAULT_OTLP_PROTOCOL
        )

    @property
    def otlp_traces_endpoint(self) -> str:
        """Where spans go, by the specification's rules for the protocol: the traces endpoint
        as given; else the general one (or the protocol's default), which for OTLP/HTTP is a
        base URL that v1/traces is appended to (as the SDK's HTTP exporter does it)."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        protocol = self.otlp_traces_protocol
        base = self.otel_exporter_otlp_endpoint or DEFAULT_OTLP_ENDPOINTS[protocol]
        if protocol == "grpc":
            return base
        return f"{base.removesuffix('/')}/{OTLP_HTTP_TRACES_PATH}"


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
    provider = TracerProvider(
        resource=resource, sampler=sampler(settings), id_generator=preset_trace_ids()
    )
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


class RootSampling:
    """The configured sampler's decision for a span without a parent, known without asking
    it: the server interceptor draws a call's trace id itself and, for the calls the sampler
    would drop (most of them, when traces are sampled), makes no SDK span at all.
    For always_on roots it knows nothing (every root is kept: the SDK makes each span)."""

    # TraceIdRatioBased decides on the trace id's low 64 bits.
    TRACE_ID_LIMIT = (1 << 64) - 1

    def __init__(self, settings: TracingSettings) -> None:
        kind = settings.otel_traces_sampler
        # children of an unsampled parent are dropped by the parent-based samplers only
        self.parent_based = kind.startswith("parentbased_")
        root = kind.removeprefix("parentbased_")
        ratio = 0.0 if root == "always_off" else settings.otel_traces_sampler_arg
        # the bound TraceIdRatioBased keeps below (None: every root is kept)
        self.bound: int | None = (
            None if root == "always_on" else round(ratio * (self.TRACE_ID_LIMIT + 1))
        )

    def drops(self, trace_id: int) -> bool:
        return self.bound is not None and trace_id & self.TRACE_ID_LIMIT >= self.bound


@runtime_checkable
class PresetTraceIds(Protocol):
    """An id generator whose next trace id the caller may choose (0: a random one)."""

    preset: int


def preset_trace_ids() -> IdGenerator:
    """The SDK's random ids, except that the trace id of the next span may be chosen by the
    caller beforehand (PresetTraceIds.preset): the server interceptor, having drawn a root
    trace id and seen that the sampler keeps it, has the SDK start the span with that id."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetTraceIds(RandomIdGenerator):
        def __init__(self) -> None:
            # set just before a start_span on the event loop's thread, taken by it at once;
            # a span started on another thread in between would take it instead, which only
            # gives that span a random id of the same kind
            self.preset = 0

        def generate_trace_id(self) -> int:
            trace_id, self.preset = self.preset, 0
            return trace_id or super().generate_trace_id()

    return PresetTraceIds()


def _configured_exporter(settings: TracingSettings) -> SpanExporter:
    if settings.otel_traces_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=settings.otel_service_name or None)
    # TLS, headers, timeout and compression: OTEL_EXPORTER_OTLP_(TRACES_)* as each exporter reads
    # them (the same variables for both); an http:// endpoint is plaintext, https:// is TLS.
    if settings.otlp_traces_protocol == "http/protobuf":
        return _http_exporter(settings)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint)


# the CA file the HTTP exporter verifies an https:// receiver with, in the order it reads them
_CERTIFICATE_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
# a requests session of the operator's own making (the SDK's OTLP/HTTP credential provider)
_SESSION_VARIABLES = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)


def _http_exporter(settings: TracingSettings) -> SpanExporter:
    import os

    import requests
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    class CertificateFirst(requests.Session):
        """requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (set in many images and CI
        machines) replace a session's own CA file, so the exporter would silently ignore
        OTEL_EXPORTER_OTLP_CERTIFICATE there (psf/requests#4726, kept for compatibility);
        this session's CA file wins instead. Proxies and the rest still come from the
        environment."""

        def merge_environment_settings(
            self,
            url: str,
            proxies: dict[str, str] | None,
            stream: bool | None,
            verify: Any,
            cert: Any,
        ) -> dict[str, Any]:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if verify is None and isinstance(self.verify, str):
                merged["verify"] = self.verify
            return merged

    certificate = any(os.environ.get(name) for name in _CERTIFICATE_VARIABLES)
    own_session = any(os.environ.get(name) for name in _SESSION_VARIABLES)
    # the exporter sets the session's CA file (verify) from the variables itself
    session = CertificateFirst() if certificate and not own_session else None
    return OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint, session=session)
