"""Who may do what with products: every authenticated caller reads; writes are for the roles
suite.toml names as this service's writers."""

from __future__ import annotations

from global_utils.identity.principal import Principal, Role
from global_utils.identity.roles import refuse

WRITERS = frozenset({Role.ADMIN})


def check_write(principal: Principal, action: str) -> None:
    if principal.role not in WRITERS:
        raise refuse(principal, f"{action} products")
