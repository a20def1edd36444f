"""The user rules as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from global_errors import Failure, MessageKey
from user.server.models import UserDraft, UserQuery
from user.server.validation import validate_draft, validate_query

T0 = datetime(2020, 1, 1, tzinfo=UTC)
T1 = datetime(2021, 1, 1, tzinfo=UTC)


def draft(**fields: object) -> UserDraft:
    values: dict[str, Any] = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@example.com",
        "pwd": "pw",
        "valid_from": T0,
        "valid_thru": T1,
    }
    values.update(fields)
    return UserDraft(**values)


def fields(failures: list[Failure]) -> list[str]:
    return [f.field for f in failures]


def test_valid_draft_passes() -> None:
    assert validate_draft(draft(), creating=True) == []


def test_all_failures_are_collected_not_just_the_first() -> None:
    failures = validate_draft(UserDraft(), creating=True)
    assert fields(failures) == ["firstname", "lastname", "email", "pwd", "valid_from", "valid_thru"]
    assert {f.key for f in failures} == {MessageKey.FIELD_REQUIRED}


def test_whitespace_only_counts_as_missing() -> None:
    assert fields(validate_draft(draft(firstname="   "), creating=True)) == ["firstname"]


def test_valid_thru_must_be_strictly_after_valid_from() -> None:
    same = validate_draft(draft(valid_thru=T0), creating=True)
    assert [(f.field, f.key) for f in same] == [
        ("valid_thru", MessageKey.VALID_THRU_NOT_AFTER_FROM)
    ]
    before = validate_draft(draft(valid_from=T1, valid_thru=T0), creating=True)
    assert fields(before) == ["valid_thru"]


def test_password_required_on_create_only() -> None:
    assert fields(validate_draft(draft(pwd=""), creating=True)) == ["pwd"]
    assert validate_draft(draft(pwd="", id=7), creating=False) == []


def test_update_needs_an_id() -> None:
    assert fields(validate_draft(draft(), creating=False)) == ["id"]


def test_password_limit_is_72_bytes_not_characters() -> None:
    assert validate_draft(draft(pwd="x" * 72), creating=True) == []
    over = validate_draft(draft(pwd="é" * 37), creating=True)  # 74 bytes
    assert [(f.field, f.key) for f in over] == [("pwd", MessageKey.FIELD_TOO_LONG_BYTES)]


def test_email_shape_and_length() -> None:
    for bad in ("plain", "a@b", "@example.com", "a b@example.com", "a@.com"):
        assert fields(validate_draft(draft(email=bad), creating=True)) == ["email"], bad
    too_long = validate_draft(draft(email="a" * 250 + "@x.com"), creating=True)
    assert [f.key for f in too_long] == [MessageKey.FIELD_TOO_LONG]


def test_control_characters_are_rejected() -> None:
    failures = validate_draft(draft(lastname="a\x00b", company="c\x1b"), creating=True)
    assert {(f.field, f.key) for f in failures} == {
        ("lastname", MessageKey.FIELD_BAD_CHARACTERS),
        ("company", MessageKey.FIELD_BAD_CHARACTERS),
    }


def test_conversion_failures_are_kept_and_not_doubled() -> None:
    out_of_range = Failure("valid_from", MessageKey.FIELD_OUT_OF_RANGE)
    failures = validate_draft(draft(valid_from=None, invalid=[out_of_range]), creating=True)
    assert failures == [out_of_range]


def test_query_limits() -> None:
    assert validate_query(UserQuery()) == []
    assert fields(validate_query(UserQuery(id=-1))) == ["id"]
    assert fields(validate_query(UserQuery(limit=0))) == ["page_size"]
    assert fields(validate_query(UserQuery(email="e" * 255))) == ["email"]
