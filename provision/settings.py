"""The provisioner's configuration: an admin credential per PostgreSQL server, and the password
of every database role it manages (each from a secret file in compose and Kubernetes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, model_validator
from pydantic_settings import SettingsConfigDict

from global_utils.config.secrets import read_secret
from provision.broker import BrokerProvisioningSettings
from provision.databases import ROLES, Credential, ServiceDatabase


class _DeclaredSettings(BrokerProvisioningSettings):
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
    # Each database role's password: <ROLE>_PASSWORD or <ROLE>_PASSWORD_FILE, a pair of fields
    # per role of provision/databases.py (added below, one pair per database of the suite).

    @model_validator(mode="after")
    def _read_secrets(self) -> _DeclaredSettings:
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


def _role_password_fields() -> dict[str, Any]:
    """<role>_password and <role>_password_file for every managed role (appuser_owner, ...)."""
    fields: dict[str, Any] = {}
    for role in ROLES:
        fields[f"{role}_password"] = (str, Field(default="", repr=False))
        fields[f"{role}_password_file"] = (Path | None, None)
    return fields


if TYPE_CHECKING:
    # What the checker sees; the role fields are read by name (passwords, the validator).
    ProvisionSettings = _DeclaredSettings
else:
    ProvisionSettings = create_model(
        "ProvisionSettings",
        __base__=_DeclaredSettings,
        __module__=__name__,
        __doc__=_DeclaredSettings.__doc__,
        **_role_password_fields(),
    )
