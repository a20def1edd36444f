"""The audit history queries."""

from __future__ import annotations

from audit.server.models import AuditQuery, StoredEvent
from audit.server.repository import AuditRepository
from global_errors import Failure, MessageKey, ValidationFailed
from global_utils.db import Database
from global_utils.protoconv import MAX_PAGE_SIZE
from global_utils.validation import check_text

MAX_FILTER_CHARS = 200


def validate_query(query: AuditQuery) -> list[Failure]:
    failures = list(query.invalid)
    for name in ("object_name", "object_id", "service", "action_type", "performed_by"):
        check_text(name, getattr(query, name), MAX_FILTER_CHARS, failures)
    if query.object_id and not query.object_name:
        failures.append(Failure("object_name", MessageKey.FIELD_REQUIRED))
    if query.from_time and query.thru_time and query.thru_time <= query.from_time:
        failures.append(Failure("thru_time", MessageKey.FIELD_OUT_OF_RANGE))
    if not 1 <= query.limit <= MAX_PAGE_SIZE:
        failures.append(Failure("page_size", MessageKey.FIELD_OUT_OF_RANGE))
    return failures


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
