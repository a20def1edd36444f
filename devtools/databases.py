"""The embedded PostgreSQL's databases made the way compose makes them: the provisioner's
database steps with the development passwords (secrets/dev/), and each service's connection
as its runtime role. Tests, `make run`, `make stack` and the benches start services this way."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devtools.dev_secrets import DEV_SECRETS, db_password_file
from devtools.stack import EmbeddedPostgres
from devtools.suite import load_suite
from provision.__main__ import database_migrations, database_roles, provision
from provision.databases import ROLES
from provision.settings import ProvisionSettings

# Which database each service of the suite uses, and the prefix of the settings naming its URL
# and password file (suite.toml).
_WITH_DATABASE = load_suite().with_database
SERVICE_DATABASES = {service.name: service.database for service in _WITH_DATABASE}
_SETTING = {service.name: service.database_settings for service in _WITH_DATABASE}


def provision_settings(pg: EmbeddedPostgres, secrets: Path = DEV_SECRETS) -> ProvisionSettings:
    """Both admin credentials point at pg (one server holds all three databases here)."""
    values = {k.lower(): v for k, v in provision_env(pg, secrets).items()}
    # flat names: each goes to its group (GroupedSettings), which converts the strings
    return ProvisionSettings(**values)  # type: ignore[arg-type]  # see the line above


def provision_env(pg: EmbeddedPostgres, secrets: Path = DEV_SECRETS) -> dict[str, str]:
    """The environment of `python -m provision` against pg (as compose gives it)."""
    env = {
        "POSTGRES_ADMIN_CONNECT": pg.dsn("postgres"),
        "TIMESCALEDB_ADMIN_CONNECT": pg.dsn("postgres"),
    }
    for role in ROLES:
        env[f"{role.upper()}_PASSWORD_FILE"] = str(db_password_file(role, secrets))
    return env


def provision_databases(pg: EmbeddedPostgres, secrets: Path = DEV_SECRETS) -> None:
    """Runs the provisioner's database steps against pg; blocks until done (from a thread of
    its own, so it works whether or not the caller is inside an event loop)."""
    settings = provision_settings(pg, secrets)
    steps = (("database roles", database_roles), ("database migrations", database_migrations))
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, provision(settings, steps)).result(timeout=120)


def runtime_dsn(pg: EmbeddedPostgres, service: str) -> str:
    """The URL service connects with: its database, as its runtime role."""
    database = SERVICE_DATABASES[service]
    return f"postgresql://{database}_runtime@127.0.0.1:{pg.port}/{database}"


def runtime_password_file(service: str, secrets: Path = DEV_SECRETS) -> Path:
    return db_password_file(f"{SERVICE_DATABASES[service]}_runtime", secrets)


def runtime_password(service: str, secrets: Path = DEV_SECRETS) -> str:
    return runtime_password_file(service, secrets).read_text().strip()


def service_db_env(pg: EmbeddedPostgres, service: str) -> dict[str, str]:
    """service's database settings as environment variables (for processes)."""
    prefix = _SETTING[service]
    return {
        f"{prefix}_CONNECT": runtime_dsn(pg, service),
        f"{prefix}_PASSWORD_FILE": str(runtime_password_file(service)),
    }


def service_db_settings(pg: EmbeddedPostgres, service: str) -> dict[str, Any]:
    """service_db_env as settings keyword arguments (for in-process services)."""
    return {k.lower(): v for k, v in service_db_env(pg, service).items()}
