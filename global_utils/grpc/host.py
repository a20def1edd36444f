"""The service host: runs the components and interceptors it is given (global_utils.wiring
composes them), the gRPC server with health and reflection, readiness, signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from global_utils.config.settings import ServiceSettings
from global_utils.data.database import Database
from global_utils.discovery.registry import Endpoint, Registry
from global_utils.grpc.http_side import HttpSidePort
from global_utils.identity.principal import TokenVerifier
from global_utils.observability.logs import configure_logging
from global_utils.observability.propagation import log_ids
from global_utils.runtime.server_loop import run_server
from global_utils.runtime.stop_signals import STOP_SIGNALS, caught_before_serving
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# A health name that reports only that the process serves gRPC (SERVING from start to
# shutdown), for liveness and startup probes: "" and the service's own name also follow its
# database, which is for readiness; a database outage must not get the process restarted.
LIVENESS_HEALTH_NAME = "liveness"


class Lifecycle(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Host(Lifecycle, Protocol):
    """What a process serves until it is signalled (a service's host, the gateway)."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service contributes to the shared host."""

    name: str  # registry name, e.g. "user"
    grpc_service: str  # full proto service name, e.g. "user.UserSrv"
    add_to_server: Callable[[grpc.aio.Server], None]
    public_methods: Collection[str] = field(default_factory=tuple)
    # Methods whose token another verifier than the host's checks (the user service's reads
    # verify the signature here and their caller's standing in their own query).
    method_verifiers: Mapping[str, TokenVerifier] = field(default_factory=dict)
    # what the ready line adds about this service's own state (audit: how its table is stored)
    ready_details: Callable[[], Awaitable[str]] | None = None


class ServiceHost:
    """Runs one service: its dependencies, the gRPC server, health, registration, shutdown."""

    def __init__(
        self,
        definition: ServiceDefinition,
        settings: ServiceSettings,
        *,
        database: Database,
        registry: Registry,
        components: Sequence[Lifecycle],
        interceptors: Sequence[grpc.aio.ServerInterceptor],
        http: HttpSidePort | None = None,
    ) -> None:
        """components: every lifecycle component in start order (stopped in reverse), database,
        registry and http among them; interceptors: the server's, the first listed outermost.
        The host runs what it is given: global_utils.wiring decides both orders. database:
        what readiness and health follow; registry: where the host registers once ready;
        http: the side port named in the ready line."""
        self.definition = definition
        self.settings = settings
        self.database = database
        self.registry = registry
        self.http = http
        self.components = tuple(components)
        self.interceptors = tuple(interceptors)
        self._started: list[Lifecycle] = []
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._readiness: asyncio.Task[None] | None = None
        self.endpoint: Endpoint | None = None
        self.ready = asyncio.Event()

    @property
    def port(self) -> int:
        if self.endpoint is None:
            raise RuntimeError("not started")
        return self.endpoint.port

    async def start(self) -> None:
        # Bind first: a port in use ends the start before anything connects anywhere.
        server = self._create_server()
        listen = self.settings.server.listen
        credentials = self.settings.tls.server_credentials()
        if credentials is None:
            port = server.add_insecure_port(listen.target)
        else:
            port = server.add_secure_port(listen.target, credentials)
        for component in self.components:
            await component.start()
            self._started.append(component)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._health.set(LIVENESS_HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
        await server.start()
        self._server = server
        self.endpoint = Endpoint(listen.host, port)
        self._readiness = asyncio.create_task(self._become_ready(), name="readiness")

    async def stop(self) -> None:
        grace = self.settings.server.shutdown_grace_seconds
        await self._health.enter_graceful_shutdown()
        await cancel_and_wait(self._readiness)
        with contextlib.suppress(Exception):
            await self.registry.deregister()
        if self._server is not None:
            await self._server.stop(grace)
        for component in reversed(self._started):
            await component.stop()
        self._started.clear()
        logger.info("%s stopped", self.definition.name)

    async def _become_ready(self) -> None:
        await self.database.wait_ready()
        assert self.endpoint is not None
        details = ""
        if self.definition.ready_details is not None:
            try:
                details = f", {await self.definition.ready_details()}"
            except Exception as exc:  # the ready line goes out without them
                logger.warning("%s: ready details unavailable (%s)", self.name, exc)
        await self.registry.register(self.definition.name, self.endpoint)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.ready.set()
        logger.info(
            "%s ready: gRPC %s on %s%s, database connected, registry %s%s%s",
            self.definition.name,
            self.definition.grpc_service,
            self.endpoint.target,
            self._tls_mode(),
            self.settings.registry.micro_registry,
            f", {self.http.describe()}" if self.http is not None else "",
            details,
        )
        await self._watch_database()

    def _tls_mode(self) -> str:
        if not self.settings.tls.serves_tls:
            return ""
        return " (mutual TLS)" if self.settings.tls.tls_client_auth else " (TLS)"

    async def _watch_database(self) -> None:
        """Health follows the database after readiness: NOT_SERVING while it cannot be
        reached (calls answer UNAVAILABLE meanwhile), SERVING again once it answers; the
        process itself stays up throughout."""
        interval = self.settings.server.health_check_seconds
        serving = True
        while True:
            await asyncio.sleep(interval)
            reason = await self._database_problem(timeout=max(interval, 1.0))
            if serving and reason is not None:
                logger.warning("%s NOT_SERVING: database unreachable (%s)", self.name, reason)
                await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            elif not serving and reason is None:
                logger.info("%s SERVING again: database reachable", self.name)
                await self._set_health(health_pb2.HealthCheckResponse.SERVING)
            serving = reason is None

    async def _database_problem(self, timeout: float) -> str | None:
        """Why the database does not answer a trivial query now, or None when it does."""
        try:
            async with asyncio.timeout(timeout), self.database.connection() as conn:
                await conn.fetchval("SELECT 1")
        except Exception as exc:
            cause = exc.__cause__ or exc
            return f"{type(cause).__name__}: {cause}".rstrip(": ")
        return None

    @property
    def name(self) -> str:
        return self.definition.name

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ("", self.definition.grpc_service):
            await self._health.set(name, status)

    def _create_server(self) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=self.interceptors,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                (
                    "grpc.max_connection_age_ms",
                    int(self.settings.server.max_connection_age_seconds * 1000),
                ),
                # calls in flight when the age is reached get the shutdown grace to finish
                (
                    "grpc.max_connection_age_grace_ms",
                    int(self.settings.server.shutdown_grace_seconds * 1000),
                ),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.definition.add_to_server(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                self.definition.grpc_service,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        return server


async def serve_until_signalled(host: Host) -> None:
    """Starts host (a service's, or the gateway), waits for SIGTERM or SIGINT, then stops it
    gracefully. A stop signal caught while the process was starting (stop_signals) ends it
    here, before it starts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        early = caught_before_serving()
        if early is not None:
            logger.info("%s stopped: %s came while it was starting", host.name, early)
            return
        await _serve(host, stop)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _serve(host: Host, stop: asyncio.Event) -> None:
    try:
        await host.start()
        # What start-up made (modules, servers, settings: tens of thousands of objects) lives
        # as long as the process. Frozen, the garbage collector's full passes no longer walk it
        # all, each a pause of tens of milliseconds for every call in flight.
        gc.collect()
        gc.freeze()
        await stop.wait()
    finally:
        await host.stop()
        gc.unfreeze()


def run_service(build: Callable[[], ServiceHost], settings: ServiceSettings) -> None:
    """The body of every `python -m <service>.server`: log setup, build, serve, exit 0."""
    configure_logging(
        settings.server.log_level, log_ids if settings.tracing.tracing_enabled else None
    )

    async def main() -> None:
        await serve_until_signalled(build())

    try:
        run_server(main())
    except RuntimeError as exc:
        # grpc raises RuntimeError when the listen address cannot be bound.
        raise SystemExit(f"cannot start: {exc}") from None
