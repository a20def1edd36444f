"""The audit service's configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from audit.server.events.authenticity import ProducerKey, parse_producer_keys
from global_utils.config.secrets import read_secret
from global_utils.config.settings import HttpSideSettings, RemoteAuthSettings, ServiceSettings
from global_utils.observability.metrics import MetricsSettings


class AuditSettings(ServiceSettings, RemoteAuthSettings, HttpSideSettings, MetricsSettings):
    micro_server_address: str = ":50055"
    db_connect: str = Field(min_length=1)
    # The password of DB_CONNECT's role (the audit runtime role), kept out of the URL.
    db_password: str = Field(default="", repr=False)
    db_password_file: Path | None = None
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    # Most events stored per transaction, and the size of each pull request. (The durable
    # consumer itself, with its ack wait, is made by provisioning: provision/broker.py.)
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    # The producers' event keys: `KEY_ID SERVICE KEY` per line
    # (audit/server/events/authenticity.py).
    audit_producer_keys: str = Field(default="", repr=False)
    audit_producer_keys_file: Path | None = None

    @model_validator(mode="after")
    def _require_producer_keys(self) -> AuditSettings:
        self.db_password = read_secret("DB_PASSWORD", self.db_password, self.db_password_file)
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
