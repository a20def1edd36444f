"""Database's pooled uses on a real PostgreSQL: a free connection is handed out at once, a use
waits at most the acquire timeout for one to free up and then answers UNAVAILABLE, and every
use gives its connection back however it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from devtools.stack import EmbeddedPostgres
from global_errors import Unavailable
from global_utils.data.database import Database
from tests.helpers import eventually

ACQUIRE_TIMEOUT = 0.5


@asynccontextmanager
async def pool_of_two(
    postgres: EmbeddedPostgres, acquire_timeout: float
) -> AsyncIterator[Database]:
    """A started Database of two connections that waits acquire_timeout for a free one."""
    database = Database(postgres.dsn(), min_size=2, max_size=2, acquire_timeout=acquire_timeout)
    await database.start()
    try:
        await asyncio.wait_for(database.wait_ready(), 30)
        yield database
    finally:
        await database.stop()


@pytest.fixture
async def small_pool(postgres: EmbeddedPostgres) -> AsyncIterator[Database]:
    """A pool of two that waits ACQUIRE_TIMEOUT for a free connection."""
    async with pool_of_two(postgres, ACQUIRE_TIMEOUT) as database:
        yield database


async def test_an_exhausted_pool_answers_unavailable_after_the_acquire_timeout(
    small_pool: Database,
) -> None:
    async with small_pool.connection() as first, small_pool.connection() as second:
        assert await first.fetchval("SELECT 1") == await second.fetchval("SELECT 1") == 1
        started = time.monotonic()
        with pytest.raises(Unavailable):
            async with small_pool.connection():
                raise AssertionError("a third connection from a pool of two")
        waited = time.monotonic() - started
        assert ACQUIRE_TIMEOUT * 0.9 <= waited < ACQUIRE_TIMEOUT + 5
    # both given back: two uses at once work again, without waiting
    async with small_pool.connection() as first, small_pool.connection() as second:
        assert await first.fetchval("SELECT 2") == await second.fetchval("SELECT 2") == 2


async def test_a_waiting_use_gets_the_connection_another_gives_back(
    postgres: EmbeddedPostgres,
) -> None:
    # a timeout far longer than the wait, so a busy machine cannot turn the wait into a refusal
    async with pool_of_two(postgres, acquire_timeout=30) as small_pool:
        await takes_the_connection_given_back(small_pool)


async def takes_the_connection_given_back(small_pool: Database) -> None:
    release = asyncio.Event()

    async def hold() -> None:
        async with small_pool.connection() as conn:
            await conn.fetchval("SELECT 1")
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]

    async def both_taken() -> bool:
        use = small_pool.pool_use()
        return use is not None and use.in_use == 2

    await eventually(both_taken, what="both connections taken")
    asyncio.get_running_loop().call_later(0.2, release.set)
    async with small_pool.reading(lambda conn: conn) as conn:
        assert await conn.fetchval("SELECT 3") == 3
    await asyncio.gather(*holders)


async def test_a_use_that_fails_gives_its_connection_back(small_pool: Database) -> None:
    for _ in range(3):  # more failures than the pool has connections
        with pytest.raises(ZeroDivisionError):
            async with small_pool.connection() as conn:
                await conn.fetchval("SELECT 1")
                raise ZeroDivisionError
    use = small_pool.pool_use()
    assert use is not None and use.in_use == 0
