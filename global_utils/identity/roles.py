"""Refusing what a role may not do: the checks every service's own rules are built from.

The services' use cases call their authorization rules (each service's `authorization`
module) with the caller (the token's principal); servicers never compare roles themselves. A
refusal is logged here (who, what) and raised as PermissionDenied, which the error mapping
turns into PERMISSION_DENIED in the service's language. Refusals are not changes: they are not
audited."""

from __future__ import annotations

import logging

from global_errors import MessageKey, PermissionDenied
from global_utils.identity.principal import Principal, Role

logger = logging.getLogger(__name__)


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
