"""PostgreSQL access: a pool that connects in the background with backoff, and a unit of work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import asyncpg

from global_errors import MessageKey, Unavailable
from global_utils.audit import AuditEmitter, AuditEvent
from global_utils.backoff import Backoff
from global_utils.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# Errors that mean "the database cannot be reached", not "the query is wrong".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset without a round trip. asyncpg still rolls back any open transaction and
    drops listeners on release; the services set no session state (no SET, no advisory locks,
    LISTEN only on dedicated connections), so its RESET ALL query would be pure cost."""


def unavailable() -> Unavailable:
    return Unavailable(MessageKey.DATABASE_UNAVAILABLE)


class Database:
    """An asyncpg pool created in the background, retrying until the database answers."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        acquire_timeout: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._acquire_timeout = acquire_timeout
        self._backoff = backoff or Backoff()
        self._pool: asyncpg.Pool | None = None
        self._ready = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None

    @property
    def dsn(self) -> str:
        return self._dsn

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect(), name="db-connect")

    async def stop(self) -> None:
        try:
            await cancel_and_wait(self._connector)
            if self._pool is not None:
                async with asyncio.timeout(5):
                    await self._pool.close()
        except Exception:  # stop() never raises
            logger.exception("closing the database pool failed")
            if self._pool is not None:
                self._pool.terminate()
        finally:
            self._pool = None
            self._ready.clear()

    async def _connect(self) -> None:
        attempts = 0
        reported: set[str] = set()
        for delay in self._backoff.delays():
            attempts += 1
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    command_timeout=30,
                    reset=_keep_session,
                )
                break
            except Exception as exc:
                # Unreachable, still starting, or not created yet (a missing database or
                # role may be on its way from init scripts): keep trying, say each reason once.
                reason = f"{type(exc).__name__}: {exc}"
                if reason not in reported:
                    reported.add(reason)
                    logger.warning("database not ready (%s); retrying", reason)
                await asyncio.sleep(delay)
        if attempts > 1:
            logger.info("database reachable after %d attempts", attempts)
        self._ready.set()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; UNAVAILABLE when the database cannot be reached."""
        if self._pool is None:
            raise unavailable()
        try:
            conn = await self._pool.acquire(timeout=self._acquire_timeout)
        except CONNECTION_ERRORS as exc:
            raise unavailable() from exc
        try:
            yield conn
        except CONNECTION_ERRORS as exc:
            raise unavailable() from exc
        finally:
            await self._pool.release(conn)


class UnitOfWork:
    """One transaction and the audit events it produces; rolls back unless committed."""

    def __init__(self, database: Database, emitter: AuditEmitter) -> None:
        self._database = database
        self._emitter = emitter
        self._events: list[AuditEvent] = []
        self._conn_cm: Any = None
        self._tx: Any = None
        self._conn: asyncpg.Connection | None = None
        self._committed = False

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("unit of work not entered")
        return self._conn

    def emit(self, event: AuditEvent) -> None:
        self._events.append(event)

    async def __aenter__(self) -> UnitOfWork:
        self._conn_cm = self._database.connection()
        self._conn = await self._conn_cm.__aenter__()
        try:
            self._tx = self._conn.transaction()
            await self._tx.start()
        except BaseException as exc:
            await self._conn_cm.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, CONNECTION_ERRORS):
                raise unavailable() from exc
            raise
        return self

    async def commit(self) -> None:
        try:
            await self._emitter.record(self.conn, self._events)
            await self._tx.commit()
        except CONNECTION_ERRORS as exc:
            raise unavailable() from exc
        self._committed = True
        self._emitter.committed(self._events)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if not self._committed and not self._conn.is_closed():  # type: ignore[union-attr]
                await self._tx.rollback()
        except CONNECTION_ERRORS:
            pass  # the transaction died with its connection
        finally:
            await self._conn_cm.__aexit__(exc_type, exc, tb)
        return None
