"""python -m provision.wait against real PostgreSQL: a pod's init container waits while its
database has no role, no schema or older migrations than its image, returns once the
provisioning has run, and gives up with a clear message after its timeout."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from devtools.databases import provision_databases, provision_settings, runtime_password_file
from devtools.processes import ServiceProcess
from devtools.stack import EmbeddedPostgres, free_port, wait_until
from global_utils.runtime.backoff import Backoff
from provision.databases import DATABASES, ROLES, Credential, ensure_roles, run_migrations
from provision.migrations import Migration, migrate
from provision.wait import GaveUp, Target, not_ready_because, target_of, wait_until_ready
from tests.helpers import eventually

APPUSER = next(d for d in DATABASES if d.name == "appuser")
# quick looks, so a test sees the change soon after it happens
QUICK = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture(scope="module")
def bare_postgres(stack_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this module's own, which the tests provision from nothing."""
    server = EmbeddedPostgres(stack_dir / "pg-wait", durable=False).start()
    yield server
    server.stop()


@pytest.fixture
async def unprovisioned(bare_postgres: EmbeddedPostgres) -> AsyncIterator[EmbeddedPostgres]:
    """bare_postgres without the services' databases and roles, as before the Job runs."""
    conn = await asyncpg.connect(bare_postgres.dsn())
    try:
        for database in DATABASES:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        for role in ROLES:
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()
    yield bare_postgres


def runtime(pg: EmbeddedPostgres) -> Credential:
    """The user service's credential: its runtime role on appuser, with its password."""
    password = runtime_password_file("user").read_text().strip()
    return Credential(f"postgresql://appuser_runtime@127.0.0.1:{pg.port}/appuser", password)


def waiter_env(pg: EmbeddedPostgres, **extra: str) -> dict[str, str]:
    """The init container's environment for the user service (its own settings' names)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRES_", "DB_", "PROVISION_WAIT_"))
    }
    return {
        **env,
        "POSTGRES_CONNECT": runtime(pg).dsn,
        "POSTGRES_PASSWORD_FILE": str(runtime_password_file("user")),
        **extra,
    }


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Returns once a provision.wait log line has said text."""

    async def seen() -> bool:
        return any(text in r.getMessage() for r in caplog.records if r.name == "provision.wait")

    await eventually(seen, timeout=30, what=f"provision.wait to log {text!r}")


async def roles_and_migrations(pg: EmbeddedPostgres, migrations: list[Migration]) -> None:
    """The provisioning's roles step for appuser, then only these of its migrations."""
    settings = provision_settings(pg)
    await ensure_roles(settings.databases.admin(APPUSER), APPUSER, settings.databases.passwords)
    owner = settings.databases.admin(APPUSER).as_role(
        APPUSER.owner, settings.databases.passwords[APPUSER.owner]
    )
    conn = await owner.connect(APPUSER.name)
    try:
        await migrate(conn, migrations, database=APPUSER.name)
    finally:
        await conn.close()


def test_it_waits_while_unprovisioned_and_returns_once_the_provisioning_has_run(
    unprovisioned: EmbeddedPostgres, stack_dir: Path
) -> None:
    waiter = ServiceProcess(
        "provision.wait", waiter_env(unprovisioned), stack_dir / "wait-ok.log", args=["appuser"]
    )
    try:
        newest = APPUSER.migrations()[-1].name
        waiter.wait_for_line(
            f"provision.wait ready: waiting up to 300 s for appuser to have migration {newest}"
        )
        waiter.wait_for_line("waiting for appuser: role appuser_runtime cannot log in yet")
        assert waiter.proc.poll() is None  # still waiting
        provision_databases(unprovisioned)
        wait_until(lambda: waiter.proc.poll() is not None, 30, "the waiter to return")
    finally:
        code = waiter.terminate()
    output = waiter.output
    assert code == 0, output
    assert f"provision.wait stopped: appuser has migration {newest}" in output
    # what it waits for is logged once each, however often it looks
    waits = [line for line in output.splitlines() if "waiting for appuser:" in line]
    assert len(waits) == len(set(waits)), waits


def test_it_gives_up_after_its_timeout_saying_what_was_missing(
    unprovisioned: EmbeddedPostgres, stack_dir: Path
) -> None:
    env = waiter_env(unprovisioned, PROVISION_WAIT_TIMEOUT_SECONDS="1.5")
    waiter = ServiceProcess("provision.wait", env, stack_dir / "wait-timeout.log", args=["appuser"])
    try:
        wait_until(lambda: waiter.proc.poll() is not None, 30, "the waiter to give up")
    finally:
        code = waiter.terminate()
    assert code == 1, waiter.output
    (line,) = [line for line in waiter.output.splitlines() if "gave up" in line]
    assert "provision.wait gave up: appuser not ready after 1.5 s:" in line
    assert "role appuser_runtime cannot log in yet" in line
    assert "stopped" not in waiter.output


async def test_it_waits_while_the_database_is_older_than_the_image(
    unprovisioned: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    # roles and the migrations before the one that lets the runtime role read the version
    # table (once it can, a missing migration is named: the next test)
    shipped = APPUSER.migrations()
    grant = next(i for i, m in enumerate(shipped) if "runtime_reads_schema_version" in m.name)
    await roles_and_migrations(unprovisioned, shipped[:grant])
    credential, target = runtime(unprovisioned), target_of(APPUSER)
    reason = await not_ready_because(credential, target)
    assert reason is not None and "older than this image" in reason
    waiting = asyncio.create_task(wait_until_ready(credential, target, 60, QUICK))
    await logged(caplog, f"waiting for appuser: {reason}")
    assert not waiting.done()
    settings = provision_settings(unprovisioned)
    await run_migrations(
        settings.databases.admin(APPUSER), APPUSER, settings.databases.passwords[APPUSER.owner]
    )
    await asyncio.wait_for(waiting, 30)
    assert await not_ready_because(credential, target) is None


async def test_it_waits_for_a_migration_newer_than_the_database(
    unprovisioned: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    shipped = APPUSER.migrations()
    await roles_and_migrations(unprovisioned, shipped)
    # an image one migration ahead of the database
    newer = Migration(shipped[-1].version + 1, "9999_newer.sql", "SELECT 1;", "0" * 64)
    credential, target = runtime(unprovisioned), Target("appuser", [*shipped, newer])
    reason = await not_ready_because(credential, target)
    assert reason == (
        f"at version {shipped[-1].version}, this image's migrations 9999_newer.sql not applied yet"
    )
    waiting = asyncio.create_task(wait_until_ready(credential, target, 60, QUICK))
    await logged(caplog, f"waiting for appuser: {reason}")
    assert not waiting.done()
    await roles_and_migrations(unprovisioned, [*shipped, newer])
    await asyncio.wait_for(waiting, 30)


async def test_an_unreachable_server_is_what_it_gives_up_on() -> None:
    nobody = free_port()  # nothing listens there
    credential = Credential(f"postgresql://appuser_runtime@127.0.0.1:{nobody}/appuser")
    with pytest.raises(GaveUp, match=r"appuser not ready after 0\.5 s: PostgreSQL not reachable"):
        await wait_until_ready(credential, target_of(APPUSER), 0.5, QUICK)
