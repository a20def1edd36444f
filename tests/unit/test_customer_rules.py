"""Customer validation, search building and proto conversion, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from customer.proto import customer_pb2
from customer.server.models import Customer, CustomerDraft, CustomerQuery
from customer.server.repository import build_search
from customer.server.servicer import customer_to_proto, draft_from_proto
from customer.server.validation import (
    MAX_EXTRA_FIELDS_BYTES,
    MAX_NAME_CHARS,
    validate_draft,
    validate_query,
)
from global_errors import Failure, MessageKey

T0 = datetime(2020, 1, 1, tzinfo=UTC)
T1 = datetime(2021, 1, 1, tzinfo=UTC)


def draft(**fields: object) -> CustomerDraft:
    values: dict[str, Any] = {"name": "Acme", "valid_from": T0, "valid_thru": T1}
    values.update(fields)
    return CustomerDraft(**values)


def keyed(failures: list[Failure]) -> list[tuple[str, MessageKey]]:
    return [(f.field, f.key) for f in failures]


def test_valid_draft_passes() -> None:
    assert validate_draft(draft(extra_fields={"tier": 1.0, "tags": ["a"]}), creating=True) == []


def test_required_fields_all_reported() -> None:
    failures = validate_draft(CustomerDraft(), creating=False)
    assert [f.field for f in failures] == ["id", "name", "valid_from", "valid_thru"]


def test_valid_thru_after_valid_from_and_name_limits() -> None:
    failures = validate_draft(draft(name="x" * (MAX_NAME_CHARS + 1), valid_thru=T0), creating=True)
    assert keyed(failures) == [
        ("name", MessageKey.FIELD_TOO_LONG),
        ("valid_thru", MessageKey.VALID_THRU_NOT_AFTER_FROM),
    ]
    assert keyed(validate_draft(draft(name="a\x00b"), creating=True)) == [
        ("name", MessageKey.FIELD_BAD_CHARACTERS)
    ]


def test_extra_fields_must_be_a_small_json_object_without_nul() -> None:
    big = {"blob": "x" * MAX_EXTRA_FIELDS_BYTES}
    assert keyed(validate_draft(draft(extra_fields=big), creating=True)) == [
        ("extra_fields", MessageKey.FIELD_TOO_LONG_BYTES)
    ]
    assert keyed(validate_draft(draft(extra_fields={"n": float("nan")}), creating=True)) == [
        ("extra_fields", MessageKey.FIELD_NOT_NUMBER)
    ]
    assert keyed(validate_draft(draft(extra_fields={"k": ["a\x00"]}), creating=True)) == [
        ("extra_fields", MessageKey.FIELD_BAD_CHARACTERS)
    ]
    assert keyed(validate_draft(draft(extra_fields=["not", "an", "object"]), creating=True)) == [
        ("extra_fields", MessageKey.FIELD_NOT_ALLOWED)
    ]


def test_query_rules() -> None:
    assert validate_query(CustomerQuery()) == []
    assert keyed(validate_query(CustomerQuery(id=-1, limit=0))) == [
        ("id", MessageKey.FIELD_NOT_POSITIVE),
        ("page_size", MessageKey.FIELD_OUT_OF_RANGE),
    ]


def test_search_sql_takes_values_as_parameters_only() -> None:
    sql, args = build_search(CustomerQuery(name="x'; DROP TABLE customer; --", valid_date=T0))
    assert "DROP" not in sql
    assert args == ["x'; DROP TABLE customer; --", T0, 201]
    assert sql.endswith("ORDER BY id LIMIT $3")


def test_proto_round_trip_keeps_every_field() -> None:
    stored = Customer(1, "Acme", T0, T1, {"tier": 2.0, "tags": ["x"]}, T0, T1, "42")
    message = customer_to_proto(stored)
    assert message.modifications.modified_by == "42"
    back = draft_from_proto(message)
    assert (back.id, back.name, back.valid_from, back.valid_thru) == (1, "Acme", T0, T1)
    assert back.extra_fields == {"tier": 2.0, "tags": ["x"]}
    assert back.invalid == []


def test_missing_validity_dates_are_reported_not_defaulted() -> None:
    back = draft_from_proto(customer_pb2.Customer(name="Acme"))
    assert (back.valid_from, back.valid_thru) == (None, None)
    assert [f.field for f in validate_draft(back, creating=True)] == ["valid_from", "valid_thru"]
