"""Which OTLP exporter spans go to, and where: OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL choose gRPC or
HTTP, and the endpoint follows the specification's rules for each (as the SDK's exporters read
the same variables); an unknown protocol stops the process with one line naming the variable."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace.export import SpanExporter

from global_utils.config.loading import load_settings
from global_utils.observability.tracing_setup import TracingSettings, _configured_exporter

GENERIC = "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any OTEL_* variable of the caller's."""
    for name in os.environ:
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def configured(env: pytest.MonkeyPatch, values: dict[str, str]) -> TracingSettings:
    for name, value in values.items():
        env.setenv(name, value)
    return load_settings(TracingSettings)


@pytest.fixture
def exporters() -> Iterator[list[SpanExporter]]:
    """Exporters a test makes, shut down after it (the gRPC one holds a channel)."""
    made: list[SpanExporter] = []
    yield made
    for exporter in made:
        exporter.shutdown()


@pytest.mark.parametrize(
    ("values", "protocol"),
    [
        ({}, "grpc"),  # the default, as before and as the SDK's own configuration has it
        ({GENERIC: "grpc"}, "grpc"),
        ({GENERIC: "http/protobuf"}, "http/protobuf"),
        ({TRACES: "http/protobuf"}, "http/protobuf"),
        ({TRACES: "grpc"}, "grpc"),
        ({GENERIC: "grpc", TRACES: "http/protobuf"}, "http/protobuf"),
        ({GENERIC: "http/protobuf", TRACES: "grpc"}, "grpc"),
        ({GENERIC: "http/protobuf", TRACES: ""}, "http/protobuf"),  # empty: not set
        ({GENERIC: " http/protobuf "}, "http/protobuf"),
    ],
)
def test_the_traces_protocol_wins_over_the_general_one_and_grpc_is_the_default(
    env: pytest.MonkeyPatch,
    exporters: list[SpanExporter],
    values: dict[str, str],
    protocol: str,
) -> None:
    settings = configured(env, values | {ENDPOINT: "http://collector:4444"})
    assert settings.otlp_traces_protocol == protocol
    exporter = _configured_exporter(settings)
    exporters.append(exporter)
    expected = HttpSpanExporter if protocol == "http/protobuf" else GrpcSpanExporter
    assert type(exporter) is expected


@pytest.mark.parametrize(
    ("values", "endpoint"),
    [
        # gRPC: an endpoint is a target, used as given; the default port is 4317
        ({}, "http://localhost:4317"),
        ({ENDPOINT: "http://collector:4317"}, "http://collector:4317"),
        ({ENDPOINT: "https://collector:443"}, "https://collector:443"),
        ({TRACES_ENDPOINT: "http://traces:4317"}, "http://traces:4317"),
        ({ENDPOINT: "http://a:4317", TRACES_ENDPOINT: "http://b:4317"}, "http://b:4317"),
        # HTTP: the general endpoint is a base URL that v1/traces is appended to; 4318
        ({GENERIC: "http/protobuf"}, "http://localhost:4318/v1/traces"),
        ({GENERIC: "http/protobuf", ENDPOINT: "http://c:4318"}, "http://c:4318/v1/traces"),
        ({GENERIC: "http/protobuf", ENDPOINT: "http://c:4318/"}, "http://c:4318/v1/traces"),
        (
            {GENERIC: "http/protobuf", ENDPOINT: "https://c/mycollector/"},
            "https://c/mycollector/v1/traces",
        ),
        (
            {GENERIC: "http/protobuf", ENDPOINT: "https://c/mycollector"},
            "https://c/mycollector/v1/traces",
        ),
        # ... and the traces endpoint is used as it is, with or without a path
        ({TRACES: "http/protobuf", TRACES_ENDPOINT: "http://t:4318"}, "http://t:4318"),
        (
            {GENERIC: "http/protobuf", TRACES_ENDPOINT: "https://t/custom/traces"},
            "https://t/custom/traces",
        ),
        (
            {GENERIC: "http/protobuf", ENDPOINT: "http://a:4318", TRACES_ENDPOINT: "http://b/x"},
            "http://b/x",
        ),
        # the protocol that applies decides, whichever variable named it
        ({GENERIC: "grpc", TRACES: "http/protobuf"}, "http://localhost:4318/v1/traces"),
        ({GENERIC: "http/protobuf", TRACES: "grpc", ENDPOINT: "http://c:4317"}, "http://c:4317"),
    ],
)
def test_the_endpoint_follows_the_protocols_rules(
    env: pytest.MonkeyPatch, values: dict[str, str], endpoint: str
) -> None:
    assert configured(env, values).otlp_traces_endpoint == endpoint


@pytest.mark.parametrize(
    "values",
    [
        {},
        {ENDPOINT: "http://collector:4317"},
        {ENDPOINT: "http://a:4317", TRACES_ENDPOINT: "https://b:4317"},
        {GENERIC: "http/protobuf"},
        {GENERIC: "http/protobuf", ENDPOINT: "http://collector:4318"},
        {GENERIC: "http/protobuf", ENDPOINT: "https://collector/base/"},
        {GENERIC: "http/protobuf", ENDPOINT: "https://collector/base"},
        {GENERIC: "http/protobuf", ENDPOINT: "http://a", TRACES_ENDPOINT: "http://b/t"},
        {TRACES: "http/protobuf", TRACES_ENDPOINT: "http://b:4318"},
    ],
)
def test_the_exporter_goes_where_the_sdks_own_exporter_would_from_the_same_variables(
    env: pytest.MonkeyPatch, exporters: list[SpanExporter], values: dict[str, str]
) -> None:
    settings = configured(env, values)
    ours = _configured_exporter(settings)
    # the SDK's exporter of the same kind, left to read every variable itself
    theirs = HttpSpanExporter() if isinstance(ours, HttpSpanExporter) else GrpcSpanExporter()
    exporters += [ours, theirs]
    # _endpoint: where each sends (the URL for HTTP; the gRPC target, host:port); private, but
    # the one place both keep it
    assert ours._endpoint == theirs._endpoint


@pytest.mark.parametrize("variable", [GENERIC, TRACES])
@pytest.mark.parametrize("value", ["http/json", "HTTP/PROTOBUF", "http", "zipkin"])
def test_an_unknown_protocol_stops_the_process_with_one_line_naming_the_variable(
    env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(TracingSettings)
    assert str(stopped.value.code) == (
        f"configuration error: {variable}: unsupported OTLP protocol {value!r} "
        "(grpc or http/protobuf)"
    )
