"""A token counts while its stored user may log in with the token's role, and was not revoked
after the token was issued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from global_errors import Unauthenticated
from global_utils.identity.principal import Principal, Role
from user.server.models import Standing
from user.server.standing import require_may_log_in

NOW = datetime.now(UTC)
ISSUED = NOW - timedelta(minutes=5)


def standing(not_before: datetime | None) -> Standing:
    return Standing(True, NOW - timedelta(days=1), NOW + timedelta(days=1), Role.MEMBER, not_before)


def principal() -> Principal:
    return Principal(user_id="42", role=Role.MEMBER, issued_at=ISSUED.timestamp())


@pytest.mark.parametrize(
    "not_before", [None, ISSUED - timedelta(seconds=1), ISSUED], ids=["none", "before", "same"]
)
def test_a_token_issued_at_or_after_its_users_revocation_counts(
    not_before: datetime | None,
) -> None:
    require_may_log_in(standing(not_before), principal())


def test_a_token_issued_before_its_users_revocation_is_refused_though_they_may_log_in() -> None:
    revoked = standing(ISSUED + timedelta(microseconds=1))
    assert revoked.may_log_in(NOW)
    with pytest.raises(Unauthenticated):
        require_may_log_in(revoked, principal())
