"""Where the user use cases reach stored users: a unit of work (uow.users) for changes, a
plain pooled connection for reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from global_utils.audit import AuditEmitter
from global_utils.db import Database, UnitOfWork
from user.server.repository import UserRepository


class UserUnitOfWork(UnitOfWork):
    """One transaction of the user service, with its repository on it: uow.users."""

    users: UserRepository

    def _opened(self, conn: asyncpg.Connection) -> None:
        self.users = UserRepository(conn)


class UserStorage:
    """Hands the use cases their repository: in a unit of work for changes; for reads on a
    pooled connection outside any transaction (a read needs no BEGIN and COMMIT round trips)."""

    def __init__(self, database: Database, emitter: AuditEmitter) -> None:
        self._database = database
        self._emitter = emitter

    def unit_of_work(self) -> UserUnitOfWork:
        return UserUnitOfWork(self._database, self._emitter)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[UserRepository]:
        async with self._database.connection() as conn:
            yield UserRepository(conn)
