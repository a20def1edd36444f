"""PostgreSQL access: a pool that connects in the background with backoff, and a unit of work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import asyncpg

from global_errors import MessageKey, Unavailable
from global_utils.events.audit_event import AuditEmitter, AuditEvent
from global_utils.runtime.backoff import Backoff
from global_utils.runtime.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

R = TypeVar("R")

# Errors that mean "the database cannot be reached", not "the query is wrong".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)
# asyncpg's complaints about a connection that has ended or is ending: a call through the proxy
# the pool detached, a statement on a closed socket (InterfaceError), or a protocol knocked out
# of step by a message nobody asked for (InternalClientError) — in practice the server's FATAL
# goodbye when it ends the session, read before the socket closes.
_ENDED = (asyncpg.InterfaceError, asyncpg.InternalClientError)
# What the statement before a rollback may have raised without leaving the connection in a
# known state: the unit of work closes such a connection instead of talking to it again.
_UNSETTLED = (*CONNECTION_ERRORS, *_ENDED, asyncio.CancelledError)
# A rollback waits at most this long (a stalled server must not hold an error on its way out).
ROLLBACK_TIMEOUT_SECONDS = 2.0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset without a round trip. asyncpg still rolls back any open transaction and
    drops listeners on release; the services set no session state (no SET, no advisory locks,
    LISTEN only on dedicated connections), so its RESET ALL query would be pure cost."""


def unavailable() -> Unavailable:
    return Unavailable(MessageKey.DATABASE_UNAVAILABLE)


def outcome_unknown() -> Unavailable:
    return Unavailable(MessageKey.COMMIT_OUTCOME_UNKNOWN)


class PooledConnection(asyncpg.Connection):
    """The pool's connection class. The pool lends a proxy and detaches it when the connection
    ends (the server went away, or it was terminated), after which every call through the proxy
    raises InterfaceError; the connection itself still answers is_closed() and terminate(), so
    cleanup asks it instead of the proxy."""

    def unproxied(self) -> PooledConnection:
        return self


@dataclass(frozen=True)
class PoolUse:
    """How the pool's connections are used right now."""

    size: int  # connections open
    idle: int
    max_size: int

    @property
    def in_use(self) -> int:
        return self.size - self.idle


class Database:
    """An asyncpg pool created in the background, retrying until the database answers."""

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        min_size: int = 2,
        max_size: int = 10,
        acquire_timeout: float = 5.0,
        backoff: Backoff | None = None,
        connection_class: type[PooledConnection] = PooledConnection,
    ) -> None:
        self._dsn = dsn
        # a subclass when statements are traced (global_utils.observability.sql_tracing)
        self._connection_class = connection_class
        # Kept apart from the URL (which log lines may show); sslmode/sslrootcert stay in it.
        self._password = password
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

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own (not pooled), with the pool's credentials."""
        return await asyncpg.connect(self._dsn, password=self._password)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def pool_use(self) -> PoolUse | None:
        """The pool's counts (in memory, no query); None before it exists."""
        pool = self._pool
        if pool is None:
            return None
        return PoolUse(pool.get_size(), pool.get_idle_size(), pool.get_max_size())

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
                    password=self._password,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    command_timeout=30,
                    reset=_keep_session,
                    connection_class=self._connection_class,
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

    def connection(self) -> PooledUse[asyncpg.Connection]:
        """A pooled connection; UNAVAILABLE when the database cannot be reached or the
        connection ends while in use."""
        return PooledUse(self._pool, self._acquire_timeout, _as_is)

    def reading(self, make: Callable[[asyncpg.Connection], R]) -> PooledUse[R]:
        """What make builds on a pooled connection (a repository), outside any transaction;
        the connection as connection() gives it."""
        return PooledUse(self._pool, self._acquire_timeout, make)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in a transaction, committed when the block ends without an error
        and rolled back otherwise (a unit of work without audit events)."""
        async with UnitOfWork(self, _NO_AUDIT) as uow:
            yield uow.conn
            await uow.commit()


def _as_is(conn: asyncpg.Connection) -> asyncpg.Connection:
    return conn


class PooledUse(Generic[R]):
    """One use of a pooled connection (Database.connection(), Database.reading()): acquired on
    entry, given back on exit whatever happens; database errors on the way become UNAVAILABLE.
    A class rather than a generator-based context manager: every read goes through one."""

    __slots__ = ("_pool", "_timeout", "_make", "_conn", "_own")

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        timeout: float,
        make: Callable[[asyncpg.Connection], R],
    ) -> None:
        # the pool to give the connection back to, even if stop() runs meanwhile
        self._pool = pool
        self._timeout = timeout
        self._make = make
        self._conn: asyncpg.Connection | None = None
        self._own: PooledConnection | None = None

    async def __aenter__(self) -> R:
        pool = self._pool
        if pool is None:
            raise unavailable()
        try:
            if pool.get_idle_size():
                # A connection is free: taking it does not wait, so no timer (a timeout costs
                # a timer per call, and every read comes here).
                conn = await pool.acquire()
            else:
                conn = await pool.acquire(timeout=self._timeout)
        except (*CONNECTION_ERRORS, asyncpg.InterfaceError) as exc:  # InterfaceError: closing
            raise unavailable() from exc
        self._conn = conn
        # the connection itself: once it has ended, the pool has detached the proxy
        self._own = conn.unproxied()
        return self._make(conn)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool, conn, own = self._pool, self._conn, self._own
        assert pool is not None and conn is not None and own is not None  # entered
        try:
            if exc is None:
                return
            if isinstance(exc, CONNECTION_ERRORS):
                raise unavailable() from exc
            if isinstance(exc, asyncpg.InternalClientError):
                # Unusable from now on whatever caused it; logged, as it hides the asyncpg
                # message.
                logger.warning("database connection out of step with the server (%s); closed", exc)
                own.terminate()
                raise unavailable() from exc
            # Using a connection that has ended means the database went away mid-way; on an
            # open connection it is a bug and stays one.
            if isinstance(exc, asyncpg.InterfaceError) and own.is_closed():
                raise unavailable() from exc
        finally:
            await _release(pool, conn)


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Gives conn back to pool; never raises but for cancellation. A connection asyncpg cannot
    reset it closes itself, and the outcome of the work done on it (an error on its way, or a
    commit) must not be replaced by trouble returning it."""
    try:
        await pool.release(conn)
    except Exception as exc:
        logger.warning("a database connection was closed instead of reused (%r)", exc)


