"""Spans exported the way a service exports them (the provider OTEL_* describe) to real OTLP
receivers on loopback, over gRPC and over HTTP: the endpoint rules of each, and the TLS, header
and compression variables the exporters read, for both."""

from __future__ import annotations

import asyncio
import http.client
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from devtools import certs
from devtools.otlp_sink import OtlpHttpSink, OtlpSink
from global_utils.config.loading import load_settings
from global_utils.observability.tracing_setup import TracingSettings, tracer_provider

PROTOCOLS = ["grpc", "http/protobuf"]
Sink = OtlpSink | OtlpHttpSink


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The test's OTEL_* variables only (the settings and the exporters both read them)."""
    for name in os.environ:
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(scope="module")
def tls_dir(stack_dir: Path) -> Path:
    """A development CA and certificates (each valid for 127.0.0.1), made for this module."""
    folder = stack_dir / "otlp-tls"
    certs.write(folder)
    return folder


async def started_sink(
    protocol: str, *, path: str = "/v1/traces", tls: tuple[Path, Path] | None = None
) -> Sink:
    sink: Sink = OtlpHttpSink(path=path, tls=tls) if protocol != "grpc" else OtlpSink(tls=tls)
    await sink.start()
    return sink


@pytest.fixture
async def sinks() -> AsyncIterator[list[Sink]]:
    """Receivers a test starts, stopped after it."""
    running: list[Sink] = []
    yield running
    for sink in running:
        await sink.stop()


async def export_one_span(env: pytest.MonkeyPatch, values: dict[str, str], name: str) -> None:
    """One span named name through a provider made from values as a service makes it, flushed
    (the export itself done, in a thread: the receivers answer on this loop)."""
    for variable, value in values.items():
        env.setenv(variable, value)
    provider = tracer_provider(load_settings(TracingSettings), "otlp-test")
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span(name):
        pass
    try:
        await asyncio.to_thread(provider.force_flush)
    finally:
        await asyncio.to_thread(provider.shutdown)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_spans_reach_a_real_receiver_with_the_headers_and_compression_asked_for(
    env: pytest.MonkeyPatch, sinks: list[Sink], protocol: str
) -> None:
    sink = await started_sink(protocol)
    sinks.append(sink)
    await export_one_span(
        env,
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme,x-api-key=k1",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        },
        "exported",
    )
    assert [(s.service, s.name) for s in sink.spans] == [("otlp-test", "exported")]
    [export] = sink.exports
    assert export.headers["x-tenant"] == "acme" and export.headers["x-api-key"] == "k1"
    if isinstance(sink, OtlpHttpSink):
        # the general endpoint is a base URL: spans go to its v1/traces, gzip-compressed
        assert export.path == "/v1/traces"
        assert export.headers["content-encoding"] == "gzip"
        assert export.headers["content-type"] == "application/x-protobuf"


async def test_over_http_the_general_endpoint_is_a_base_url_under_its_path(
    env: pytest.MonkeyPatch, sinks: list[Sink]
) -> None:
    sink = await started_sink("http/protobuf", path="/otlp/v1/traces")
    sinks.append(sink)
    await export_one_span(
        env,
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{sink.endpoint}/otlp",
        },
        "under a base path",
    )
    assert [s.name for s in sink.spans] == ["under a base path"]
    assert [r.path for r in sink.requests] == ["/otlp/v1/traces"]


async def test_over_http_the_traces_endpoint_is_used_as_given(
    env: pytest.MonkeyPatch, sinks: list[Sink]
) -> None:
    sink = await started_sink("http/protobuf", path="/ingest/spans")
    sinks.append(sink)
    await export_one_span(
        env,
        {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            # the general endpoint loses to the traces one, which gets no v1/traces
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{sink.endpoint}/elsewhere",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink.endpoint}/ingest/spans",
        },
        "to the traces endpoint",
    )
    assert [s.name for s in sink.spans] == ["to the traces endpoint"]
    assert [r.path for r in sink.requests] == ["/ingest/spans"]


@pytest.fixture(scope="module")
def other_ca(stack_dir: Path) -> Path:
    """The CA of another set of development certificates: it signed nothing the tests serve."""
    folder = stack_dir / "otlp-tls-other"
    certs.write(folder)
    return folder / "ca.pem"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_https_endpoint_is_verified_with_the_certificate_variables_ca(
    env: pytest.MonkeyPatch, sinks: list[Sink], tls_dir: Path, other_ca: Path, protocol: str
) -> None:
    sink = await started_sink(protocol, tls=(tls_dir / "user.pem", tls_dir / "user.key"))
    sinks.append(sink)
    assert sink.endpoint.startswith("https://")
    ca = tls_dir / "ca.pem"
    trusted = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca),
        # a CA bundle for requests in the environment (many images and CI machines set one)
        # must not replace the one named for OTLP
        "REQUESTS_CA_BUNDLE": str(other_ca),
        "CURL_CA_BUNDLE": str(other_ca),
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",  # bounds the retries of the refused exports below
    }
    await export_one_span(env, trusted, "over tls")
    assert [s.name for s in sink.spans] == ["over tls"]

    # the control: a CA that did not sign the receiver's certificate gets nothing through,
    # whatever bundle the environment names
    untrusted = trusted | {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(other_ca),
        "REQUESTS_CA_BUNDLE": str(ca),
        "CURL_CA_BUNDLE": str(ca),
    }
    await export_one_span(env, untrusted, "refused")
    assert [s.name for s in sink.spans] == ["over tls"]

    # the traces variable wins over the general one
    env.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(ca))
    await export_one_span(env, untrusted, "over tls, traces certificate")
    assert [s.name for s in sink.spans] == ["over tls", "over tls, traces certificate"]


def http_post(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


async def test_the_http_receiver_accepts_only_an_otlp_export_at_its_path(
    sinks: list[Sink],
) -> None:
    # so that the tests above passing means the exporter sent what a collector takes
    sink = await started_sink("http/protobuf")
    assert isinstance(sink, OtlpHttpSink)
    sinks.append(sink)
    valid = trace_service_pb2.ExportTraceServiceRequest().SerializeToString()
    protobuf = {"Content-Type": "application/x-protobuf"}
    cases = [
        ("POST", "/v1/traces", valid, protobuf, 200),
        ("POST", "/", valid, protobuf, 404),
        ("POST", "/v1/metrics", valid, protobuf, 404),
        ("GET", "/v1/traces", b"", {}, 405),
        ("POST", "/v1/traces", b"{}", {"Content-Type": "application/json"}, 415),
        ("POST", "/v1/traces", b"\xff\xff\xff", protobuf, 400),
        ("POST", "/v1/traces", valid, protobuf | {"Content-Encoding": "br"}, 415),
    ]
    for method, path, body, headers, status in cases:
        got = await asyncio.to_thread(http_post, sink.port, method, path, body, headers)
        assert got == status, (method, path, headers)
    assert [r.status for r in sink.requests] == [case[-1] for case in cases]
