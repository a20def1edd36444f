"""Rule helpers every service's validation uses; the check_* ones append failures instead of
raising."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from global_errors import FailedPrecondition, Failure, MessageKey, NotFound, ValidationFailed

# Control characters other than tab.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f]")
# The most rows one page of a listing holds (also the page a page_size of 0 gets).
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Refusal:
    """A rule that forbids an operation on a record, written once for both paths: the real
    operation raises `error`; its dry run (Before*) reports `failure()`, on `field`."""

    field: str
    error: NotFound | FailedPrecondition

    def failure(self) -> Failure:
        return Failure(self.field, self.error.key, dict(self.error.params))


def id_failures(record_id: int) -> list[Failure]:
    """What is wrong with a record id given to get or delete (it must be positive)."""
    return [] if record_id > 0 else [Failure("id", MessageKey.FIELD_NOT_POSITIVE)]


def require_valid_id(record_id: int) -> None:
    """Raises ValidationFailed (INVALID_ARGUMENT) unless record_id is positive."""
    if failures := id_failures(record_id):
        raise ValidationFailed(failures)


def check_page_size(limit: int, failures: list[Failure]) -> None:
    """A page holds 1 to MAX_PAGE_SIZE rows."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        failures.append(Failure("page_size", MessageKey.FIELD_OUT_OF_RANGE))


def check_required(name: str, value: object, failures: list[Failure]) -> None:
    """A missing value: None, an empty/blank string, or a zero id."""
    if value is None or (isinstance(value, str) and not value.strip()) or value == 0:
        failures.append(Failure(name, MessageKey.FIELD_REQUIRED))


def check_text(name: str, value: str, max_chars: int, failures: list[Failure]) -> None:
    """Length limit and no control characters (PostgreSQL text cannot even hold NUL)."""
    if len(value) > max_chars:
        failures.append(Failure(name, MessageKey.FIELD_TOO_LONG, {"max": max_chars}))
    elif _CONTROL_CHARACTERS.search(value):
        failures.append(Failure(name, MessageKey.FIELD_BAD_CHARACTERS))


def check_finite(name: str, value: float, failures: list[Failure]) -> bool:
    if not math.isfinite(value):
        failures.append(Failure(name, MessageKey.FIELD_NOT_NUMBER))
        return False
    return True


def check_validity_range(
    valid_from: datetime | None,
    valid_thru: datetime | None,
    invalid: list[Failure],
    failures: list[Failure],
) -> None:
    """valid_from and valid_thru required (unless already reported) and thru after from."""
    if not any(f.field == "valid_from" for f in invalid):
        check_required("valid_from", valid_from, failures)
    if not any(f.field == "valid_thru" for f in invalid):
        check_required("valid_thru", valid_thru, failures)
    if valid_from and valid_thru and valid_thru <= valid_from:
        failures.append(Failure("valid_thru", MessageKey.VALID_THRU_NOT_AFTER_FROM))


def json_text(value: dict[str, Any]) -> str:
    """value as the compact JSON a jsonb column stores; ValueError for NaN or infinities."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_json_object(name: str, value: object, max_bytes: int, failures: list[Failure]) -> None:
    """A free-form JSON object (jsonb): an object, finite numbers only, no NUL character (jsonb
    cannot hold one), at most max_bytes as UTF-8 JSON."""
    if not isinstance(value, dict):
        failures.append(Failure(name, MessageKey.FIELD_NOT_ALLOWED))
        return
    try:
        text = json_text(value)
    except ValueError:
        failures.append(Failure(name, MessageKey.FIELD_NOT_NUMBER))
        return
    if len(text.encode()) > max_bytes:
        failures.append(Failure(name, MessageKey.FIELD_TOO_LONG_BYTES, {"max": max_bytes}))
    elif _holds_nul(value):
        failures.append(Failure(name, MessageKey.FIELD_BAD_CHARACTERS))


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
