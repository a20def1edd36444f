"""Where the customer use cases reach stored customers: a unit of work (uow.customers) for
changes, a plain pooled connection for reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from customer.server.repository import CustomerRepository
from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import AuditEmitter


class CustomerUnitOfWork(UnitOfWork):
    """One transaction of the customer service, with its repository on it: uow.customers."""

    customers: CustomerRepository

    def _opened(self, conn: asyncpg.Connection) -> None:
        self.customers = CustomerRepository(conn)


class CustomerStorage:
    """Hands the use cases their repository: in a unit of work for changes; for reads on a
    pooled connection outside any transaction (a read needs no BEGIN and COMMIT round trips)."""

    def __init__(self, database: Database, emitter: AuditEmitter) -> None:
        self._database = database
        self._emitter = emitter

    def unit_of_work(self) -> CustomerUnitOfWork:
        return CustomerUnitOfWork(self._database, self._emitter)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[CustomerRepository]:
        async with self._database.connection() as conn:
            yield CustomerRepository(conn)
