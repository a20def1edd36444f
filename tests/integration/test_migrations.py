"""Versioned migrations (provision/migrations.py) against real PostgreSQL: once each, in order,
under a lock, refusing edited history; and the upgrade of a database the previous release's
init scripts made, data kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from devtools.databases import provision_databases, runtime_dsn, runtime_password
from devtools.dev_secrets import db_password_file
from devtools.stack import EmbeddedPostgres
from provision.databases import DATABASES, Credential, run_migrations
from provision.migrations import (
    LOCK_KEY,
    VERSIONS,
    MigrationError,
    PreviousRelease,
    load_migrations,
    migrate,
)
from tests.helpers import eventually
from tests.previous_release import build_previous_release


@pytest.fixture
async def scratch(postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    """An empty database of its own; its name."""
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


THREE = {
    "0001_baseline.sql": "CREATE TABLE thing (id int PRIMARY KEY);",
    "0002_more.sql": "ALTER TABLE thing ADD COLUMN label text NOT NULL DEFAULT '';",
    "0003_seed.sql": "INSERT INTO thing (id) VALUES (1), (2);",
}


async def recorded(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    rows = await conn.fetch("SELECT version, how FROM schema_migrations ORDER BY version")
    return [(row["version"], row["how"]) for row in rows]


async def test_pending_migrations_apply_in_order_and_a_second_run_applies_nothing(
    postgres: EmbeddedPostgres, scratch: str, tmp_path: Path
) -> None:
    migrations = load_migrations(write(tmp_path / "m", THREE))
    conn = await asyncpg.connect(postgres.dsn(scratch))
    try:
        first = await migrate(conn, migrations, database=scratch)
        assert [m.name for m in first] == list(THREE)
        assert await migrate(conn, migrations, database=scratch) == []
        assert await conn.fetchval("SELECT count(*) FROM thing") == 2  # the seed ran once
        assert await recorded(conn) == [(1, "applied"), (2, "applied"), (3, "applied")]
    finally:
        await conn.close()


async def test_the_provisioned_databases_are_up_to_date(postgres: EmbeddedPostgres) -> None:
    # the session's databases were provisioned at its start: running again applies nothing
    for database in DATABASES:
        conn = await asyncpg.connect(postgres.dsn(database.name))
        try:
            before = await recorded(conn)
        finally:
            await conn.close()
        owner_password = db_password_file(database.owner).read_text().strip()
        applied = await run_migrations(
            Credential(postgres.dsn("postgres")), database, owner_password
        )
        assert applied == []
        assert [version for version, _ in before] == [m.version for m in database.migrations()]


async def test_every_outbox_is_leased_in_place(postgres: EmbeddedPostgres) -> None:
    """Each producer's audit_outbox has the relay's lease column and room in its pages for
    the lease's heap-only update (the relay's claim would cost twice as much without)."""
    outboxes = 0
    for database in DATABASES:
        conn = await asyncpg.connect(postgres.dsn(database.name))
        try:
            table = await conn.fetchrow(
                "SELECT c.reloptions, EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid"
                " AND a.attname = 'leaseuntil' AND NOT a.attisdropped) AS leased"
                " FROM pg_class c WHERE c.relname = 'audit_outbox' AND c.relkind = 'r'"
            )
        finally:
            await conn.close()
        if table is not None:
            outboxes += 1
            assert table["leased"] and "fillfactor=50" in (table["reloptions"] or []), database
    assert outboxes == len(DATABASES) - 1  # every database but the audit service's


async def test_a_changed_applied_migration_is_refused_and_nothing_runs(
    postgres: EmbeddedPostgres, scratch: str, tmp_path: Path
) -> None:
    folder = write(tmp_path / "m", dict(list(THREE.items())[:2]))
    conn = await asyncpg.connect(postgres.dsn(scratch))
    try:
        await migrate(conn, load_migrations(folder), database=scratch)
        write(folder, {"0002_more.sql": "ALTER TABLE thing ADD COLUMN other int;"})
        write(folder, {"0003_seed.sql": THREE["0003_seed.sql"]})
        with pytest.raises(MigrationError, match="0002_more.sql changed after it was applied"):
            await migrate(conn, load_migrations(folder), database=scratch)
        assert await conn.fetchval("SELECT count(*) FROM thing") == 0  # 0003 did not run
        assert [v for v, _ in await recorded(conn)] == [1, 2]
    finally:
        await conn.close()


async def test_a_database_ahead_of_this_release_is_refused(
    postgres: EmbeddedPostgres, scratch: str, tmp_path: Path
) -> None:
    folder = write(tmp_path / "m", THREE)
    conn = await asyncpg.connect(postgres.dsn(scratch))
    try:
        await migrate(conn, load_migrations(folder), database=scratch)
        (folder / "0003_seed.sql").unlink()
        with pytest.raises(MigrationError, match="0003_seed.sql is applied but this release"):
            await migrate(conn, load_migrations(folder), database=scratch)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_of_itself(
    postgres: EmbeddedPostgres, scratch: str, tmp_path: Path
) -> None:
    folder = write(
        tmp_path / "m",
        {
            **dict(list(THREE.items())[:1]),
            "0002_half.sql": "CREATE TABLE half (id int); SELECT 1/0;",
        },
    )
    conn = await asyncpg.connect(postgres.dsn(scratch))
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, load_migrations(folder), database=scratch)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert [v for v, _ in await recorded(conn)] == [1]
    finally:
        await conn.close()


async def test_two_concurrent_runners_apply_each_migration_once(
    postgres: EmbeddedPostgres, scratch: str, tmp_path: Path
) -> None:
    migrations = load_migrations(write(tmp_path / "m", THREE))
    holder = await asyncpg.connect(postgres.dsn(scratch))
    runners = [await asyncpg.connect(postgres.dsn(scratch)) for _ in range(2)]
    try:
        # Both runners start while the lock is held elsewhere, so both are surely waiting on
        # it at once; then it is let go.
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        runs = [
            asyncio.create_task(migrate(conn, migrations, database=scratch)) for conn in runners
        ]

        async def both_waiting() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                scratch,
            )
            return waiting == 2

        await eventually(both_waiting, timeout=10, what="both runners waiting for the lock")
        await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        results = await asyncio.gather(*runs)
        assert sorted(len(applied) for applied in results) == [0, len(THREE)]
        assert await holder.fetchval("SELECT count(*) FROM thing") == 2
        assert [v for v, _ in await recorded(holder)] == [1, 2, 3]
    finally:
        for conn in (holder, *runners):
            await conn.close()


async def test_a_database_older_than_the_previous_release_is_refused(
    postgres: EmbeddedPostgres, scratch: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(postgres.dsn(scratch))
    try:
        await conn.execute("CREATE TABLE thing (id int)")
        with pytest.raises(MigrationError, match="has the table thing but not other"):
            await migrate(
                conn,
                load_migrations(write(tmp_path / "m", THREE)),
                database=scratch,
                previous_release=PreviousRelease(("thing", "other")),
            )
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


def test_migration_files_are_named_by_version(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="NNNN_lowercase_words.sql"):
        load_migrations(write(tmp_path / "a", {"0001_baseline.sql": "", "2_x.sql": ""}))
    with pytest.raises(MigrationError, match="first migration is 0001"):
        load_migrations(write(tmp_path / "b", {"0002_x.sql": ""}))


# --- the upgrade of a previous release's databases --------------------------------------------

SCHEMA = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
       || is_nullable || ' ' || coalesce(column_default, '') || ' '
       || coalesce(generation_expression, '')
FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  AND conrelid <> coalesce(to_regclass('schema_migrations'), 0)
UNION ALL
SELECT 'function ' || oid::regprocedure || ' ' || md5(prosrc) FROM pg_proc
WHERE pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'owner ' || c.relname || ' ' || pg_get_userbyid(c.relowner) FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S')
UNION ALL
SELECT 'grant ' || table_name || ' ' || grantee || ' ' || privilege_type
FROM information_schema.role_table_grants
WHERE table_schema = 'public' AND grantee LIKE '%_runtime'
ORDER BY 1
"""


