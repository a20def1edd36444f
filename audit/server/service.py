"""The audit history queries."""

from __future__ import annotations

from audit.server.models import AuditQuery, StoredEvent
from audit.server.repository import AuditRepository
from audit.server.validation import validate_query
from global_errors import ValidationFailed
from global_utils.db import Database


class AuditService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def search(self, query: AuditQuery) -> tuple[list[StoredEvent], bool]:
        failures = validate_query(query)
        if failures:
            raise ValidationFailed(failures)
        async with self._db.connection() as conn:
            return await AuditRepository(conn).search(query)

    async def storage_mode(self) -> str:
        """'TimescaleDB hypertable' or 'ordinary table ...': the audit table as it is."""
        async with self._db.connection() as conn:
            return await AuditRepository(conn).storage_mode()
