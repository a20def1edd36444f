"""Client side: finding a service (SERVERADDRESS or the registry) and opening a channel to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TypeVar

import grpc
from pydantic import Field
from pydantic_settings import BaseSettings

from global_errors import MessageKey, Unavailable
from global_utils.config.groups import GROUP_CONFIG, GroupedSettings
from global_utils.config.settings import RegistrySettings
from global_utils.discovery.registry import Endpoint, Registry, parse_endpoint, pick
from global_utils.grpc.tls import ClientTls, TlsSettings, secure_options

logger = logging.getLogger(__name__)
T = TypeVar("T")


class CliSettings(BaseSettings):
    """Where a CLI finds its service and who it logs in as."""

    model_config = GROUP_CONFIG

    serveraddress: str = ""
    """The service's host:port; empty: discover it through the registry."""
    user_serveraddress: str = ""
    """Where CLIs of other services log in (the user service's host:port); empty: discover it."""
    discovery_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a CLI waits to discover a service."""
    cli_email: str = "duck@mymail.com"
    """The email a CLI logs in with (--email overrides it)."""
    cli_password: str = ""
    """The password a CLI logs in with (--password overrides it; no default)."""

    def login_password(self, given: str | None) -> str:
        """The password to log in with (--password, else CLI_PASSWORD); exits if there is none."""
        password = given or self.cli_password
        if not password:
            raise SystemExit(
                "error: no password: set CLI_PASSWORD, pass --password, or pass --token"
            )
        return password


class ClientSettings(GroupedSettings):
    """What a CLI reads: its own settings, how to discover services, the TLS it speaks."""

    cli: CliSettings
    registry: RegistrySettings
    tls: TlsSettings


async def find_service(service: str, settings: ClientSettings, address: str = "") -> Endpoint:
    """address (e.g. SERVERADDRESS) if given, else one registered instance of service."""
    if address:
        return parse_endpoint(address)
    registry = settings.registry.create_registry()
    await registry.start()
    try:
        endpoints = await registry.resolve(service, timeout=settings.cli.discovery_timeout_seconds)
    finally:
        await registry.stop()
    if not endpoints:
        raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency=f"{service} service")
    return pick(endpoints)


# How often a balanced channel may ask DNS again (gRPC's default is 30 s): a server's maximum
# connection age makes clients re-resolve, and new replicas should get calls within seconds.
DNS_RERESOLVE_MS = 5000


def balanced_service_config(retry_methods: Collection[str] = ()) -> str:
    """gRPC service config for a balanced target: round robin over every resolved address,
    each health-checked (grpc.health.v1 Watch), so a NOT_SERVING or dead instance gets no
    calls; calls of retry_methods ('package.Service/Method', idempotent ones only) that meet an
    instance going away are retried on another."""
    config: dict[str, object] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
    }
    if retry_methods:
        names = []
        for full in retry_methods:
            service, _, method = full.partition("/")
            names.append({"service": service, "method": method})
        config["methodConfig"] = [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def open_channel(
    endpoint: Endpoint,
    retry_methods: Collection[str] = (),
    *,
    tls: ClientTls | None = None,
    server_name: str = "",
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel to endpoint: one address, or a balanced target (dns:, ipv4:, ipv6:); with
    tls, the server's certificate is verified for server_name (the service's name)."""
    # Each channel owns its connections (gRPC otherwise shares them between channels with
    # equal settings), so a new channel really dials instead of inheriting a failed one.
    options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1)]
    if endpoint.balanced_target:
        options += [
            ("grpc.service_config", balanced_service_config(retry_methods)),
            ("grpc.dns_min_time_between_resolutions_ms", DNS_RERESOLVE_MS),
        ]
    if tls is None:
        return grpc.aio.insecure_channel(
            endpoint.target, options=options, interceptors=list(interceptors)
        )
    return grpc.aio.secure_channel(
        endpoint.target,
        tls.credentials(),
        options=[*options, *secure_options(server_name)],
        interceptors=list(interceptors),
    )


# Codes that say "this instance could not answer", so another instance may.
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_PENALTY_SECONDS = 5.0
# How long a replaced channel's calls may take to finish before it closes.
_CLOSE_GRACE_SECONDS = 30.0
_FAILED = grpc.ChannelConnectivity.TRANSIENT_FAILURE


class ServiceChannels:
    """Calls one service through any of its registered instances: one reused channel per
    address, instances tried in random order (recently failed ones last), failover on
    UNAVAILABLE / DEADLINE_EXCEEDED, and UNAVAILABLE when no instance answers."""

    def __init__(
        self,
        registry: Registry,
        service: str,
        *,
        resolve_timeout: float = 2.0,
        retry_methods: Collection[str] = (),
        tls: ClientTls | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self._registry = registry
        self._service = service
        self._resolve_timeout = resolve_timeout
        self._retry_methods = tuple(retry_methods)
        self._tls = tls
        self._interceptors = tuple(interceptors)
        self._channels: dict[Endpoint, grpc.aio.Channel] = {}
        self._failed_until: dict[Endpoint, float] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            with contextlib.suppress(Exception):
                await channel.close()
        closing, self._closing = self._closing, set()
        for task in closing:
            task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)

    async def call(self, invoke: Callable[[grpc.aio.Channel], Awaitable[T]]) -> T:
        endpoints = await self._registry.resolve(self._service, timeout=self._resolve_timeout)
        await self._forget_gone(endpoints)
        for endpoint in self._order(endpoints):
            try:
                result = await invoke(self._channel(endpoint))
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in FAILOVER_CODES:
                    raise
                logger.warning(
                    "%s at %s failed (%s); trying another",
                    self._service,
                    endpoint.target,
                    exc.code().name,
                )
                self._failed_until[endpoint] = time.monotonic() + _PENALTY_SECONDS
                continue
            self._failed_until.pop(endpoint, None)
            return result
        raise Unavailable(MessageKey.DEPENDENCY_UNAVAILABLE, dependency=f"{self._service} service")

    def _order(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        now = time.monotonic()
        shuffled = random.sample(endpoints, len(endpoints))
        return sorted(shuffled, key=lambda ep: self._failed_until.get(ep, 0.0) > now)

    def _channel(self, endpoint: Endpoint) -> grpc.aio.Channel:
        channel = self._channels.get(endpoint)
        if channel is not None and channel.get_state() is _FAILED:
            # gRPC waits out a reconnect backoff (growing to two minutes) before it dials a
            # failed address again; a fresh channel dials now, so an instance that came back
            # gets this call. The old one closes once its calls have finished.
            self._closing.add(asyncio.create_task(channel.close(grace=_CLOSE_GRACE_SECONDS)))
            self._closing = {task for task in self._closing if not task.done()}
            channel = None
        if channel is None:
            channel = self._channels[endpoint] = open_channel(
                endpoint,
                self._retry_methods,
                tls=self._tls,
                server_name=self._service,
                interceptors=self._interceptors,
            )
        return channel

    async def _forget_gone(self, endpoints: list[Endpoint]) -> None:
        for endpoint in set(self._channels) - set(endpoints):
            self._failed_until.pop(endpoint, None)
            with contextlib.suppress(Exception):
                await self._channels.pop(endpoint).close()
