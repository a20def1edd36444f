"""Whether a caller's token still counts: their stored user exists, may log in now, and still
has the role the token was issued with."""

from __future__ import annotations

from global_errors import MessageKey, Unauthenticated
from global_utils.identity.principal import Principal
from global_utils.runtime.timeutil import now
from user.server.models import Standing
from user.server.unit_of_work import UserStorage


def caller_id(principal: Principal) -> int:
    # Sessions.verify_signature let only decimal ids through
    return int(principal.user_id)


def require_may_log_in(standing: Standing | None, principal: Principal) -> None:
    """A token counts only while its user exists and may log in, with the role it names (a
    demoted admin's token is refused at once, here as by every verifier), and was not revoked
    since it was issued (the stored time: every instance of the service refuses it at once)."""
    if (
        standing is None
        or not standing.may_log_in(now())
        or standing.role != principal.role
        or standing.revoked(principal.issued_at)
    ):
        raise Unauthenticated(MessageKey.TOKEN_INVALID)


async def require_standing(storage: UserStorage, principal: Principal) -> None:
    """Unauthenticated unless principal's user exists and may log in (one read)."""
    async with storage.reading() as users:
        standing = await users.standing(caller_id(principal))
    require_may_log_in(standing, principal)
