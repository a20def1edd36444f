"""A local OTLP/gRPC trace receiver (what a collector or Jaeger accepts on :4317): it answers
every export and keeps a summary of each span, for tests and `make bench` to export to on
127.0.0.1. `python -m devtools.otlp_sink PORT` serves until SIGTERM, then prints the count."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # 32 hex digits


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.count = 0
        self.spans: list[ReceivedSpan] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
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
                self.count += len(scope_spans.spans)
                if self.keep:
                    self.spans += [
                        ReceivedSpan(service, span.name, span.trace_id.hex())
                        for span in scope_spans.spans
                    ]
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpSink:
    """The receiver on 127.0.0.1 (a free port unless given); keep=False only counts."""

    def __init__(self, port: int = 0, *, keep: bool = True) -> None:
        self._port = port
        self._receiver = _Receiver(keep)
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        return self._receiver.count

    @property
    def spans(self) -> list[ReceivedSpan]:
        return list(self._receiver.spans)

    async def start(self) -> None:
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._receiver, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self._port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


@dataclass
class SinkProcess:
    """A receiver in a process of its own (its CPU not the caller's): the endpoint to export
    to, and once stopped, how many spans it received."""

    endpoint: str
    received: int | None = field(default=None)


@contextmanager
def sink_process() -> Iterator[SinkProcess]:
    """`python -m devtools.otlp_sink` on a free loopback port until the block ends."""
    from devtools.stack import REPO_ROOT, free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.otlp_sink", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    sink = SinkProcess(f"http://127.0.0.1:{port}")
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == (
            "otlp sink ready"
        )
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
    print("otlp sink ready", flush=True)
    await stop.wait()
    await sink.stop()
    print(f"spans received: {sink.count}", flush=True)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
