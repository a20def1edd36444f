"""The provisioner's configuration: an admin credential per PostgreSQL server, and the password
of every database role it manages (each from a secret file in compose and Kubernetes)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from global_utils.config.secrets import read_secret
from provision.broker import BrokerProvisioningSettings
from provision.databases import ROLES, Credential, ServiceDatabase


class ProvisionSettings(BrokerProvisioningSettings):
    """The databases' admin credentials and role passwords; the broker's (NATS admin nkey,
    MICRO_BROKER_ADDRESS, stream and consumer settings: BrokerProvisioningSettings)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    # A role that may create roles and databases (the superuser in development), on the server
    # of appuser and promotion, and on the audit database's (TimescaleDB) server. Any database
    # of the server will do in the URL; sslmode/sslrootcert there apply to every connection.
    postgres_admin_connect: str = Field(min_length=1)
    postgres_admin_password: str = Field(default="", repr=False)
    postgres_admin_password_file: Path | None = None
    timescaledb_admin_connect: str = Field(min_length=1)
    timescaledb_admin_password: str = Field(default="", repr=False)
    timescaledb_admin_password_file: Path | None = None
    # Each database role's password (provision/databases.py names the roles).
    appuser_owner_password: str = Field(default="", repr=False)
    appuser_owner_password_file: Path | None = None
    appuser_runtime_password: str = Field(default="", repr=False)
    appuser_runtime_password_file: Path | None = None
    promotion_owner_password: str = Field(default="", repr=False)
    promotion_owner_password_file: Path | None = None
    promotion_runtime_password: str = Field(default="", repr=False)
    promotion_runtime_password_file: Path | None = None
    audit_owner_password: str = Field(default="", repr=False)
    audit_owner_password_file: Path | None = None
    audit_runtime_password: str = Field(default="", repr=False)
    audit_runtime_password_file: Path | None = None

    @model_validator(mode="after")
    def _read_secrets(self) -> ProvisionSettings:
        for cluster in ("postgres", "timescaledb"):
            field = f"{cluster}_admin_password"
            setattr(
                self,
                field,
                read_secret(field.upper(), getattr(self, field), getattr(self, f"{field}_file")),
            )
        for role in ROLES:
            field = f"{role}_password"
            value = read_secret(field.upper(), getattr(self, field), getattr(self, f"{field}_file"))
            if not value:
                raise ValueError(
                    f"{field.upper()}: the password of database role {role} is not set:"
                    f" set {field.upper()} or {field.upper()}_FILE"
                )
            setattr(self, field, value)
        return self

    def admin(self, database: ServiceDatabase) -> Credential:
        """The admin credential of the server holding database."""
        if database.cluster == "timescaledb":
            return Credential(
                self.timescaledb_admin_connect, self.timescaledb_admin_password or None
            )
        return Credential(self.postgres_admin_connect, self.postgres_admin_password or None)

    @property
    def passwords(self) -> dict[str, str]:
        """Every managed role's password, by role name."""
        return {role: str(getattr(self, f"{role}_password")) for role in ROLES}
