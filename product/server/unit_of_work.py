"""Where the product use cases reach stored products: a unit of work (uow.products) for
changes, a plain pooled connection for reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import AuditEmitter
from product.server.repository import ProductRepository


class ProductUnitOfWork(UnitOfWork):
    """One transaction of the product service, with its repository on it: uow.products."""

    products: ProductRepository

    def _opened(self, conn: asyncpg.Connection) -> None:
        self.products = ProductRepository(conn)


class ProductStorage:
    """Hands the use cases their repository: in a unit of work for changes; for reads on a
    pooled connection outside any transaction (a read needs no BEGIN and COMMIT round trips)."""

    def __init__(self, database: Database, emitter: AuditEmitter) -> None:
        self._database = database
        self._emitter = emitter

    def unit_of_work(self) -> ProductUnitOfWork:
        return ProductUnitOfWork(self._database, self._emitter)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[ProductRepository]:
        async with self._database.connection() as conn:
            yield ProductRepository(conn)
