"""The audit hash chain's row encodings: version 2 as documented, version 1 (rows stored by the
first release) still matching, and text that could shift fields never matching."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.server.events.chain import GENESIS, chained, row_hash_v1, stored_row_matches
from audit.server.events.wire import ReceivedEvent
from global_utils.events.audit_event import ActionType

ACTION = datetime(2026, 11, 30, 3, 0, 0, 123456, tzinfo=UTC)
RECORDED = datetime(2026, 11, 30, 3, 0, 1, 5, tzinfo=UTC)
EVENT = ReceivedEvent(
    "00000000-0000-4000-8000-000000000001",
    ACTION,
    "Audit",
    "user",
    "AfterUpdateUser",
    ActionType.UPDATE,
    "user",
    "42",
    "7",
    b"\x08\x2a\n",
    "user.User",
)


def stored(event: ReceivedEvent, chain_id: int, seq: int, chain_hash: bytes) -> dict[str, Any]:
    """The row as the audit table gives it back (its column names)."""
    return {
        "eventid": event.event_id,
        "actiontime": event.action_time,
        "topic": event.topic,
        "service": event.service,
        "actionfunc": event.action_func,
        "actiontype": event.action_type.value,
        "objectname": event.object_name,
        "objectid": event.object_id,
        "performedby": event.performed_by,
        "recordedtime": RECORDED,
        "objectdetail": event.payload,
        "payloadtype": event.payload_type,
        "chainid": chain_id,
        "chainseq": seq,
        "chainhash": chain_hash,
    }


def test_rows_are_chained_with_the_documented_version_2_encoding() -> None:
    records, seq, last = chained([EVENT, EVENT._replace(object_id="43")], 3, 7, GENESIS, RECORDED)
    micros = 1_796_007_600_123_456  # 2026-11-30T03:00:00.123456Z
    text = (
        f"3\n8\n{EVENT.event_id}\n{micros}\nAudit\nuser\nAfterUpdateUser\nupdate\nuser\n42\n7\n"
        f"{micros + 1_000_000 - 123_451}\nuser.User\n"
    )
    first = hashlib.sha256(
        b"gotemp-audit-chain-v2\n" + GENESIS + text.encode() + b"+" + EVENT.payload
    ).digest()
    assert records[0] == (*EVENT, 3, 8, first)
    assert seq == 9 and records[1][-1] == last and records[1][-2] == 9
    assert stored_row_matches(stored(EVENT, 3, 8, first), GENESIS)


def test_a_null_detail_is_told_apart_from_an_empty_one() -> None:
    empty = chained([EVENT._replace(payload=b"")], 1, 0, GENESIS, RECORDED)[2]
    row = stored(EVENT, 1, 1, empty)
    assert stored_row_matches({**row, "objectdetail": b""}, GENESIS)
    assert not stored_row_matches({**row, "objectdetail": None}, GENESIS)


def test_rows_of_the_first_release_still_match() -> None:
    values = stored(EVENT, 2, 5, b"")
    v1 = row_hash_v1(
        GENESIS,
        2,
        5,
        EVENT.event_id,
        ACTION,
        "Audit",
        "user",
        "AfterUpdateUser",
        "update",
        "user",
        "42",
        "7",
        RECORDED,
        EVENT.payload,
        "user.User",
    )
    assert stored_row_matches({**values, "chainhash": v1}, GENESIS)
    assert not stored_row_matches({**values, "chainhash": v1, "performedby": "8"}, GENESIS)
    assert not stored_row_matches({**values, "chainhash": v1}, bytes([1]) * 32)


def test_an_edit_moving_text_across_fields_never_matches() -> None:
    """A newline in a stored text value could shift field boundaries in the joined encoding;
    such a row has more newlines than fields and matches no hash."""
    with pytest.raises(ValueError, match="newline"):
        chained([EVENT._replace(action_func="After\nUpdateUser")], 1, 0, GENESIS, RECORDED)
    row = stored(EVENT, 1, 1, chained([EVENT], 1, 0, GENESIS, RECORDED)[2])
    assert stored_row_matches(row, GENESIS)
    shifted = {**row, "service": "user\nAfterUpdateUser", "actionfunc": ""}
    assert not stored_row_matches(shifted, GENESIS)
