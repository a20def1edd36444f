"""The user service's audit events: a change to a user and a login attempt."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from global_utils.events.audit_event import ActionType, AuditEvent
from user.server.models import LoginAttempt, LoginOutcome, User
from user.server.validation import MAX_EMAIL_CHARS

SERVICE_NAME = "user"
OBJECT_NAME = "user"
# Login events: the session is the object, the user's id its id.
SESSION_OBJECT_NAME = "session"
LOGIN_FUNC = "Auth"


def user_event(
    user: User,
    action: ActionType,
    action_func: str,
    performed_by: str,
    to_record: Callable[[User], Message],
) -> AuditEvent:
    return AuditEvent.for_record(
        service=SERVICE_NAME,
        action_func=action_func,
        action_type=action,
        object_name=OBJECT_NAME,
        object_id=user.id,
        performed_by=performed_by,
        record=to_record(user),
    )


def login_event(
    email: str,
    user: User | None,
    outcome: LoginOutcome,
    to_record: Callable[[LoginAttempt], Message],
) -> AuditEvent:
    """Who (the user's id, empty for an unknown email), when, and the outcome; a failed
    attempt was performed by nobody known."""
    user_id = str(user.id) if user is not None else ""
    succeeded = outcome is LoginOutcome.SUCCEEDED
    return AuditEvent.for_record(
        service=SERVICE_NAME,
        action_func=LOGIN_FUNC,
        action_type=ActionType.LOGIN if succeeded else ActionType.LOGIN_FAILED,
        object_name=SESSION_OBJECT_NAME,
        object_id=user_id,
        performed_by=user_id if succeeded else "",
        record=to_record(LoginAttempt(email[:MAX_EMAIL_CHARS], user.id if user else 0, outcome)),
    )
