"""The product service's configuration."""

from __future__ import annotations

from pydantic import Field

from global_utils.config.settings import (
    HttpSideSettings,
    PostgresPasswordSettings,
    RemoteAuthSettings,
    ServiceSettings,
)
from global_utils.events.signing import AuditSigningSettings
from global_utils.observability.metrics import MetricsSettings


class ProductSettings(
    ServiceSettings,
    PostgresPasswordSettings,
    RemoteAuthSettings,
    AuditSigningSettings,
    HttpSideSettings,
    MetricsSettings,
):
    micro_server_address: str = ":50059"
    postgres_connect: str = Field(min_length=1)
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
