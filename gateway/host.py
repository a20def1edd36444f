"""The gateway process: its parts (registry, one channel set per service, tracing, metrics on
the side port), the ASGI server, readiness and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.app import GatewayApp, HealthApplication, HealthState, StaticFiles
from gateway.forwarding import Forwarder, connect_error
from gateway.fronted import FrontedService
from gateway.settings import GatewaySettings
from gateway.suite_services import SERVICES
from global_utils.discovery.registry import Endpoint
from global_utils.grpc.client import ServiceChannels
from global_utils.grpc.host import MAX_MESSAGE_BYTES, Lifecycle, serve_until_signalled
from global_utils.grpc.http_side import HttpSidePort
from global_utils.observability.logs import configure_logging
from global_utils.observability.metrics import ServiceMetrics
from global_utils.observability.propagation import log_ids
from global_utils.observability.tracing import Tracing
from global_utils.runtime.server_loop import run_server

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

NAME = "gateway"
# Request heads (request line and headers) larger than this are refused by the HTTP server.
MAX_HEAD_BYTES = 64 * 1024


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: the gateway stops it (gracefully)
    when the process is told to stop, after saying NOT_SERVING."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Gateway:
    """Runs the gateway: components started in order and stopped in reverse, the HTTP server
    in between."""

    name = NAME

    def __init__(
        self,
        settings: GatewaySettings,
        services: Sequence[FrontedService] = SERVICES,
        *,
        span_exporter: SpanExporter | None = None,
    ) -> None:
        """span_exporter: where spans go whatever OTEL_* say (tests)."""
        self.settings = settings
        self.services = tuple(services)
        self.metrics = ServiceMetrics(settings.metrics)
        self.tracing = Tracing.configured(settings.tracing, NAME, span_exporter)
        self.http = HttpSidePort(settings.server.http_address, self.metrics.routes())
        self.registry = settings.registry.create_registry()
        interceptors = [*self.tracing.client_interceptors(), *self.metrics.client_interceptors()]
        tls = settings.tls.client_tls()
        self.channels = {
            service.grpc_service: ServiceChannels(
                self.registry,
                service.name,
                resolve_timeout=settings.server.discovery_timeout_seconds,
                tls=tls,
                interceptors=interceptors,
            )
            for service in self.services
        }
        self.health = HealthState()
        forwarder = Forwarder(
            self.channels,
            call_timeout=settings.server.gateway_call_timeout_seconds,
            language=settings.server.app_language,
            metrics=self.metrics,
            tracer=self.tracing.tracer,
        )
        applications = [
            service.application(forwarder, read_max_bytes=MAX_MESSAGE_BYTES)
            for service in self.services
        ]
        self.metrics.initialize_services(*(service.grpc_service for service in self.services))
        static = settings.server.gateway_static_dir
        self.app = GatewayApp(
            [*applications, HealthApplication(self.health, self._service_health)],
            self.health,
            max_timeout_ms=int(settings.server.gateway_call_timeout_seconds * 1000),
            static=StaticFiles(static) if static is not None else None,
        )
        self.components: tuple[Lifecycle, ...] = (
            self.tracing,
            self.http,
            self.registry,
            *self.channels.values(),
        )
        self._started: list[Lifecycle] = []
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self.endpoint: Endpoint | None = None

    async def start(self) -> None:
        # uvicorn's own start, stop and access lines would double the gateway's
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
        # Bind first: a port in use ends the start before anything else runs.
        listen = self.settings.server.listen
        sock = socket.create_server((listen.host, listen.port), reuse_port=False)
        sock.setblocking(False)
        self.endpoint = Endpoint(listen.host, sock.getsockname()[1])
        for component in self.components:
            await component.start()
            self._started.append(component)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            http="h11",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(self.settings.server.shutdown_grace_seconds),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        self._server = _Server(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self._serving.done():
                await self._serving
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        self.health.serving = True
        logger.info(
            "%s ready: Connect and gRPC-Web on %s for %s, registry %s, %s%s",
            NAME,
            self.endpoint.target,
            ", ".join(service.grpc_service for service in self.services),
            self.settings.registry.micro_registry,
            self.http.describe(),
            f", static {self.settings.server.gateway_static_dir}"
            if self.settings.server.gateway_static_dir is not None
            else "",
        )

    async def stop(self) -> None:
        self.health.serving = False
        if self._server is not None and self._serving is not None:
            # uvicorn stops accepting, lets calls in flight finish (up to the grace), then
            # closes the connections.
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._serving
        for component in reversed(self._started):
            with contextlib.suppress(Exception):
                await component.stop()
        self._started.clear()
        logger.info("%s stopped", NAME)

    async def _service_health(self, grpc_service: str) -> int:
        """A fronted service's health, as one of its instances reports it."""
        channels = self.channels.get(grpc_service)
        if channels is None:
            from connectrpc.code import Code
            from connectrpc.errors import ConnectError

            raise ConnectError(Code.NOT_FOUND, f"unknown service {grpc_service}")

        async def check(channel: grpc.aio.Channel) -> Any:
            stub = health_pb2_grpc.HealthStub(channel)
            return await stub.Check(
                health_pb2.HealthCheckRequest(service=grpc_service),
                timeout=self.settings.server.discovery_timeout_seconds,
            )

        try:
            reply = await channels.call(check)
        except grpc.aio.AioRpcError as error:
            raise connect_error(
                error.code(), error.details() or "", error.trailing_metadata()
            ) from None
        except Exception:
            return health_pb2.HealthCheckResponse.NOT_SERVING
        return int(reply.status)


def run(settings: GatewaySettings) -> None:
    """The body of `python -m gateway`."""
    configure_logging(
        settings.server.log_level, log_ids if settings.tracing.tracing_enabled else None
    )
    try:
        run_server(serve_until_signalled(Gateway(settings)))
    except OSError as exc:
        raise SystemExit(f"cannot start: {exc}") from None
