"""The audit service's configuration."""

from __future__ import annotations

from pydantic import Field

from global_utils.settings import RemoteAuthSettings, ServiceSettings


class AuditSettings(ServiceSettings, RemoteAuthSettings):
    micro_server_address: str = ":50055"
    db_connect: str = Field(min_length=1)
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    # Most events stored per transaction, and the size of each pull request.
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    # How long JetStream waits for an ack before redelivering (set when the consumer is made).
    consumer_ack_wait_seconds: float = Field(default=30.0, ge=1, le=3600)
