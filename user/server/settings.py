"""The user service's configuration."""

from __future__ import annotations

from pydantic import Field

from global_utils.settings import JwtSettings, ServiceSettings


class UserSettings(ServiceSettings, JwtSettings):
    micro_server_address: str = ":50053"
    postgres_connect: str = Field(min_length=1)
    bcrypt_rounds: int = Field(default=10, ge=4, le=16)
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
