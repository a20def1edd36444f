"""Versioned schema migrations: numbered SQL files applied in order, once each.

A database's migrations are the files `NNNN_name.sql` of its folder under provision/versions/.
The runner holds a PostgreSQL advisory lock for the whole run (two provisioners never apply
the same file twice: the second waits, then finds nothing pending), applies each pending file
in a transaction of its own together with its row in `schema_migrations` (version, name,
SHA-256 of the file), and refuses to run when an applied file has changed since or the
database is at a version this release does not have.

A database made by the last release before migrations (init scripts, no version table) is
adopted: its baseline is recorded as applied without running it, the later files then run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

logger = logging.getLogger(__name__)

VERSIONS = Path(__file__).resolve().parent / "versions"
VERSION_TABLE = "schema_migrations"
# One key for every goTemp-py database (advisory locks are per database anyway).
LOCK_KEY = 0x676F54656D70  # "goTemp"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
BASELINE_VERSION = 1


class MigrationError(Exception):
    """The database's recorded migrations and this release's files disagree, or a file is
    not a migration; nothing was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name
    sql: str
    checksum: str  # SHA-256 of the file's bytes, hex


@dataclass(frozen=True)
class PreviousRelease:
    """How to recognise a database the last release's init scripts made: it has every one of
    these tables (the first is the one any version of it had)."""

    tables: tuple[str, ...]


def load_migrations(folder: Path) -> list[Migration]:
    """folder's migrations in version order; MigrationError for a stray or repeated number."""
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration is named NNNN_lowercase_words.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"{path}: version {version} also in {migrations[version].name}: one file each"
            )
        data = path.read_bytes()
        migrations[version] = Migration(
            version, path.name, data.decode(), hashlib.sha256(data).hexdigest()
        )
    ordered = [migrations[v] for v in sorted(migrations)]
    if not ordered or ordered[0].version != BASELINE_VERSION:
        raise MigrationError(f"{folder}: the first migration is {BASELINE_VERSION:04d}_*.sql")
    return ordered


async def migrate(
    conn: asyncpg.Connection,
    migrations: Sequence[Migration],
    *,
    database: str,
    previous_release: PreviousRelease | None = None,
) -> list[Migration]:
    """Applies the pending migrations on conn (connected to database as its owner); returns
    those applied now (none when the database is up to date)."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        adopted = await _ensure_version_table(conn, migrations, database, previous_release)
        applied = await _recorded(conn)
        _check_recorded(applied, migrations, database)
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await _record(conn, migration, "applied")
            logger.info("%s: applied %s", database, migration.name)
        return [*adopted, *pending]
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _ensure_version_table(
    conn: asyncpg.Connection,
    migrations: Sequence[Migration],
    database: str,
    previous_release: PreviousRelease | None,
) -> list[Migration]:
    """Creates the version table when missing; on a database of the previous release also
    records the baseline as applied (returned), in the same transaction."""
    if await _table_exists(conn, VERSION_TABLE):
        return []
    adopt = False
    if previous_release is not None and await _table_exists(conn, previous_release.tables[0]):
        missing = [t for t in previous_release.tables if not await _table_exists(conn, t)]
        if missing:
            raise MigrationError(
                f"{database}: has the table {previous_release.tables[0]} but not"
                f" {', '.join(missing)}: made by a release older than the last one before"
                " migrations; bring it to that release's schema first"
                " (tests/data/previous_release)"
            )
        adopt = True
    async with conn.transaction():
        await conn.execute(
            f"CREATE TABLE {VERSION_TABLE} ("
            " version    integer     PRIMARY KEY,"
            " name       text        NOT NULL,"
            " checksum   text        NOT NULL,"
            " appliedat  timestamptz NOT NULL DEFAULT now(),"
            # 'applied', or 'adopted' (the previous release's init scripts had made it)
            " how        text        NOT NULL)"
        )
        if adopt:
            await _record(conn, migrations[0], "adopted")
    if adopt:
        logger.info(
            "%s: made by the previous release's init scripts; %s recorded as applied",
            database,
            migrations[0].name,
        )
        return [migrations[0]]
    return []


async def _table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def _recorded(conn: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    rows = await conn.fetch(f"SELECT version, name, checksum FROM {VERSION_TABLE}")
    return {row["version"]: (row["name"], row["checksum"]) for row in rows}


def _check_recorded(
    recorded: dict[int, tuple[str, str]], migrations: Sequence[Migration], database: str
) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"{database}: migration {name} is applied but this release does not have it"
                f" (its newest is {migrations[-1].name}): run the release that applied it"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{database}: {migration.name} changed after it was applied (recorded SHA-256"
                f" {checksum[:12]}…, file {migration.checksum[:12]}…): restore the file and put"
                " the change in a new migration"
            )


async def _record(conn: asyncpg.Connection, migration: Migration, how: str) -> None:
    await conn.execute(
        f"INSERT INTO {VERSION_TABLE} (version, name, checksum, how) VALUES ($1, $2, $3, $4)",
        migration.version,
        migration.name,
        migration.checksum,
        how,
    )
