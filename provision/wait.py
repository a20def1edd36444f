"""`python -m provision.wait DATABASE`: waits until DATABASE has its runtime role and every
migration this image ships (provision/versions/DATABASE/), then exits 0; gives up after
PROVISION_WAIT_TIMEOUT_SECONDS with exit 1. Kubernetes runs it as each service's init
container, so a pod starts (and reports ready) only once the provisioning Job has done its
part; the service's own image has it, and the service's database settings are its settings.

It connects as the service does (POSTGRES_CONNECT for user and promotion, DB_CONNECT for
audit, with the password setting or file beside it) and reads `schema_migrations`, which a
runtime role may read and not change. Until then, whatever stands in the way (no server yet,
no role or a password not set yet, no database, older migrations) is what it waits for: it
logs each new reason once, and the last one when it gives up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from global_utils.config.groups import GROUP_CONFIG
from global_utils.config.secrets import read_secret
from global_utils.runtime.backoff import Backoff
from provision.databases import DATABASES, Credential, ServiceDatabase
from provision.migrations import VERSION_TABLE, Migration

logger = logging.getLogger("provision.wait")

# Between two looks: soon at first (the Job may be nearly done), then every two seconds.
POLL = Backoff(initial=0.2, maximum=2.0)
# One attempt's connection may take this long (a server that does not answer at all).
CONNECT_TIMEOUT_SECONDS = 5.0
_URL_SCHEMES = ("postgresql", "postgres")


class WaitSettings(BaseSettings):
    """The service's database settings (either pair, as the service names them) and how long
    to wait."""

    model_config = GROUP_CONFIG

    postgres_connect: str = ""
    """The database URL of a service whose settings name it so (user, promotion)."""
    postgres_password: str = Field(default="", repr=False)
    """The password of POSTGRES_CONNECT's role."""
    postgres_password_file: Path | None = None
    """A file holding POSTGRES_PASSWORD (a secret)."""
    db_connect: str = ""
    """The database URL of a service whose settings name it so (audit)."""
    db_password: str = Field(default="", repr=False)
    """The password of DB_CONNECT's role."""
    db_password_file: Path | None = None
    """A file holding DB_PASSWORD (a secret)."""
    provision_wait_timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    """How long to wait for the database to be provisioned; then it gives up (exit 1) and
    Kubernetes restarts the init container with its back-off."""

    @model_validator(mode="after")
    def _one_database(self) -> WaitSettings:
        if bool(self.postgres_connect) == bool(self.db_connect):
            raise ValueError(
                "set the service's database URL: POSTGRES_CONNECT (user, promotion) or"
                " DB_CONNECT (audit), one of them"
            )
        variable = "POSTGRES_CONNECT" if self.postgres_connect else "DB_CONNECT"
        if urlsplit(self.postgres_connect or self.db_connect).scheme not in _URL_SCHEMES:
            raise ValueError(f"{variable}: not a postgresql:// URL")
        self.postgres_password = read_secret(
            "POSTGRES_PASSWORD", self.postgres_password, self.postgres_password_file
        )
        self.db_password = read_secret("DB_PASSWORD", self.db_password, self.db_password_file)
        return self

    @property
    def credential(self) -> Credential:
        if self.postgres_connect:
            return Credential(self.postgres_connect, self.postgres_password or None)
        return Credential(self.db_connect, self.db_password or None)


class GaveUp(Exception):
    """The database was not ready within the timeout; the message says what it lacked."""


@dataclass(frozen=True)
class Target:
    """What a database must have: every one of these migrations recorded."""

    database: str
    migrations: Sequence[Migration]

    @property
    def newest(self) -> Migration:
        return self.migrations[-1]

    def missing(self, recorded: set[int]) -> list[Migration]:
        return [m for m in self.migrations if m.version not in recorded]


def target_of(database: ServiceDatabase) -> Target:
    return Target(database.name, database.migrations())


async def not_ready_because(credential: Credential, target: Target) -> str | None:
    """None when the database has every migration of target; else why not, in a few words."""
    role = _role(credential.dsn)
    try:
        conn = await asyncio.wait_for(credential.connect(), CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        return f"PostgreSQL not reachable ({type(exc).__name__}: {exc or 'no answer'})"
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        return f"{role} cannot log in yet (the provisioning makes it and sets its password): {exc}"
    except asyncpg.InvalidCatalogNameError as exc:
        return f"no database yet: {exc}"
    except asyncpg.PostgresError as exc:
        return f"cannot connect yet ({type(exc).__name__}): {exc}"
    try:
        rows = await conn.fetch(f"SELECT version FROM {VERSION_TABLE}")
    except asyncpg.UndefinedTableError:
        return f"no migration has run yet (no {VERSION_TABLE} table)"
    except asyncpg.InsufficientPrivilegeError:
        # the grant comes with a migration this image ships, so the database is older
        return f"{role} may not read {VERSION_TABLE} yet: the database is older than this image"
    except asyncpg.PostgresError as exc:
        return f"cannot read {VERSION_TABLE} ({type(exc).__name__}): {exc}"
    finally:
        await conn.close()
    missing = target.missing({row["version"] for row in rows})
    if missing:
        newest = max((row["version"] for row in rows), default=0)
        names = ", ".join(m.name for m in missing)
        return f"at version {newest}, this image's migrations {names} not applied yet"
    return None


async def wait_until_ready(
    credential: Credential, target: Target, timeout: float, poll: Backoff = POLL
) -> float:
    """Returns when target's database has its migrations (the seconds it took); GaveUp after
    timeout seconds. Each new reason to wait is logged once."""
    started = time.monotonic()
    deadline = started + timeout
    last: str | None = None
    for delay in poll.delays():
        reason = await not_ready_because(credential, target)
        if reason is None:
            return time.monotonic() - started
        if reason != last:
            logger.info("waiting for %s: %s", target.database, reason)
            last = reason
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GaveUp(f"{target.database} not ready after {timeout:g} s: {reason}")
        await asyncio.sleep(min(delay, remaining))
    raise AssertionError("unreachable: Backoff.delays() is endless")


def _role(dsn: str) -> str:
    """The role the URL connects as (for messages; never the password)."""
    user = urlsplit(dsn).username
    return f"role {user}" if user else "the role"


def main(argv: Sequence[str] | None = None) -> None:
    from global_utils.config.loading import load_settings
    from global_utils.observability.logs import configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m provision.wait", description=__doc__.splitlines()[0]
    )
    parser.add_argument("database", choices=[d.name for d in DATABASES])
    args = parser.parse_args(argv)
    settings = load_settings(WaitSettings)
    configure_logging()
    (database,) = [d for d in DATABASES if d.name == args.database]
    target = target_of(database)
    timeout = settings.provision_wait_timeout_seconds
    logger.info(
        "provision.wait ready: waiting up to %g s for %s to have migration %s, as %s",
        timeout,
        target.database,
        target.newest.name,
        _role(settings.credential.dsn),
    )
    try:
        took = asyncio.run(wait_until_ready(settings.credential, target, timeout))
    except GaveUp as exc:
        logger.error("provision.wait gave up: %s", exc)
        sys.exit(1)
    logger.info(
        "provision.wait stopped: %s has migration %s (waited %.1f s)",
        target.database,
        target.newest.name,
        took,
    )


if __name__ == "__main__":
    main()
