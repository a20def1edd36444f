"""The user service's configuration."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from global_utils.event_auth import AuditSigningSettings
from global_utils.metrics import MetricsSettings
from global_utils.settings import (
    HttpSideSettings,
    JwtSettings,
    PostgresPasswordSettings,
    ServiceSettings,
    TokenCacheSettings,
)
from user.server.passwords import default_bcrypt_workers
from user.server.repository import ThrottlePolicy


class UserSettings(
    ServiceSettings,
    PostgresPasswordSettings,
    JwtSettings,
    HttpSideSettings,
    TokenCacheSettings,
    AuditSigningSettings,
    MetricsSettings,
):
    micro_server_address: str = ":50053"
    postgres_connect: str = Field(min_length=1)
    bcrypt_rounds: int = Field(default=10, ge=4, le=16)
    # Processes hashing passwords; by default one core stays free for the event loop.
    bcrypt_workers: int = Field(default_factory=default_bcrypt_workers, ge=1, le=64)
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    # After this many failed logins for one email within the window, further attempts are
    # refused (RESOURCE_EXHAUSTED, no bcrypt) until the window has passed.
    login_throttle_attempts: int = Field(default=5, ge=1, le=1_000_000)
    login_throttle_window_seconds: float = Field(default=300.0, gt=0, le=86_400)

    @property
    def throttle_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            self.login_throttle_attempts, timedelta(seconds=self.login_throttle_window_seconds)
        )
