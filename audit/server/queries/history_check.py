"""VerifyAuditHistory's use case: tamper evidence of the stored history (kept apart from the
read rules in service.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from audit.server.models import HistoryCheck
from audit.server.repository import AuditRepository
from global_errors import Failure, MessageKey, ValidationFailed
from global_utils.data.database import Database
from global_utils.identity.principal import Principal
from global_utils.identity.roles import require_admin

# An unbounded end of the range.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


class HistoryChecker:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def verify(
        self,
        caller: Principal,
        from_time: datetime | None,
        thru_time: datetime | None,
        invalid: list[Failure] | None = None,
    ) -> HistoryCheck:
        """Checks the stored rows of [from_time, thru_time) and each chain's last row against
        their hashes, in one snapshot. Admins only: it reads every service's history."""
        require_admin(caller, "verify the audit history")
        failures = list(invalid or [])
        if from_time and thru_time and thru_time <= from_time:
            failures.append(Failure("thru_time", MessageKey.FIELD_OUT_OF_RANGE))
        if failures:
            raise ValidationFailed(failures)
        async with (
            self._db.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await AuditRepository(conn).check_history(
                from_time or _EARLIEST, thru_time or _LATEST
            )
