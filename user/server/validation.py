"""The user rules: pure functions returning every failure, never only the first."""

from __future__ import annotations

from global_errors import FailedPrecondition, Failure, MessageKey, NotFound
from global_utils.rules.validation import (
    Refusal,
    check_page_size,
    check_required,
    check_text,
    check_validity_range,
)
from user.server.models import User, UserDraft, UserQuery

MAX_NAME_CHARS = 100
MAX_EMAIL_CHARS = 254
MAX_COMPANY_CHARS = 200
# bcrypt only looks at the first 72 bytes; a longer password would be silently truncated.
MAX_PASSWORD_BYTES = 72


def looks_like_email(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain and not domain.startswith(".") and " " not in value)


def validate_draft(draft: UserDraft, *, creating: bool) -> list[Failure]:
    """Every rule a user must satisfy to be created (creating=True) or updated."""
    failures = list(draft.invalid)
    if not creating and draft.id <= 0:
        failures.append(Failure("id", MessageKey.FIELD_REQUIRED))
    for name, value, max_chars in (
        ("firstname", draft.firstname, MAX_NAME_CHARS),
        ("lastname", draft.lastname, MAX_NAME_CHARS),
        ("email", draft.email, MAX_EMAIL_CHARS),
    ):
        check_required(name, value, failures)
        check_text(name, value, max_chars, failures)
    check_text("company", draft.company, MAX_COMPANY_CHARS, failures)
    if (
        draft.email.strip()
        and len(draft.email) <= MAX_EMAIL_CHARS
        and not looks_like_email(draft.email)
    ):
        failures.append(Failure("email", MessageKey.EMAIL_INVALID))
    if creating:
        check_required("pwd", draft.pwd, failures)
    if len(draft.pwd.encode()) > MAX_PASSWORD_BYTES:
        failures.append(
            Failure("pwd", MessageKey.FIELD_TOO_LONG_BYTES, {"max": MAX_PASSWORD_BYTES})
        )
    elif "\x00" in draft.pwd:
        failures.append(Failure("pwd", MessageKey.FIELD_BAD_CHARACTERS))
    check_validity_range(draft.valid_from, draft.valid_thru, draft.invalid, failures)
    return failures


def validate_query(query: UserQuery) -> list[Failure]:
    failures = list(query.invalid)
    if query.id < 0:
        failures.append(Failure("id", MessageKey.FIELD_NOT_POSITIVE))
    for name, value, max_chars in (
        ("firstname", query.firstname, MAX_NAME_CHARS),
        ("lastname", query.lastname, MAX_NAME_CHARS),
        ("email", query.email, MAX_EMAIL_CHARS),
        ("company", query.company, MAX_COMPANY_CHARS),
    ):
        check_text(name, value, max_chars, failures)
    check_page_size(query.limit, failures)
    return failures


def not_found(user_id: int) -> NotFound:
    return NotFound(MessageKey.RECORD_NOT_FOUND, entity="user", id=user_id)


def deletable(user_id: int, user: User | None) -> User | Refusal:
    """The user found for user_id if a delete may remove it, else why not (DeleteUser and
    BeforeDeleteUser alike): it does not exist, or it is active."""
    if user is None:
        return Refusal("id", not_found(user_id))
    if user.active:
        return Refusal(
            "active", FailedPrecondition(MessageKey.USER_ACTIVE_CANNOT_DELETE, id=user_id)
        )
    return user