# The previous release made next_id in template1, so on a server holding all three databases
# (this one) the audit database has a copy too, which nothing uses; a fresh one has none.
TEMPLATE1_LEFTOVERS = ("next_id()", "global_id_sequence")


async def schema_of(pg: EmbeddedPostgres, database: str) -> list[str]:
    conn = await asyncpg.connect(pg.dsn(database))
    try:
        rows = [row[0] for row in await conn.fetch(SCHEMA)]
    finally:
        await conn.close()
    if database != "audit":
        return rows
    return [row for row in rows if not any(f" {name} " in row for name in TEMPLATE1_LEFTOVERS)]


async def _add_rows(pg: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(pg.dsn("appuser"))
    try:
        await conn.execute(
            "INSERT INTO appuser (firstname, lastname, validfrom, validthru, pwd, email)"
            " VALUES ('Old', 'Timer', '2020-01-01', '2100-01-01', 'x', 'old@mymail.com')"
        )
        await conn.execute(
            "INSERT INTO audit_outbox (eventid, subject, headers, payload)"
            " VALUES (gen_random_uuid(), 'Audit', '{}', 'pending')"
        )
    finally:
        await conn.close()
    conn = await asyncpg.connect(pg.dsn("promotion"))
    try:
        await conn.execute(
            "INSERT INTO promotion (name, validfrom, validthru, customerid)"
            " VALUES ('Old promo', '2020-01-01', '2100-01-01', 42)"
        )
    finally:
        await conn.close()
    conn = await asyncpg.connect(pg.dsn("audit"))
    try:
        await conn.execute(
            "INSERT INTO audit (actiontime, topic, service, actionfunc, actiontype, objectname,"
            " objectid, performedby, eventid) VALUES ('2024-05-01', 'Audit', 'goTemp.api.user',"
            " 'AfterCreateUser', 'insert', 'user', '77', '1', gen_random_uuid())"
        )
    finally:
        await conn.close()


async def test_a_previous_release_database_is_upgraded_with_its_data(
    postgres: EmbeddedPostgres, stack_dir: Path
) -> None:
    pg = EmbeddedPostgres(stack_dir / "previous-release-pg", durable=False).start()
    try:
        await asyncio.to_thread(build_previous_release, pg)
        await _add_rows(pg)
        await asyncio.to_thread(provision_databases, pg)
        await asyncio.to_thread(provision_databases, pg)  # and again: nothing more to do

        for database in DATABASES:
            conn = await asyncpg.connect(pg.dsn(database.name))
            try:
                migrations = load_migrations(VERSIONS / database.name)
                if database.previous_release is None:
                    # a service newer than that release: its database is made from nothing
                    expected = [(m.version, "applied") for m in migrations]
                else:
                    later = migrations[1:]  # after the baseline
                    expected = [(1, "adopted"), *[(m.version, "applied") for m in later]]
                assert await recorded(conn) == expected, database.name
            finally:
                await conn.close()
            # the same schema, owners and grants as a database provisioned from nothing
            assert await schema_of(pg, database.name) == await schema_of(postgres, database.name), (
                database.name
            )

        # the rows are there, and the services' runtime roles use them
        user = await asyncpg.connect(runtime_dsn(pg, "user"), password=runtime_password("user"))
        try:
            assert (
                await user.fetchval("SELECT count(*) FROM appuser WHERE email = 'old@mymail.com'")
                == 1
            )
            assert (
                await user.fetchval(
                    "SELECT role FROM appuser WHERE lower(email) = 'duck@mymail.com'"
                )
                == "admin"
            )
            assert (
                await user.fetchval("SELECT count(*) FROM audit_outbox WHERE sentat IS NULL") == 1
            )
            new_id = await user.fetchval(
                "INSERT INTO appuser (firstname, lastname, validfrom, validthru, pwd, email)"
                " VALUES ('New', 'Comer', '2020-01-01', '2100-01-01', 'x', 'new@mymail.com')"
                " RETURNING id"
            )
            assert new_id > 0
        finally:
            await user.close()
        promotion = await asyncpg.connect(
            runtime_dsn(pg, "promotion"), password=runtime_password("promotion")
        )
        try:
            assert (
                await promotion.fetchval(
                    "SELECT customerid FROM promotion WHERE name = 'Old promo'"
                )
                == 42
            )
        finally:
            await promotion.close()
        audit = await asyncpg.connect(runtime_dsn(pg, "audit"), password=runtime_password("audit"))
        try:
            assert await audit.fetchval("SELECT count(*) FROM audit WHERE objectid = '77'") == 1
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await audit.execute("DELETE FROM audit WHERE objectid = '77'")
        finally:
            await audit.close()
    finally:
        pg.stop()
