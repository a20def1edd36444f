"""Helpers servicers share to turn request messages into domain values, collecting failures."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from global_errors import Failure, Language, MessageKey
from global_utils.timeutil import TimestampOutOfRange, is_set, to_datetime

MAX_PAGE_SIZE = 200


def read_time(message: object, field: str, failures: list[Failure]) -> datetime | None:
    """The datetime in an optional Timestamp field, or None; out of range adds a failure."""
    if not is_set(message, field):
        return None
    try:
        return to_datetime(getattr(message, field))
    except TimestampOutOfRange:
        failures.append(Failure(field, MessageKey.FIELD_OUT_OF_RANGE))
        return None


def page_limit(page_size: int) -> int:
    """0 means the default page; larger than the maximum is capped; negative stays invalid."""
    return MAX_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)


def encode_page_token(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode()


def decode_page_token(kind: str, token: str, failures: list[Failure]) -> int:
    """The id to continue after; an empty token means the first page."""
    if not token:
        return 0
    try:
        found, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if found == kind and value.isdigit() and int(value) < 2**63:
            return int(value)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    failures.append(Failure("page_token", MessageKey.PAGE_TOKEN_INVALID))
    return 0


def failure_texts(failures: list[Failure], language: Language) -> list[str]:
    return [f.text(language) for f in failures]
