"""Helpers servicers share to turn request messages into domain values, collecting failures."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message

from global_errors import Failure, Language, MessageKey
from global_utils.rules.validation import MAX_PAGE_SIZE
from global_utils.runtime.timeutil import TimestampOutOfRange, is_set, to_datetime

T = TypeVar("T")


def read_time(message: Message, field: str, failures: list[Failure]) -> datetime | None:
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


def encode_page_token(kind: str, position: object) -> str:
    """An opaque token for "continue after position" in a listing of kind."""
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode()


def decode_page_token(
    kind: str, token: str, failures: list[Failure], parse: Callable[[str], T]
) -> T | None:
    """The position a token of kind stands for (parse raises ValueError when it is not one);
    None for an empty token (the first page) or, with a failure added, for a bad one."""
    if not token:
        return None
    try:
        found, _, text = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if found == kind:
            return parse(text)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    failures.append(Failure("page_token", MessageKey.PAGE_TOKEN_INVALID))
    return None


def parse_id(text: str) -> int:
    """A record id as page position: a positive 64-bit integer."""
    if not text.isdigit() or int(text) >= 2**63:
        raise ValueError(text)
    return int(text)


def failure_texts(failures: list[Failure], language: Language) -> list[str]:
    return [f.text(language) for f in failures]
