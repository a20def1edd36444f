"""The gateway's settings: where it listens, how it finds the services, its limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from global_errors import Language
from global_utils.config.settings import HttpSideSettings, RegistrySettings
from global_utils.discovery.registry import Endpoint, parse_endpoint
from global_utils.observability.metrics import MetricsSettings
from global_utils.observability.tracing_setup import TracingSettings


class GatewaySettings(RegistrySettings, HttpSideSettings, MetricsSettings, TracingSettings):
    """What the gateway process reads. MICRO_SERVER_ADDRESS is its public HTTP port (8080 in
    containers), HTTP_ADDRESS its side port for /metrics (8081 in containers)."""

    micro_server_address: str = ":0"
    app_language: Language = Language.EN
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_grace_seconds: float = Field(default=5.0, ge=0, le=300)
    # How long finding a service's instances may take before a call answers UNAVAILABLE.
    discovery_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # The longest a forwarded call may take; a caller's shorter deadline (connect-timeout-ms,
    # grpc-timeout) wins.
    gateway_call_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # A folder served at / (the web UI's build), unknown non-API paths answered with its
    # index.html; empty: nothing but the API and /healthz.
    gateway_static_dir: Path | None = None

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
