"""The promotion service's configuration."""

from __future__ import annotations

from pydantic import Field

from global_utils.settings import ServiceSettings


class PromotionSettings(ServiceSettings):
    micro_server_address: str = ":50051"
    postgres_connect: str = Field(min_length=1)
    db_pool_max_size: int = Field(default=10, ge=1, le=100)
    # Good tokens are remembered this long (never past their own expiry), at most this many.
    token_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    auth_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
