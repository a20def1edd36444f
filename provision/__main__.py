"""`python -m provision`: runs each provisioning step in order, once, and exits (0 when every
step succeeded). Compose runs it as the `provision` service the others wait for, Kubernetes as
a Job, `make run` and the tests before they start the services. Every step may run again."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from provision.broker import run as provision_broker
from provision.databases import DATABASES, ensure_roles, run_migrations
from provision.settings import ProvisionSettings

logger = logging.getLogger("provision")

Step = Callable[[ProvisionSettings], Awaitable[None]]


async def database_roles(settings: ProvisionSettings) -> None:
    """Roles, their passwords and the databases, with each server's admin credential."""
    for database in DATABASES:
        await ensure_roles(
            settings.databases.admin(database), database, settings.databases.passwords
        )


async def database_migrations(settings: ProvisionSettings) -> None:
    """Each database's pending migrations, as its owner."""
    for database in DATABASES:
        await run_migrations(
            settings.databases.admin(database),
            database,
            settings.databases.passwords[database.owner],
        )


async def broker(settings: ProvisionSettings) -> None:
    """The AUDIT stream and the audit service's durable consumer, with the NATS admin key."""
    await provision_broker(settings)


# The steps, in order.
STEPS: tuple[tuple[str, Step], ...] = (
    ("database roles", database_roles),
    ("database migrations", database_migrations),
    ("broker", broker),
)


class StepFailed(Exception):
    """A step raised; the message names the step and the cause."""


async def provision(
    settings: ProvisionSettings, steps: tuple[tuple[str, Step], ...] = STEPS
) -> None:
    for name, step in steps:
        logger.info("step: %s", name)
        try:
            await step(settings)
        except Exception as exc:
            raise StepFailed(f"{name}: {type(exc).__name__}: {exc}") from exc


def main() -> None:
    from global_utils.config.loading import load_settings
    from global_utils.observability.logs import configure_logging

    configure_logging()
    settings = load_settings(ProvisionSettings)
    started = time.monotonic()
    logger.info("provision ready: steps %s", ", ".join(name for name, _ in STEPS))
    try:
        asyncio.run(provision(settings))
    except StepFailed as exc:
        # One line that says what failed; the step's own log lines came before it.
        logger.error("provision failed at %s", exc)
        sys.exit(1)
    logger.info("provision stopped: every step done in %.1f s", time.monotonic() - started)


if __name__ == "__main__":
    main()
