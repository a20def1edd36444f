"""The user service's configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG
from global_utils.config.settings import (
    PostgresSettings,
    ServerSettings,
    ServiceSettings,
    TokenCacheSettings,
)
from global_utils.events.signing import AuditSigningSettings
from user.server.passwords import default_bcrypt_workers
from user.server.repository import ThrottlePolicy
from user.server.signing_keys import SigningKey, parse_signing_keys


class JwtSettings(BaseSettings):
    """The user service's token signing keys: Ed25519 private keys in PKCS#8 PEM, given
    directly (JWT_PRIVATE_KEY) or as a file (JWT_PRIVATE_KEY_FILE). With several keys the
    first signs and all verify and are published (key rotation: a new key is added second,
    moved first once every instance publishes it, and the old one removed after its tokens
    have expired)."""

    model_config = GROUP_CONFIG

    jwt_private_key: str = ""
    """The token signing keys: Ed25519 private keys in PKCS#8 PEM, one after another; the first
    signs, all verify and are published. This or JWT_PRIVATE_KEY_FILE is required."""
    jwt_private_key_file: Path | None = None
    """A file holding JWT_PRIVATE_KEY (a secret)."""
    access_token_seconds: int = Field(default=900, ge=10, le=86_400)
    """Access tokens' lifetime (a revoked user's are refused before: the REVOCATIONS bucket
    keeps revocations at least this long)."""
    refresh_token_seconds: int = Field(default=7 * 86_400, ge=60, le=366 * 86_400)
    """Refresh tokens' lifetime; each refresh hands out a new one with a new lifetime."""
    revocation_feed_max_age_seconds: float = Field(default=3.0, ge=0.5, le=60)
    """The user service follows the REVOCATIONS bucket too (for revocations its stored users do
    not show: a refresh token's reuse); past this without news, its stored users alone decide."""

    @model_validator(mode="after")
    def _require_signing_keys(self) -> JwtSettings:
        if self.jwt_private_key_file is not None:
            try:
                self.jwt_private_key = self.jwt_private_key_file.read_text()
            except OSError as exc:
                raise ValueError(
                    f"JWT_PRIVATE_KEY_FILE: cannot read {self.jwt_private_key_file}: {exc.strerror}"
                ) from None
        if not self.jwt_private_key.strip():
            raise ValueError(
                "JWT_PRIVATE_KEY: no signing key: set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE"
            )
        try:
            parse_signing_keys(self.jwt_private_key)
        except ValueError as exc:
            raise ValueError(f"JWT_PRIVATE_KEY: {exc}") from None
        return self

    @property
    def signing_keys(self) -> list[SigningKey]:
        """The first signs; every one verifies."""
        return parse_signing_keys(self.jwt_private_key)


class UserServerSettings(ServerSettings):
    micro_server_address: str = ":50053"
    """The gRPC listen address, host:port (host empty: every interface)."""


class PasswordSettings(BaseSettings):
    """How passwords are hashed, and how failed logins are throttled."""

    model_config = GROUP_CONFIG

    bcrypt_rounds: int = Field(default=10, ge=4, le=16)
    """bcrypt's cost factor for new password hashes (each step doubles the work)."""
    bcrypt_workers: int = Field(default_factory=default_bcrypt_workers, ge=1, le=64)
    """Processes hashing passwords, about 24 MB each; by default one per core but one (which
    stays free for the event loop), at most 4."""
    login_throttle_attempts: int = Field(default=5, ge=1, le=1_000_000)
    """After this many failed logins for one email within the window, further attempts are
    refused (RESOURCE_EXHAUSTED, no bcrypt) until the window has passed."""
    login_throttle_window_seconds: float = Field(default=300.0, gt=0, le=86_400)
    """The window of LOGIN_THROTTLE_ATTEMPTS."""

    @property
    def throttle_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            self.login_throttle_attempts, timedelta(seconds=self.login_throttle_window_seconds)
        )


class UserSettings(ServiceSettings):
    """The user service's settings."""

    server: UserServerSettings
    db: PostgresSettings
    jwt: JwtSettings
    passwords: PasswordSettings
    token_cache: TokenCacheSettings
    audit_signing: AuditSigningSettings
