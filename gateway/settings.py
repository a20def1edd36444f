"""The gateway's settings: where it listens, how it finds the services, its limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from global_errors import Language
from global_utils.config.groups import GROUP_CONFIG, GroupedSettings
from global_utils.config.settings import RegistrySettings
from global_utils.discovery.registry import Endpoint, parse_endpoint
from global_utils.grpc.tls import TlsSettings
from global_utils.observability.metrics import MetricsSettings
from global_utils.observability.tracing_setup import TracingSettings


class GatewayServerSettings(BaseSettings):
    """How the gateway serves: its public HTTP port and side port, language, logs, shutdown, and
    its limits on discovery and forwarded calls."""

    model_config = GROUP_CONFIG

    micro_server_address: str = ":0"
    """The gateway's public HTTP address, host:port (8080 in containers)."""
    http_address: str = "127.0.0.1:0"
    """The side port for /metrics, host:port (8081 in containers, never the public port)."""
    app_language: Language = Language.EN
    """The language of error messages sent to clients."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level logged (DEBUG logs every call)."""
    shutdown_grace_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long requests in flight may finish after a stop is asked."""
    discovery_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """How long finding a service's instances may take before a call answers UNAVAILABLE."""
    gateway_call_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """The longest a forwarded call may take; a caller's shorter deadline (connect-timeout-ms,
    grpc-timeout) wins."""
    gateway_static_dir: Path | None = None
    """A folder served at / (the web UI's build), unknown non-API paths answered with its
    index.html; empty: nothing but the API and /healthz."""

    @field_validator("http_address")
    @classmethod
    def _check_http_address(cls, value: str) -> str:
        parse_endpoint(value, default_host="0.0.0.0")
        return value

    @field_validator("micro_server_address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_endpoint(value, default_host="0.0.0.0")
        return value

    @field_validator("gateway_static_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("gateway_static_dir")
    @classmethod
    def _check_static_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "index.html").is_file():
            raise ValueError(f"GATEWAY_STATIC_DIR: {value} has no index.html")
        return value

    @property
    def listen(self) -> Endpoint:
        return parse_endpoint(self.micro_server_address, default_host="0.0.0.0")


class GatewaySettings(GroupedSettings):
    """What the gateway process reads."""

    server: GatewayServerSettings
    tls: TlsSettings
    registry: RegistrySettings
    tracing: TracingSettings
    metrics: MetricsSettings
