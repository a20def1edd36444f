"""Local OTLP trace receivers (what a collector or Jaeger accepts): OtlpSink speaks OTLP/gRPC
(:4317), OtlpHttpSink OTLP/HTTP with protobuf bodies (:4318, POST /v1/traces). Both answer every
valid export and keep a summary of each span, for tests and `make bench` to export to on
127.0.0.1. `python -m devtools.otlp_sink PORT` serves gRPC until SIGTERM, then prints the count."""

from __future__ import annotations

import asyncio
import gzip
import signal
import ssl
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # 32 hex digits


@dataclass(frozen=True)
class ReceivedExport:
    """One export request: where it went (gRPC: the method; HTTP: the request's path), its
    metadata or headers (names lower-cased) and how many spans it carried."""

    path: str
    headers: dict[str, str]
    spans: int


class _Spans:
    """What both receivers keep of the requests they accept."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.count = 0
        self.spans: list[ReceivedSpan] = []
        self.exports: list[ReceivedExport] = []

    def record(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        path: str,
        headers: dict[str, str],
    ) -> None:
        received = 0
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                received += len(scope_spans.spans)
                if self.keep:
                    self.spans += [
                        ReceivedSpan(service, span.name, span.trace_id.hex())
                        for span in scope_spans.spans
                    ]
        self.count += received
        if self.keep:
            self.exports.append(ReceivedExport(path, headers, received))


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, spans: _Spans) -> None:
        self.spans = spans

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        metadata = {
            key.lower(): value
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str)
        }
        self.spans.record(
            request, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", metadata
        )
        return trace_service_pb2.ExportTraceServiceResponse()


def _server_tls(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


class OtlpSink:
    """The OTLP/gRPC receiver on 127.0.0.1 (a free port unless given); keep=False only counts.
    With tls (certificate and key files) it serves TLS, and its endpoint is https://."""

    def __init__(
        self, port: int = 0, *, keep: bool = True, tls: tuple[Path, Path] | None = None
    ) -> None:
        self._port = port
        self._spans = _Spans(keep)
        self._tls = tls
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return self._spans.count

    @property
    def spans(self) -> list[ReceivedSpan]:
        return list(self._spans.spans)

    @property
    def exports(self) -> list[ReceivedExport]:
        return list(self._spans.exports)

    async def start(self) -> None:
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Receiver(self._spans), server)
        address = f"127.0.0.1:{self._port}"
        if self._tls is None:
            self.port = server.add_insecure_port(address)
        else:
            cert_file, key_file = self._tls
            credentials = grpc.ssl_server_credentials(
                [(key_file.read_bytes(), cert_file.read_bytes())]
            )
            self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


@dataclass(frozen=True)
class HttpRequest:
    """A request as OtlpHttpSink saw it, whatever became of it."""

    method: str
    path: str
    status: int


class OtlpHttpSink:
    """The OTLP/HTTP receiver on 127.0.0.1 (a free port unless given): POST of a protobuf
    ExportTraceServiceRequest (plain, gzip or deflate) to path, answered as a collector does
    (200 with an ExportTraceServiceResponse; 404, 405, 415 or 400 for anything else). Its
    endpoint is the base URL (OTEL_EXPORTER_OTLP_ENDPOINT); every request is kept in requests.
    With tls (certificate and key files) it serves HTTPS."""

    CONTENT_TYPE = "application/x-protobuf"
    MAX_BODY = 16 * 1024 * 1024

    def __init__(
        self,
        port: int = 0,
        *,
        path: str = "/v1/traces",
        keep: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self._port = port
        self._path = path
        self._spans = _Spans(keep)
        self._tls = tls
        self._server: asyncio.Server | None = None
        # open connections: closed on stop, which ends their tasks (cancelling them instead
        # makes asyncio's stream callback log the cancellation as an error on 3.11)
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self.requests: list[HttpRequest] = []
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return self._spans.count

    @property
    def spans(self) -> list[ReceivedSpan]:
        return list(self._spans.spans)

    @property
    def exports(self) -> list[ReceivedExport]:
        return list(self._spans.exports)

    async def start(self) -> None:
        tls = _server_tls(*self._tls) if self._tls else None
        self._server = await asyncio.start_server(
            self._connection, "127.0.0.1", self._port, ssl=tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            tasks = list(self._connections.values())
            for writer in list(self._connections):
                writer.close()
            await asyncio.gather(*tasks)
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[writer] = task
        try:
            # one request after another on a kept-alive connection, until the client closes
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass  # the client went away mid-request, or sent a line past the reader's limit
        finally:
            self._connections.pop(writer, None)
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Reads and answers one request; False when the connection is to be closed."""
        request_line = await reader.readline()
        if not request_line:
            return False
        parts = request_line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._answer(writer, HTTPStatus.BAD_REQUEST, close=True)
            return False
        method, target, _ = parts
        path = target.split("?", 1)[0]
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if "transfer-encoding" in headers or not 0 <= length <= self.MAX_BODY:
            # OTLP exporters send a sized body; anything else is refused, and the connection
            # closed since its framing is unknown
            self.requests.append(HttpRequest(method, path, HTTPStatus.BAD_REQUEST))
            await self._answer(writer, HTTPStatus.BAD_REQUEST, close=True)
            return False
        body = await reader.readexactly(length)
        status, payload = self._handle(method, path, headers, body)
        self.requests.append(HttpRequest(method, path, status))
        close = headers.get("connection", "").lower() == "close"
        await self._answer(writer, status, payload, close=close)
        return not close

    def _handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[HTTPStatus, bytes]:
        if path != self._path:
            return HTTPStatus.NOT_FOUND, b""
        if method != "POST":
            return HTTPStatus.METHOD_NOT_ALLOWED, b""
        if headers.get("content-type", "").split(";")[0].strip() != self.CONTENT_TYPE:
            return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b""
        try:
            match headers.get("content-encoding", "identity"):
                case "identity":
                    pass
                case "gzip":
                    body = gzip.decompress(body)
                case "deflate":
                    body = zlib.decompress(body)
                case _:
                    return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b""
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        except (OSError, EOFError, zlib.error, DecodeError):
            return HTTPStatus.BAD_REQUEST, b""
        self._spans.record(request, path, headers)
        return HTTPStatus.OK, trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        payload: bytes = b"",
        *,
        close: bool = False,
    ) -> None:
        head = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Content-Type: {self.CONTENT_TYPE}",
            f"Content-Length: {len(payload)}",
        ]
        if close:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()


@dataclass
class SinkProcess:
    """A receiver in a process of its own (its CPU not the caller's): the endpoint to export
    to, and once stopped, how many spans it received."""

    endpoint: str
    received: int | None = field(default=None)


@contextmanager
def sink_process() -> Iterator[SinkProcess]:
    """`python -m devtools.otlp_sink` on a loopback port of the system's choosing (its ready
    line names its endpoint) until the block ends."""
    from devtools.stack import REPO_ROOT

    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.otlp_sink", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, endpoint = process.stdout.readline().strip().partition(" on ")
    sink = SinkProcess(endpoint)
    try:
        assert ready == "otlp sink ready", ready
        yield sink
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        count = out.strip().rsplit(" ", 1)[-1]
        sink.received = int(count) if count.isdigit() else None


async def _serve(port: int) -> None:
    sink = OtlpSink(port, keep=False)
    await sink.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"otlp sink ready on {sink.endpoint}", flush=True)
    await stop.wait()
    await sink.stop()
    print(f"spans received: {sink.count}", flush=True)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
