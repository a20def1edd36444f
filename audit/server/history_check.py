"""VerifyAuditHistory: tamper evidence of the stored history, the use case and its RPC (kept
apart from the read rules in service.py and servicer.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from audit.proto import audit_pb2
from audit.server.models import HistoryCheck
from audit.server.repository import AuditRepository
from audit.server.service import AuditService
from audit.server.servicer import AuditServicer, Context
from global_errors import Failure, MessageKey, ValidationFailed
from global_utils.data.database import Database
from global_utils.grpc.protoconv import read_time
from global_utils.identity.principal import Principal, current_principal
from global_utils.identity.roles import require_admin
from global_utils.runtime.timeutil import to_timestamp

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


def history_check_to_proto(check: HistoryCheck) -> audit_pb2.VerifyResult:
    reply = audit_pb2.VerifyResult(
        intact=check.first_break is None,
        rows_checked=check.rows_checked,
        rows_unchained=check.rows_unchained,
    )
    bad = check.first_break
    if bad is not None:
        reply.reason = bad.reason
        reply.first_bad_chain_id = bad.chain_id or 0
        reply.first_bad_chain_seq = bad.chain_seq or 0
        if bad.event_id is not None:
            reply.first_bad_event_id = str(bad.event_id)
        if bad.action_time is not None:
            reply.first_bad_action_time.CopyFrom(to_timestamp(bad.action_time))
    return reply


class VerifyingAuditServicer(AuditServicer):
    """audit.AuditSrv with VerifyAuditHistory."""

    def __init__(self, service: AuditService, history: HistoryChecker) -> None:
        super().__init__(service)
        self._history = history

    async def VerifyAuditHistory(
        self, request: audit_pb2.VerifyParams, context: Context
    ) -> audit_pb2.VerifyResult:
        invalid: list[Failure] = []
        from_time = read_time(request, "from_time", invalid)
        thru_time = read_time(request, "thru_time", invalid)
        return history_check_to_proto(
            await self._history.verify(current_principal(), from_time, thru_time, invalid)
        )
