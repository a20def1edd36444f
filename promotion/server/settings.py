"""The promotion service's configuration."""

from __future__ import annotations

from global_utils.config.settings import (
    PostgresSettings,
    RemoteAuthSettings,
    ServerSettings,
    ServiceSettings,
)
from global_utils.events.signing import AuditSigningSettings


class PromotionServerSettings(ServerSettings):
    micro_server_address: str = ":50051"
    """The gRPC listen address, host:port (host empty: every interface)."""


class PromotionSettings(ServiceSettings):
    """The promotion service's settings."""

    server: PromotionServerSettings
    db: PostgresSettings
    auth: RemoteAuthSettings
    audit_signing: AuditSigningSettings
