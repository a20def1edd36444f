"""Roles and what each may do: every authorization rule of the suite, in one place.

The services' use cases call these checks with the caller (the token's principal); servicers
never compare roles themselves. A refusal is logged here (who, what) and raised as
PermissionDenied, which the error mapping turns into PERMISSION_DENIED in the service's
language. Refusals are not changes: they are not audited."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from global_errors import MessageKey, PermissionDenied

if TYPE_CHECKING:
    from global_utils.auth import Principal

logger = logging.getLogger(__name__)


class Role(StrEnum):
    """Stored with the user (appuser.role) and carried in the token."""

    ADMIN = "admin"
    MEMBER = "member"

    @classmethod
    def parse(cls, value: object) -> Role:
        """value as a role; anything else (a token from before roles) is the least privilege."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.MEMBER


def refuse(principal: Principal, action: str) -> PermissionDenied:
    """The error for principal attempting action, logged once with who it was."""
    logger.warning(
        "permission denied: user %s (role %s) may not %s",
        principal.user_id,
        principal.role,
        action,
    )
    return PermissionDenied(MessageKey.PERMISSION_DENIED)


def require_admin(principal: Principal, action: str) -> None:
    if principal.role is not Role.ADMIN:
        raise refuse(principal, action)


# user service: anyone authenticated reads; creating, deleting and changing other users are
# admin-only; a member may update their own record, but not the terms of their account.


@dataclass(frozen=True)
class AccountTerms:
    """What only an admin may change on a user: whether and when they may log in, and their
    role (None in a request: keep the stored role)."""

    active: bool
    valid_from: datetime | None
    valid_thru: datetime | None
    role: Role | None


def check_user_create(principal: Principal) -> None:
    require_admin(principal, "create users")


def check_user_delete(principal: Principal) -> None:
    require_admin(principal, "delete users")


def check_user_update_target(principal: Principal, user_id: int) -> None:
    """Before anything is read: an admin may update anyone, a member only themselves."""
    if principal.role is not Role.ADMIN and str(user_id) != principal.user_id:
        raise refuse(principal, f"update user {user_id}")


def check_user_update(principal: Principal, stored: AccountTerms, wanted: AccountTerms) -> None:
    """With the stored record: a member's update carries their account terms unchanged (the
    CLIs send whole records) or is refused."""
    if principal.role is Role.ADMIN:
        return
    changed = [
        name
        for name, unchanged in (
            ("active", wanted.active == stored.active),
            ("valid_from", wanted.valid_from == stored.valid_from),
            ("valid_thru", wanted.valid_thru == stored.valid_thru),
            ("role", wanted.role is None or wanted.role == stored.role),
        )
        if not unchanged
    ]
    if changed:
        raise refuse(principal, f"change their own {', '.join(changed)}")


# promotion service: members read; every write is admin-only (users' company and promotions'
# customer_id have no mapping to build an owner rule on).


def check_promotion_write(principal: Principal, action: str) -> None:
    require_admin(principal, f"{action} promotions")


# audit service: an admin reads every history; a member only events they performed or events
# about their own user record (its changes, and their own logins).

OWN_RECORD_OBJECTS = frozenset({"user", "session"})


def audit_performed_by(
    principal: Principal, *, performed_by: str, object_name: str, object_id: str
) -> str:
    """The performed_by filter a history query runs with: the caller's own for a member who
    named neither an actor nor an object (narrowed); refused when a member asks for events
    neither by nor about them."""
    if principal.role is Role.ADMIN or performed_by == principal.user_id:
        return performed_by
    if object_name in OWN_RECORD_OBJECTS and object_id == principal.user_id:
        return performed_by
    if not performed_by and not object_id:
        return principal.user_id
    raise refuse(principal, "read other users' audit history")
