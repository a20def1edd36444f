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
