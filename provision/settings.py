"""The provisioner's configuration: an admin credential per PostgreSQL server, and the password
of every database role it manages (each from a secret file in compose and Kubernetes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, model_validator
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG
from global_utils.config.secrets import read_secret
from provision.broker import BrokerProvisioningSettings
from provision.databases import ROLES, Credential, ServiceDatabase


class _DeclaredDatabaseAdmin(BaseSettings):
    """The admin credential of each PostgreSQL server and every database role's password
    (provision/databases.py names the roles). An admin is a role that may create roles and
    databases (the superuser in development); any database of the server will do in its URL,
    and sslmode/sslrootcert there apply to every connection."""

    model_config = GROUP_CONFIG

    postgres_admin_connect: str = Field(min_length=1)
    """The admin's URL on the server of the appuser and promotion databases."""
    postgres_admin_password: str = Field(default="", repr=False)
    """The password of POSTGRES_ADMIN_CONNECT's role; empty for a server that trusts it."""
    postgres_admin_password_file: Path | None = None
    """A file holding POSTGRES_ADMIN_PASSWORD (a secret)."""
    timescaledb_admin_connect: str = Field(min_length=1)
    """The admin's URL on the audit database's (TimescaleDB) server."""
    timescaledb_admin_password: str = Field(default="", repr=False)
    """The password of TIMESCALEDB_ADMIN_CONNECT's role; empty for a server that trusts it."""
    timescaledb_admin_password_file: Path | None = None
    """A file holding TIMESCALEDB_ADMIN_PASSWORD (a secret)."""
    # Each database role's password: <ROLE>_PASSWORD or <ROLE>_PASSWORD_FILE, a pair of fields
    # per role of provision/databases.py (added below, one pair per database of the suite).

    @model_validator(mode="after")
    def _read_secrets(self) -> _DeclaredDatabaseAdmin:
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
        variable = f"{role.upper()}_PASSWORD"
        fields[f"{role}_password"] = (
            str,
            Field(
                default="",
                repr=False,
                description=f"The password of database role {role}; this or {variable}_FILE"
                " is required.",
            ),
        )
        fields[f"{role}_password_file"] = (
            Path | None,
            Field(default=None, description=f"A file holding {variable} (a secret)."),
        )
    return fields


if TYPE_CHECKING:
    # What the checker sees; the role fields are read by name (passwords, the validator).
    DatabaseAdminSettings = _DeclaredDatabaseAdmin
else:
    DatabaseAdminSettings = create_model(
        "DatabaseAdminSettings",
        __base__=_DeclaredDatabaseAdmin,
        __module__=__name__,
        __doc__=_DeclaredDatabaseAdmin.__doc__,
        **_role_password_fields(),
    )


class ProvisionSettings(BrokerProvisioningSettings):
    """The provisioner's settings: the broker's (BrokerProvisioningSettings) and the databases'."""

    databases: DatabaseAdminSettings
