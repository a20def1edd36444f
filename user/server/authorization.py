"""Who may do what with users: anyone authenticated reads; creating, deleting and changing other
users are admin-only; a member may update their own record, but not the terms of their account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from global_utils.identity.principal import Principal, Role
from global_utils.identity.roles import refuse, require_admin


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
