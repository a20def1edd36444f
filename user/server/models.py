"""User domain models: stored users, write drafts and search queries (no proto types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from global_errors import Failure


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
    invalid: list[Failure] = field(default_factory=list)


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
