"""Rules for audit history queries (pure functions, no I/O)."""

from __future__ import annotations

from audit.server.models import AuditQuery
from global_errors import Failure, MessageKey
from global_utils.rules.validation import MAX_PAGE_SIZE, check_text

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
