"""The services' databases: who owns each, who the service runs as, and the two provisioning
steps for them.

Per database two roles: `<db>_owner` owns the database and its schema and runs its migrations;
`<db>_runtime` is what the service connects as, granted by the migrations only the statements
the service runs on its own tables. PUBLIC may not connect to these databases, so a service's
runtime role cannot even open another service's database.

Roles step (admin credential, per cluster): the roles with their passwords from the secret
files (so rotating one is: new file, run the provisioner, restart the service), the database
owned by its owner, CONNECT for the runtime role only, and, for a database the previous
release's init scripts made as the superuser, its objects handed to the owner. Migrations step:
provision/migrations.py as the owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from provision.migrations import VERSIONS, Migration, PreviousRelease, load_migrations, migrate
from provision.scram import scram_sha256_verifier
from provision.suite_databases import SUITE_DATABASES

logger = logging.getLogger(__name__)

ADMIN_SQL = Path(__file__).resolve().parent / "admin"


@dataclass(frozen=True)
class ServiceDatabase:
    name: str
    cluster: str  # which server holds it: "postgres" (pgdb) or "timescaledb"
    # the previous release's tables, for a database that release made (None: a newer one)
    previous_release: PreviousRelease | None = None

    @property
    def owner(self) -> str:
        return f"{self.name}_owner"

    @property
    def runtime(self) -> str:
        return f"{self.name}_runtime"

    @property
    def roles(self) -> tuple[str, str]:
        return self.owner, self.runtime

    def migrations(self) -> list[Migration]:
        return load_migrations(VERSIONS / self.name)

    def admin_sql(self) -> str | None:
        """SQL the admin runs in this database before its migrations, every time."""
        path = ADMIN_SQL / f"{self.name}.sql"
        return path.read_text() if path.exists() else None


# The databases the previous release's init scripts made, recognised by their tables (a database
# added since has none: its baseline migration made it).
PREVIOUS_RELEASE = {
    "appuser": PreviousRelease(("appuser", "login_throttle", "refresh_token", "audit_outbox")),
    "promotion": PreviousRelease(("promotion", "audit_outbox")),
    "audit": PreviousRelease(("audit", "audit_chain_heads")),
}
# Every database of the suite (suite.toml, through the generated provision/suite_databases.py).
DATABASES = tuple(
    ServiceDatabase(name, cluster, PREVIOUS_RELEASE.get(name)) for name, cluster in SUITE_DATABASES
)
ROLES = tuple(role for database in DATABASES for role in database.roles)


@dataclass(frozen=True)
class Credential:
    """Where to connect and as whom: a libpq-style URL (its query may carry sslmode and
    sslrootcert) and the password, kept apart from the URL so no log line shows it."""

    dsn: str
    password: str | None = None

    async def connect(self, database: str | None = None) -> asyncpg.Connection:
        """A connection to dsn, to database instead of the URL's when given."""
        extra = {} if database is None else {"database": database}
        return await asyncpg.connect(self.dsn, password=self.password, **extra)

    def as_role(self, user: str, password: str) -> Credential:
        """The same server (and TLS) as another role."""
        return Credential(with_user(self.dsn, user), password)


async def ensure_roles(
    admin: Credential, database: ServiceDatabase, passwords: dict[str, str]
) -> None:
    """The roles step for one database, with the admin credential of its cluster."""
    conn = await admin.connect()
    try:
        for role in database.roles:
            await _ensure_role(conn, role, passwords[role])
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database.name
        )
        if not exists:
            await conn.execute(
                f"CREATE DATABASE {_ident(database.name)} OWNER {_ident(database.owner)}"
            )
            logger.info("created database %s", database.name)
        name = _ident(database.name)
        await conn.execute(f"ALTER DATABASE {name} OWNER TO {_ident(database.owner)}")
        # Nobody but its own roles (and superusers) opens a service's database.
        await conn.execute(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {_ident(database.runtime)}")
    finally:
        await conn.close()
    conn = await admin.connect(database=database.name)
    try:
        # PostgreSQL 15 and later already refuse CREATE in public to PUBLIC; older ones not.
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        prelude = database.admin_sql()
        if prelude is not None:
            conn.add_log_listener(_server_messages(database.name))
            await conn.execute(prelude)
        await _hand_over(conn, database)
    finally:
        await conn.close()


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str) -> None:
    exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
    verb = "ALTER" if exists else "CREATE"
    # The server gets the SCRAM verifier, never the password, wherever it can be made here
    # (a server logging statements would log the password); PBKDF2 is a few ms of CPU.
    secret = await asyncio.to_thread(scram_sha256_verifier, password)
    if secret is None:
        logger.warning(
            "role %s: the password is not printable ASCII, so the server has to normalize and"
            " hash it: it is sent as it is (a server logging statements logs it)",
            role,
        )
        secret = password
    # A password cannot be a bind parameter of CREATE/ALTER ROLE: quoted by the server.
    statement = await conn.fetchval(
        f"SELECT format('{verb} ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
        " NOREPLICATION PASSWORD %L', $1::text, $2::text)",
        role,
        secret,
    )
    await conn.execute(statement)
    if not exists:
        logger.info("created role %s", role)


async def _hand_over(conn: asyncpg.Connection, database: ServiceDatabase) -> None:
    """Gives the owner what another role (the superuser of the previous release's init
    scripts, or the admin's prelude) made in the public schema; extensions' members stay
    the extension's."""
    objects = await conn.fetch(
        "SELECT c.oid::regclass::text AS name, c.relkind FROM pg_class c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> $1::regrole"
        " AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "  AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))",
        database.owner,
    )
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS name FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> $1::regrole"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass"
        "  AND d.objid = p.oid AND d.deptype = 'e')",
        database.owner,
    )
    kinds = {"S": "SEQUENCE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}
    owner = _ident(database.owner)
    for row in objects:
        kind = kinds.get(row["relkind"], "TABLE")
        await conn.execute(f"ALTER {kind} {row['name']} OWNER TO {owner}")
    for row in functions:
        await conn.execute(f"ALTER FUNCTION {row['name']} OWNER TO {owner}")
    if objects or functions:
        logger.info(
            "%s: %d objects of another role handed to %s",
            database.name,
            len(objects) + len(functions),
            database.owner,
        )


async def run_migrations(
    admin: Credential, database: ServiceDatabase, owner_password: str
) -> list[Migration]:
    """The migrations step for one database, as its owner (host and TLS from admin's URL)."""
    conn = await admin.as_role(database.owner, owner_password).connect(database.name)
    try:
        conn.add_log_listener(_server_messages(database.name))
        applied = await migrate(
            conn,
            database.migrations(),
            database=database.name,
            previous_release=database.previous_release,
        )
    finally:
        await conn.close()
    if not applied:
        logger.info("%s: up to date", database.name)
    return applied


def _server_messages(database: str) -> Callable[[asyncpg.Connection, Any], None]:
    def log(_conn: asyncpg.Connection, message: Any) -> None:
        level = logging.WARNING if message.severity in ("WARNING", "ERROR") else logging.INFO
        logger.log(level, "%s: %s", database, message.message)

    return log


def _ident(name: str) -> str:
    """A double-quoted identifier (the names here are this module's own constants)."""
    return '"' + name.replace('"', '""') + '"'


def with_user(dsn: str, user: str) -> str:
    """dsn with its user (and any password in it) replaced by user."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))
