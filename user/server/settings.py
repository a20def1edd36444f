"""The user service's configuration."""

from __future__ import annotations

from pydantic import Field

from global_utils.settings import JwtSettings, ServiceSettings, TokenCacheSettings
from user.server.passwords import default_bcrypt_workers


class UserSettings(ServiceSettings, JwtSettings, TokenCacheSettings):
    micro_server_address: str = ":50053"
    postgres_connect: str = Field(min_length=1)
    bcrypt_rounds: int = Field(default=10, ge=4, le=16)
    # Processes hashing passwords; by default one core stays free for the event loop.
    bcrypt_workers: int = Field(default_factory=default_bcrypt_workers, ge=1, le=64)
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
