"""Audit domain models: stored events and history queries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from global_errors import Failure


@dataclass(frozen=True)
class StoredEvent:
    """The query stage's shape of an audit event: a row of the audit table as history queries
    read it back (with the time it was stored), before the servicer turns it into the proto's
    AuditRecord."""

    event_id: uuid.UUID
    action_time: datetime
    topic: str
    service: str
    action_func: str
    action_type: str
    object_name: str
    object_id: str
    performed_by: str
    recorded_time: datetime
    object_detail: bytes
    payload_type: str
    trace_id: str | None = None  # the change's trace, when it was traced


@dataclass
class AuditQuery:
    """Equality filters (empty = any), a time range [from, thru), newest first, keyset paging."""

    object_name: str = ""
    object_id: str = ""
    service: str = ""
    action_type: str = ""
    performed_by: str = ""
    from_time: datetime | None = None
    thru_time: datetime | None = None
    limit: int = 200
    # Continue after this (action_time, event_id), in newest-first order.
    before: tuple[datetime, uuid.UUID] | None = None
    invalid: list[Failure] = field(default_factory=list)


@dataclass(frozen=True)
class ChainBreak:
    """The first stored row that does not match its chain (event_id None: the row is gone)."""

    event_id: uuid.UUID | None
    action_time: datetime | None
    chain_id: int | None
    chain_seq: int | None
    reason: str


@dataclass(frozen=True)
class HistoryCheck:
    """What a walk of the history found: rows checked, rows stored before chaining began,
    and the first row that does not match (None: the history verifies)."""

    rows_checked: int
    rows_unchained: int
    first_break: ChainBreak | None
