"""The audit service's configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from audit.server.events.authenticity import ProducerKey, parse_producer_keys
from global_utils.config.groups import GROUP_CONFIG
from global_utils.config.secrets import read_secret
from global_utils.config.settings import RemoteAuthSettings, ServerSettings, ServiceSettings


class AuditServerSettings(ServerSettings):
    micro_server_address: str = ":50055"
    """The gRPC listen address, host:port (host empty: every interface)."""


class AuditDatabaseSettings(BaseSettings):
    """The audit database (TimescaleDB or PostgreSQL): where it is, its role's password (kept out
    of the URL), the pool's size."""

    model_config = GROUP_CONFIG

    db_connect: str = Field(min_length=1)
    """The PostgreSQL URL of the audit database (TimescaleDB or plain PostgreSQL) as the audit
    runtime role (no password here); TLS as for POSTGRES_CONNECT."""
    db_password: str = Field(default="", repr=False)
    """The password of DB_CONNECT's role."""
    db_password_file: Path | None = None
    """A file holding DB_PASSWORD (a secret)."""
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    """The most database connections the service holds at once."""

    @model_validator(mode="after")
    def _read_password(self) -> AuditDatabaseSettings:
        self.db_password = read_secret("DB_PASSWORD", self.db_password, self.db_password_file)
        return self


class IngestSettings(BaseSettings):
    """How audit events are taken from the stream and whose they are taken as."""

    model_config = GROUP_CONFIG

    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    """Most events stored per transaction (an envelope is never split: one larger than this
    is stored alone), and about how many events each pull request asks for (the durable
    consumer itself, with its ack wait, is made by provisioning)."""
    audit_producer_keys: str = Field(default="", repr=False)
    """The producers' event keys, `KEY_ID SERVICE KEY` per line; this or
    AUDIT_PRODUCER_KEYS_FILE is required."""
    audit_producer_keys_file: Path | None = None
    """A file holding AUDIT_PRODUCER_KEYS (a secret)."""

    @model_validator(mode="after")
    def _require_producer_keys(self) -> IngestSettings:
        self.audit_producer_keys = read_secret(
            "AUDIT_PRODUCER_KEYS", self.audit_producer_keys, self.audit_producer_keys_file
        )
        try:
            keys = parse_producer_keys(self.audit_producer_keys)
        except ValueError as exc:
            raise ValueError(f"AUDIT_PRODUCER_KEYS: {exc}") from None
        if not keys:
            raise ValueError(
                "AUDIT_PRODUCER_KEYS: no producer keys: set AUDIT_PRODUCER_KEYS or"
                " AUDIT_PRODUCER_KEYS_FILE"
            )
        return self

    @property
    def producer_keys(self) -> dict[str, ProducerKey]:
        return parse_producer_keys(self.audit_producer_keys)


class AuditSettings(ServiceSettings):
    """The audit service's settings."""

    server: AuditServerSettings
    db: AuditDatabaseSettings
    auth: RemoteAuthSettings
    ingest: IngestSettings
