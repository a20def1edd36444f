"""Session fixtures: a real PostgreSQL and a real NATS on free loopback ports."""

from __future__ import annotations

import os

# Set before anything imports gRPC (it reads this once, at import; this conftest is loaded
# first). The tests fork servers (PostgreSQL, NATS, services) from threads while gRPC's own
# threads are busy; gRPC core's fork handlers then ran in the forked child and crashed it now
# and then (SIGSEGV before exec). Nothing here forks a process that goes on using gRPC.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from _pytest.terminal import TerminalReporter
from nats.aio.client import Client

import nats
from audit.server.repository import AuditRepository
from devtools.databases import provision_databases
from devtools.dev_secrets import AuditKeys, NatsKeys, make_audit_keys, make_nats_keys
from devtools.nats_stack import start_nats
from devtools.stack import AUDIT_DATABASE, EmbeddedNats, EmbeddedPostgres
from user.server.signing_keys import new_signing_key_pem

# What the session learned about its servers, for the closing summary.
_SESSION_FACTS: dict[str, str] = {}


def audit_storage_mode(dsn: str) -> str:
    """The audit table's storage as the audit service reports it (asked from a thread of its
    own: a session fixture runs outside the tests' event loop, and must not touch it)."""

    async def ask() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return await AuditRepository(conn).storage_mode()
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, ask()).result(timeout=30)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    for name, fact in _SESSION_FACTS.items():
        terminalreporter.write_line(f"{name}: {fact}")


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A scratch folder for the session's servers (outside pytest's root-only tmp)."""
    with tempfile.TemporaryDirectory(prefix="gotemp-test-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[EmbeddedPostgres]:
    """PostgreSQL with the services' databases provisioned (roles, migrations), as compose
    makes them; the services connect as their runtime roles (devtools.databases)."""
    server = EmbeddedPostgres(stack_dir / "pg", durable=False).start()
    provision_databases(server)
    _SESSION_FACTS["audit table"] = audit_storage_mode(server.dsn(AUDIT_DATABASE))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_keys(stack_dir: Path) -> NatsKeys:
    """nkeys made for this session: the admin's and one per service (nats/nats.conf's users)."""
    return make_nats_keys(stack_dir / "nats-keys")


@pytest.fixture(scope="session")
def nats_server(stack_dir: Path, nats_keys: NatsKeys) -> Iterator[EmbeddedNats]:
    """nats-server with JetStream and the repository's configuration, provisioned with the
    admin key (the AUDIT stream and the audit consumer)."""
    server = start_nats(stack_dir / "nats", nats_keys)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jwt_key() -> str:
    """A token signing key (Ed25519, PEM) made for this session."""
    return new_signing_key_pem("token signing key of a test session")


@pytest.fixture(scope="session")
def jwt_key_file(stack_dir: Path, jwt_key: str) -> Path:
    """The session's token signing key as a file (JWT_PRIVATE_KEY_FILE)."""
    path = stack_dir / "jwt-signing-key.pem"
    path.write_text(jwt_key)
    return path


@pytest.fixture(scope="session")
def audit_keys(stack_dir: Path) -> AuditKeys:
    """Audit event keys made for this session: one per producer, and the audit service's list."""
    return make_audit_keys(stack_dir / "audit-keys")


@pytest.fixture
async def nats_client(nats_server: EmbeddedNats, nats_keys: NatsKeys) -> AsyncIterator[Client]:
    """A NATS client with the admin credential, for observing what services publish."""
    client = await nats.connect(
        f"nats://{nats_server.address}", **nats_keys.access("admin").connect_options()
    )
    yield client
    await client.drain()
