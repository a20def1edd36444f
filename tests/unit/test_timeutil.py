"""Timestamp <-> aware datetime conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from global_utils.runtime.timeutil import (
    MAX_SECONDS,
    MIN_SECONDS,
    TimestampOutOfRange,
    to_datetime,
    to_timestamp,
)


def test_round_trip_keeps_microseconds_and_zone() -> None:
    value = datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=UTC)
    back = to_datetime(to_timestamp(value))
    assert back == value and back.tzinfo is not None


def test_other_zones_convert_to_the_same_instant() -> None:
    value = datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert to_datetime(to_timestamp(value)) == datetime(2024, 1, 1, 0, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        to_timestamp(datetime(2024, 1, 1))


def test_none_stays_none() -> None:
    assert to_timestamp(None) is None


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(MAX_SECONDS + 1, 0), (MIN_SECONDS - 1, 0), (0, -1), (0, 1_000_000_000), (2**62, 0)],
)
def test_out_of_range_timestamps_raise(seconds: int, nanos: int) -> None:
    with pytest.raises(TimestampOutOfRange):
        to_datetime(Timestamp(seconds=seconds, nanos=nanos))


def test_range_edges_are_accepted() -> None:
    assert to_datetime(Timestamp(seconds=MIN_SECONDS)).year == 1
    assert to_datetime(Timestamp(seconds=MAX_SECONDS)).year == 9999


def test_times_before_1970_convert_exactly() -> None:
    value = datetime(1901, 12, 13, 20, 45, 52, 250000, tzinfo=UTC)
    ts = to_timestamp(value)
    assert ts.seconds < 0 and 0 <= ts.nanos < 1_000_000_000
    assert to_datetime(ts) == value
    assert ts == Timestamp(seconds=-2147483648, nanos=250_000_000)
