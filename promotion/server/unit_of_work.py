"""Where the promotion use cases reach stored promotions: a unit of work (uow.promotions) for
changes, a plain pooled connection for reads."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import asyncpg

from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import AuditEmitter
from promotion.server.repository import PromotionRepository


class PromotionUnitOfWork(UnitOfWork):
    """One transaction of the promotion service, with its repository on it: uow.promotions."""

    promotions: PromotionRepository

    def _opened(self, conn: asyncpg.Connection) -> None:
        self.promotions = PromotionRepository(conn)


class PromotionStorage:
    """Hands the use cases their repository: in a unit of work for changes; for reads on a
    pooled connection outside any transaction (a read needs no BEGIN and COMMIT round trips)."""

    def __init__(self, database: Database, emitter: AuditEmitter) -> None:
        self._database = database
        self._emitter = emitter

    def unit_of_work(self) -> PromotionUnitOfWork:
        return PromotionUnitOfWork(self._database, self._emitter)

    def reading(self) -> AbstractAsyncContextManager[PromotionRepository]:
        return self._database.reading(PromotionRepository)
