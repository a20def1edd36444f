"""Who may read which history: an admin reads every history; a member only events they performed
or events about their own user record (its changes, and their own logins)."""

from __future__ import annotations

from global_utils.identity.principal import Principal, Role
from global_utils.identity.roles import refuse

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
