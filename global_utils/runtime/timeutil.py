"""Conversions between google.protobuf.Timestamp and aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

# The range google.protobuf.Timestamp defines: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimestampOutOfRange(ValueError):
    """A Timestamp outside the range protobuf (and the database) can represent."""


def is_set(message: Message, field: str) -> bool:
    """Whether a message-typed field was given (HasField, tolerant of non-message fields)."""
    try:
        return message.HasField(field)
    except ValueError:
        return False


def to_datetime(ts: Timestamp) -> datetime:
    """An aware UTC datetime for ts; raises TimestampOutOfRange outside the valid range."""
    if not MIN_SECONDS <= ts.seconds <= MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        raise TimestampOutOfRange(f"{ts.seconds}s {ts.nanos}ns")
    return ts.ToDatetime(tzinfo=UTC)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp for an aware datetime (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime: times are always stored with a zone")
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def now() -> datetime:
    return datetime.now(UTC)
