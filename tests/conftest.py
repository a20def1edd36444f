"""Session fixtures: a real PostgreSQL and a real NATS on free loopback ports."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from devtools.stack import EmbeddedNats, EmbeddedPostgres


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A scratch folder for the session's servers (outside pytest's root-only tmp)."""
    with tempfile.TemporaryDirectory(prefix="gotemp-test-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[EmbeddedPostgres]:
    """PostgreSQL with the project's init scripts applied."""
    server = EmbeddedPostgres(stack_dir / "pg", durable=False).start()
    server.apply_all_init_scripts()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(stack_dir: Path) -> Iterator[EmbeddedNats]:
    """nats-server with JetStream."""
    server = EmbeddedNats(stack_dir / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jwt_key() -> str:
    """A signing key made for this session."""
    return secrets.token_hex(32)


@pytest.fixture
async def nats_client(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    """A plain NATS client for observing what services publish."""
    client = await nats.connect(f"nats://{nats_server.address}")
    yield client
    await client.drain()
