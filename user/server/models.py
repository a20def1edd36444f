"""User domain models: stored users, write drafts and search queries (no proto types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from global_errors import Failure
from global_utils.identity.principal import Role
from user.server.authorization import AccountTerms


class Standing(NamedTuple):
    """What decides whether a stored user may log in, and so whether their tokens count (a
    token counts only with the role it was issued with: a changed role refuses it)."""

    active: bool
    valid_from: datetime
    valid_thru: datetime
    role: Role = Role.MEMBER
    # Tokens issued before this time are revoked (None: none are).
    tokens_not_before: datetime | None = None

    def may_log_in(self, moment: datetime) -> bool:
        """Active, and moment within the validity dates."""
        return self.active and self.valid_from <= moment <= self.valid_thru

    def revoked(self, issued_at: float) -> bool:
        """Whether a token issued at issued_at (seconds since the epoch) was revoked since."""
        cutoff = self.tokens_not_before
        return cutoff is not None and issued_at < cutoff.timestamp()


@dataclass(frozen=True)
class User:
    """A stored user. The password hash never leaves the repository/service layer."""

    id: int
    firstname: str
    lastname: str
    name: str
    valid_from: datetime
    valid_thru: datetime
    active: bool
    email: str
    company: str
    create_date: datetime
    update_date: datetime
    role: Role = Role.MEMBER

    @property
    def terms(self) -> AccountTerms:
        return AccountTerms(self.active, self.valid_from, self.valid_thru, self.role)

    def may_log_in(self, moment: datetime) -> bool:
        """Active, and moment within its validity dates."""
        return Standing(self.active, self.valid_from, self.valid_thru).may_log_in(moment)


@dataclass
class UserDraft:
    """What a caller asks to store; `invalid` holds failures found while reading the request."""

    id: int = 0
    firstname: str = ""
    lastname: str = ""
    valid_from: datetime | None = None
    valid_thru: datetime | None = None
    active: bool = False
    pwd: str = ""
    email: str = ""
    company: str = ""
    # None: a member on create, the stored role on update.
    role: Role | None = None
    invalid: list[Failure] = field(default_factory=list)

    @property
    def terms(self) -> AccountTerms:
        return AccountTerms(self.active, self.valid_from, self.valid_thru, self.role)


@dataclass
class UserQuery:
    """Equality filters (empty = not filtered), validity date, and keyset paging."""

    id: int = 0
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    company: str = ""
    valid_date: datetime | None = None
    limit: int = 200
    after_id: int = 0
    invalid: list[Failure] = field(default_factory=list)


class LoginOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    # unknown email or wrong password
    BAD_CREDENTIALS = "bad_credentials"
    # the right password of a user who is inactive or outside their validity dates
    ACCOUNT_DISABLED = "account_disabled"
    # refused without checking the password: too many failures for the email
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoginAttempt:
    """What the audit history keeps of a login: never the password."""

    email: str
    user_id: int
    outcome: LoginOutcome
