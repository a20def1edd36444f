"""The audit provisioning decides hypertable or ordinary table from what the server reports,
never by trying CREATE EXTENSION (which kills the session where TimescaleDB is not preloaded)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from audit.server.bootstrap import build as build_audit
from audit.server.repository import AuditRepository
from audit.server.settings import AuditSettings
from devtools.stack import AUDIT_DATABASE, EmbeddedPostgres
from provision.databases import ADMIN_SQL
from tests.helpers import serving


@pytest.fixture
async def audit_db(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's audit database."""
    conn = await asyncpg.connect(postgres.dsn(AUDIT_DATABASE))
    yield conn
    await conn.close()


@pytest.mark.parametrize(
    ("preload", "available", "decision"),
    [
        # the real timescale/timescaledb image: preloaded and installed
        ("timescaledb", True, "hypertable"),
        ("pg_stat_statements, timescaledb", True, "hypertable"),
        ('"$libdir/timescaledb"', True, "hypertable"),
        # plain PostgreSQL (this machine's stand-in)
        ("", False, "table"),
        (None, False, "table"),
        ("pg_stat_statements", False, "table"),
        # installed but not preloaded: CREATE EXTENSION would end the init with a FATAL error
        ("", True, "table-warning"),
        ("pg_stat_statements", True, "table-warning"),
        ("timescaledb_toolkit", True, "table-warning"),
        # preloaded but the extension files missing
        ("timescaledb", False, "table-warning"),
    ],
)
async def test_storage_decision_for_each_state_of_the_server(
    audit_db: asyncpg.Connection, preload: str | None, available: bool, decision: str
) -> None:
    got = await audit_db.fetchval("SELECT audit_storage_decision($1, $2)", preload, available)
    assert got == decision


async def test_this_servers_audit_table_follows_the_decision(audit_db: asyncpg.Connection) -> None:
    decision = await audit_db.fetchval(
        "SELECT audit_storage_decision(current_setting('shared_preload_libraries', true),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'))"
    )
    mode = await AuditRepository(audit_db).storage_mode()
    expected = "TimescaleDB hypertable" if decision == "hypertable" else "ordinary table"
    assert mode.startswith(expected)
    # Either way the table has the keys the consumer relies on.
    constraints = await audit_db.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'audit'::regclass"
    )
    assert "audit_event_unique" in {row["conname"] for row in constraints}


async def test_the_audit_prelude_never_runs_create_extension_unguarded() -> None:
    text = (ADMIN_SQL / "audit.sql").read_text()
    body = text[text.index("DO $$") :]
    # the only CREATE EXTENSION is inside the branch the decision allows
    before, _, after = body.partition("CREATE EXTENSION")
    assert "IF decision = 'hypertable' THEN" in before.splitlines()[-2] + before.splitlines()[-1]
    assert "CREATE EXTENSION" not in after


async def test_audit_ready_line_names_the_storage_mode(
    audit_db: asyncpg.Connection,
    audit_settings_factory: Callable[..., AuditSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = await AuditRepository(audit_db).storage_mode()
    with caplog.at_level(logging.INFO, logger="global_utils.grpc.host"):
        async with serving(build_audit(audit_settings_factory())):
            ready = [r.getMessage() for r in caplog.records if "audit ready" in r.getMessage()]
    assert len(ready) == 1 and ready[0].endswith(f", {expected}")