class _State(Enum):
    BEGINNING = "beginning"  # BEGIN sent, no answer yet
    OPEN = "open"
    COMMITTING = "committing"  # COMMIT sent, no answer yet (or none will come)
    COMMITTED = "committed"
    ENDED = "ended"


class UnitOfWork:
    """One transaction and the audit events it produces; rolls back unless committed.

    On the way out nothing may replace the error already on its way, and nothing may touch a
    connection that has ended (the pool has detached its proxy by then). The exits run from an
    AsyncExitStack, last in first out: end the transaction (roll back, or close the connection
    when its state is unknown), then give the connection back (Database.connection(), which
    maps database errors to UNAVAILABLE)."""

    def __init__(self, database: Database, emitter: AuditEmitter) -> None:
        self._database = database
        self._emitter = emitter
        self._events: list[AuditEvent] = []
        self._exits: AsyncExitStack | None = None
        self._conn: asyncpg.Connection | None = None
        self._own: PooledConnection | None = None
        self._tx: Any = None
        self._state = _State.ENDED

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("unit of work not entered")
        return self._conn

    def emit(self, event: AuditEvent) -> None:
        self._events.append(event)

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as exits:
            conn = await exits.enter_async_context(self._database.connection())
            self._conn, self._own, self._tx = conn, conn.unproxied(), conn.transaction()
            self._state = _State.BEGINNING
            exits.push_async_exit(self._end)
            await self._tx.start()
            self._state = _State.OPEN
            self._opened(conn)
            self._exits = exits.pop_all()
        return self

    def _opened(self, conn: asyncpg.Connection) -> None:
        """Called once the transaction is open, with its connection: a service's unit of work
        puts its repositories on it here. Inside the exits, so an error here still ends the
        transaction and gives the connection back."""

    async def commit(self) -> None:
        """Writes the events and commits. UNAVAILABLE if the connection ended before COMMIT
        (nothing applied); UNAVAILABLE saying so if it ended while COMMIT was under way (the
        change and its audit event were applied together or not at all: the outbox keeps
        the audit history true to whichever happened)."""
        if self._state is not _State.OPEN or self._own is None:
            raise RuntimeError("commit outside an open unit of work")
        if self._own.is_closed():
            raise unavailable()  # the server rolled the transaction back with the session
        await self._emitter.record(self.conn, self._events)
        if self._own.is_closed():  # ended between the events' write and now
            raise unavailable()
        self._state = _State.COMMITTING
        try:
            await self._tx.commit()
        except (*CONNECTION_ERRORS, *_ENDED) as exc:
            raise outcome_unknown() from exc
        self._state = _State.COMMITTED
        self._emitter.committed(self._events)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # None, not bool: no exit suppresses an error, and callers' type checks know it.
        exits, self._exits = self._exits, None
        if exits is not None:
            await exits.__aexit__(exc_type, exc, tb)

    async def _end(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Ends the transaction unless committed; never raises but for cancellation."""
        state, self._state = self._state, _State.ENDED
        own = self._own
        if state is _State.COMMITTED or own is None or own.is_closed():
            return False  # done, or the transaction ended with its connection
        if state is _State.OPEN and not isinstance(exc, _UNSETTLED):
            try:
                async with asyncio.timeout(ROLLBACK_TIMEOUT_SECONDS):
                    await self._tx.rollback()
                return False
            except asyncio.CancelledError:
                own.terminate()
                raise
            except Exception as rollback_error:
                logger.warning("rollback failed (%r); closing the connection", rollback_error)
        # A statement (BEGIN, COMMIT) did not finish cleanly: the session's state is unknown and
        # the server may be stalled. Closing the connection ends the transaction on the server
        # (a COMMIT it already received runs to its end either way) without waiting for it.
        own.terminate()
        return False


async def run_changes(
    conn: asyncpg.Connection, changes: Sequence[str], args: Sequence[Any]
) -> None:
    """Runs data-modifying WITH items (AuditEmitter.record's changes) as one statement."""
    if changes:
        await conn.execute(f"WITH {', '.join(changes)} SELECT", *args)


class _NoAudit:
    """An AuditEmitter for transactions that produce no audit events."""

    async def record(
        self,
        conn: asyncpg.Connection,
        events: Sequence[AuditEvent],
        changes: Sequence[str] = (),
        args: Sequence[Any] = (),
    ) -> None:
        await run_changes(conn, changes, args)

    def committed(self, events: Sequence[AuditEvent]) -> None:
        return None


_NO_AUDIT = _NoAudit()
