"""The customer service's configuration."""

from __future__ import annotations

from global_utils.config.settings import (
    PostgresSettings,
    RemoteAuthSettings,
    ServerSettings,
    ServiceSettings,
)
from global_utils.events.signing import AuditSigningSettings


class CustomerServerSettings(ServerSettings):
    micro_server_address: str = ":50057"
    """The gRPC listen address, host:port (host empty: every interface)."""


class CustomerSettings(ServiceSettings):
    """The customer service's settings."""

    server: CustomerServerSettings
    db: PostgresSettings
    auth: RemoteAuthSettings
    audit_signing: AuditSigningSettings
