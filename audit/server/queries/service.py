"""The audit history queries."""

from __future__ import annotations

from audit.server.models import AuditQuery, StoredEvent
from audit.server.queries import authorization
from audit.server.queries.validation import validate_query
from audit.server.repository import AuditRepository
from global_errors import ValidationFailed
from global_utils.data.database import Database
from global_utils.identity.principal import Principal


class AuditService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def search(self, query: AuditQuery, reader: Principal) -> tuple[list[StoredEvent], bool]:
        failures = validate_query(query)
        if failures:
            raise ValidationFailed(failures)
        # A member's query is narrowed to, or refused outside, what they may read.
        query.performed_by = authorization.audit_performed_by(
            reader,
            performed_by=query.performed_by,
            object_name=query.object_name,
            object_id=query.object_id,
        )
        async with self._db.connection() as conn:
            return await AuditRepository(conn).search(query)

    async def storage_mode(self) -> str:
        """'TimescaleDB hypertable' or 'ordinary table ...': the audit table as it is."""
        async with self._db.connection() as conn:
            return await AuditRepository(conn).storage_mode()
