"""Who may do what with promotions: members read; every write is admin-only (users' company and
promotions' customer_id have no mapping to build an owner rule on)."""

from __future__ import annotations

from global_utils.identity.principal import Principal
from global_utils.identity.roles import require_admin


def check_promotion_write(principal: Principal, action: str) -> None:
    require_admin(principal, f"{action} promotions")
