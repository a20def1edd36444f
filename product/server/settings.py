"""The product service's configuration."""

from __future__ import annotations

from global_utils.config.settings import (
    PostgresSettings,
    RemoteAuthSettings,
    ServerSettings,
    ServiceSettings,
)
from global_utils.events.signing import AuditSigningSettings


class ProductServerSettings(ServerSettings):
    micro_server_address: str = ":50059"
    """The gRPC listen address, host:port (host empty: every interface)."""


class ProductSettings(ServiceSettings):
    """The product service's settings."""

    server: ProductServerSettings
    db: PostgresSettings
    auth: RemoteAuthSettings
    audit_signing: AuditSigningSettings
