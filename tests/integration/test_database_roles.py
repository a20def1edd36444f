"""Least privilege in the databases, against the session's real PostgreSQL (provisioned as
compose provisions it): each service's runtime role opens only its own database and may run
only the statements its service runs there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from devtools.databases import DEV_SECRETS, SERVICE_DATABASES, provision_databases, runtime_password
from devtools.stack import EmbeddedPostgres
from provision.databases import DATABASES
from tests.helpers import new_user
from user.proto import user_pb2, user_pb2_grpc


async def connect_as(pg: EmbeddedPostgres, service: str, database: str) -> asyncpg.Connection:
    """A connection to database as service's runtime role, with its real password."""
    role = f"{SERVICE_DATABASES[service]}_runtime"
    return await asyncpg.connect(
        f"postgresql://{role}@127.0.0.1:{pg.port}/{database}", password=runtime_password(service)
    )


@pytest.fixture
async def superuser(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres.dsn("postgres"))
    yield conn
    await conn.close()


@pytest.mark.parametrize(
    ("service", "database"),
    [
        ("promotion", "appuser"),
        ("audit", "appuser"),
        ("user", "promotion"),
        ("audit", "promotion"),
        ("user", "audit"),
        ("promotion", "audit"),
    ],
)
async def test_a_runtime_role_cannot_open_another_services_database(
    postgres: EmbeddedPostgres, service: str, database: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await connect_as(postgres, service, database)


async def test_a_wrong_password_is_refused(postgres: EmbeddedPostgres) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            f"postgresql://appuser_runtime@127.0.0.1:{postgres.port}/appuser",
            password="not-the-password",
        )


async def test_role_passwords_reach_the_server_only_as_scram_verifiers(
    postgres: EmbeddedPostgres, superuser: asyncpg.Connection
) -> None:
    # A server logging every statement with its parameters (the provisioner connects as the
    # admin, postgres) must log no role's password: CREATE/ALTER ROLE carry verifiers.
    passwords = [
        p.read_text().strip() for p in DEV_SECRETS.glob("db-password-*-*.DEVELOPMENT-ONLY")
    ]
    passwords = [p for p in passwords if p]
    log = postgres.data_dir / "server.log"
    start = log.stat().st_size
    await superuser.execute("ALTER ROLE postgres SET log_statement = 'all'")
    try:
        await asyncio.to_thread(provision_databases, postgres)
    finally:
        await superuser.execute("ALTER ROLE postgres RESET log_statement")
    logged = log.read_bytes()[start:].decode(errors="replace")
    assert "ALTER ROLE" in logged and "SCRAM-SHA-256$4096:" in logged
    assert len(passwords) >= 6
    assert not [p for p in passwords if p in logged]
    # ... and every service still logs in with its password
    for service, database in (("user", "appuser"), ("promotion", "promotion"), ("audit", "audit")):
        conn = await connect_as(postgres, service, database)
        await conn.close()


async def test_promotion_cannot_read_users_even_when_let_into_their_database(
    postgres: EmbeddedPostgres, superuser: asyncpg.Connection
) -> None:
    await superuser.execute("GRANT CONNECT ON DATABASE appuser TO promotion_runtime")
    try:
        conn = await connect_as(postgres, "promotion", "appuser")
        try:
            for table in ("appuser", "refresh_token", "login_throttle", "audit_outbox"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetchval(f"SELECT count(*) FROM {table}")
        finally:
            await conn.close()
    finally:
        await superuser.execute("REVOKE CONNECT ON DATABASE appuser FROM promotion_runtime")


@pytest.fixture
async def audit_runtime(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect_as(postgres, "audit", "audit")
    yield conn
    await conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit SET performedby = 'someone else'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        "ALTER TABLE audit DROP CONSTRAINT audit_event_unique",
        "DROP TABLE audit",
        "UPDATE audit_rejects SET reason = ''",
        "DELETE FROM audit_rejects",
        "DELETE FROM audit_chain_heads",
        "INSERT INTO audit_chain_heads (chainid) VALUES (1000)",
        "CREATE TABLE shadow_audit (id int)",
    ],
)
async def test_the_audit_service_cannot_change_or_remove_history(
    audit_runtime: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await audit_runtime.execute(statement)


async def test_the_audit_service_stores_and_reads_history(
    audit_runtime: asyncpg.Connection,
) -> None:
    # what it must still do: read, add, claim and move a chain's head, record a reject (in a
    # transaction rolled back at the end: the session's history stays as it was)
    transaction = audit_runtime.transaction()
    await transaction.start()
    try:
        assert await audit_runtime.fetchval("SELECT count(*) FROM audit") >= 0
        await audit_runtime.execute(
            "INSERT INTO audit (actiontime, topic, service, actionfunc, actiontype, objectname,"
            " objectid, performedby, eventid) VALUES (now(), 'Audit', 'test', 'f', 'insert',"
            " 'thing', '1', '1', gen_random_uuid())"
        )
        head = await audit_runtime.fetchrow(
            "SELECT chainid FROM audit_chain_heads ORDER BY chainid LIMIT 1 FOR UPDATE"
        )
        await audit_runtime.execute(
            "UPDATE audit_chain_heads SET chainseq = chainseq WHERE chainid = $1", head["chainid"]
        )
        await audit_runtime.execute(
            "INSERT INTO audit_rejects (subject, headers, payload, reason, kind)"
            " VALUES ('Audit', '{}', '', 'test', 'malformed')"
        )
    finally:
        await transaction.rollback()


@pytest.mark.parametrize("service", sorted(SERVICE_DATABASES))
async def test_runtime_roles_cannot_change_the_schema(
    postgres: EmbeddedPostgres, service: str
) -> None:
    database = SERVICE_DATABASES[service]
    conn = await connect_as(postgres, service, database)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE schema_migrations")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM schema_migrations")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE schema_migrations SET checksum = ''")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, how)"
                " VALUES (9999, '9999_forged.sql', '', 'applied')"
            )
    finally:
        await conn.close()


@pytest.mark.parametrize("service", sorted(SERVICE_DATABASES))
async def test_runtime_roles_read_which_migrations_are_applied(
    postgres: EmbeddedPostgres, service: str
) -> None:
    # what the pods' init container (python -m provision.wait) waits on, as this role
    database = SERVICE_DATABASES[service]
    conn = await connect_as(postgres, service, database)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    shipped = next(d for d in DATABASES if d.name == database).migrations()
    assert [row["version"] for row in versions] == [m.version for m in shipped]


async def test_every_database_is_closed_to_public(superuser: asyncpg.Connection) -> None:
    for database in DATABASES:
        public_may = await superuser.fetchval(
            "SELECT has_database_privilege('public', $1, 'CONNECT')", database.name
        )
        assert public_may is False, database.name


async def test_the_user_service_works_as_its_runtime_role(
    postgres: EmbeddedPostgres,
    user_stub: user_pb2_grpc.UserSrvStub,
    auth: tuple[tuple[str, str], ...],
    superuser: asyncpg.Connection,
) -> None:
    # a login (refresh token, throttle reset), a failed one (throttle row), create, delete
    login = await user_stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))
    assert login.token
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await user_stub.Auth(user_pb2.User(email="ant@mymail.com", pwd="not it"))
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    created = await user_stub.CreateUser(new_user(), metadata=auth)
    assert created.user.id
    roles = {
        row["usename"]
        for row in await superuser.fetch(
            "SELECT usename FROM pg_stat_activity WHERE datname = 'appuser'"
        )
    }
    assert "appuser_runtime" in roles
