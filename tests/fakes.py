"""In-memory stand-ins that subclass the real repositories, units of work and storages, so the
user and promotion rules run in unit tests without a database.

The fake repositories and units of work override every method the services call and hold no
connection, so they do not call the real constructors (which take one). A fake unit of work
keeps the real one's promise: its changes and audit events count only once committed."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg

from global_errors import AlreadyExists, MessageKey
from global_utils.events.audit_event import AuditEvent
from global_utils.identity.principal import Role
from global_utils.runtime.timeutil import now
from promotion.server.models import Product, Promotion, PromotionDraft, PromotionQuery
from promotion.server.repository import PromotionRepository
from promotion.server.unit_of_work import PromotionStorage, PromotionUnitOfWork
from user.server.models import Standing, User, UserDraft, UserQuery
from user.server.passwords import PasswordHasher
from user.server.repository import (
    LoginLookup,
    LoginThrottle,
    NewRefreshToken,
    RefreshTokens,
    StoredRefreshToken,
    ThrottlePolicy,
    UserRepository,
)
from user.server.revocations import TokenRevocations
from user.server.unit_of_work import UserStorage, UserUnitOfWork

_ids = itertools.count(1_000_001)
DEFAULT_THROTTLE = ThrottlePolicy(5, timedelta(minutes=5))


R = TypeVar("R", User, Promotion)


def _page(rows: list[R], limit: int, after_id: int) -> tuple[list[R], bool]:
    """Keyset paging as the SQL does it: ordered by id, after after_id, at most limit rows and
    whether more remain."""
    rows = sorted((r for r in rows if r.id > after_id), key=lambda r: r.id)
    return rows[:limit], len(rows) > limit


def _on(valid_date: datetime | None, valid_from: datetime, valid_thru: datetime) -> bool:
    return valid_date is None or valid_from <= valid_date <= valid_thru


class FakeUserRepository(UserRepository):
    """Users in a dict, with the table's rules: ids assigned on insert, email unique regardless
    of case, name = firstname + ' ' + lastname."""

    def __init__(self, users: Iterable[tuple[User, str]] = ()) -> None:
        self.rows: dict[int, tuple[User, str]] = {u.id: (u, h) for u, h in users}

    async def get(self, user_id: int, *, for_update: bool = False) -> User | None:
        row = self.rows.get(user_id)
        return row[0] if row else None

    async def standing(self, user_id: int) -> Standing | None:
        row = self.rows.get(user_id)
        if row is None:
            return None
        return Standing(row[0].active, row[0].valid_from, row[0].valid_thru, row[0].role)

    async def get_for(self, user_id: int, caller_id: int) -> tuple[Standing | None, User | None]:
        standing = await self.standing(caller_id)
        return standing, await self.get(user_id) if standing is not None else None

    async def search_for(
        self, query: UserQuery, caller_id: int
    ) -> tuple[Standing | None, list[User], bool]:
        standing = await self.standing(caller_id)
        if standing is None:
            return None, [], False
        return standing, *await self.search(query)

    async def search(self, query: UserQuery) -> tuple[list[User], bool]:
        found = [
            u
            for u, _ in self.rows.values()
            if (not query.id or u.id == query.id)
            and (not query.firstname or u.firstname == query.firstname)
            and (not query.lastname or u.lastname == query.lastname)
            and (not query.email or u.email.lower() == query.email.lower())
            and (not query.company or u.company == query.company)
            and _on(query.valid_date, u.valid_from, u.valid_thru)
        ]
        return _page(found, query.limit, query.after_id)

    async def email_taken(self, email: str, *, except_id: int = 0) -> bool:
        return self._email_used(email, except_id)

    async def credentials(self, email: str) -> tuple[User, str] | None:
        return next(
            ((u, h) for u, h in self.rows.values() if u.email.lower() == email.lower()), None
        )

    async def insert(self, draft: UserDraft, pwd_hash: str) -> User:
        return self._store(next(_ids), draft, pwd_hash, created=now())

    async def update(self, draft: UserDraft, pwd_hash: str | None) -> User | None:
        row = self.rows.get(draft.id)
        if row is None:
            return None
        return self._store(
            draft.id, draft, pwd_hash or row[1], created=row[0].create_date, role=row[0].role
        )

    async def delete(self, user_id: int) -> int:
        return 1 if self.rows.pop(user_id, None) else 0

    def _store(
        self,
        user_id: int,
        draft: UserDraft,
        pwd_hash: str,
        created: datetime,
        role: Role = Role.MEMBER,
    ) -> User:
        if self._email_used(draft.email, user_id):  # the unique index on lower(email)
            raise AlreadyExists(MessageKey.RECORD_ALREADY_EXISTS, entity="user")
        assert draft.valid_from is not None and draft.valid_thru is not None
        user = User(
            id=user_id,
            firstname=draft.firstname,
            lastname=draft.lastname,
            name=f"{draft.firstname} {draft.lastname}",
            valid_from=draft.valid_from,
            valid_thru=draft.valid_thru,
            active=draft.active,
            email=draft.email,
            company=draft.company,
            create_date=created,
            update_date=now(),
            role=draft.role or role,
        )
        self.rows[user_id] = (user, pwd_hash)
        return user

    def _email_used(self, email: str, except_id: int) -> bool:
        return any(
            u.email.lower() == email.lower() and u.id != except_id for u, _ in self.rows.values()
        )


class FakeLoginThrottle(LoginThrottle):
    """Failure counts in a dict; a window never passes here (the SQL's timing is tested
    against PostgreSQL)."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self._attempts = policy.attempts
        self._window = policy.window
        self.failures: dict[str, int] = {}
        self.noted: set[str] = set()

    async def seconds_left(self, email: str) -> float | None:
        blocked = self.failures.get(email, 0) >= self._attempts
        return self._window.total_seconds() if blocked else None

    async def note_refused(self, email: str) -> bool:
        if await self.seconds_left(email) is None or email in self.noted:
            return False
        self.noted.add(email)
        return True

    async def count_failure(self, email: str) -> None:
        self.failures[email] = self.failures.get(email, 0) + 1

    async def clear(self, email: str) -> None:
        self.failures.pop(email, None)
        self.noted.discard(email)


class FakeRefreshTokens(RefreshTokens):
    """Refresh token rows by hash, as the table keeps them."""

    def __init__(self) -> None:
        self.rows: dict[bytes, StoredRefreshToken] = {}

    async def add(
        self, token_hash: bytes, family_id: uuid.UUID, user_id: int, expires_at: datetime
    ) -> None:
        self.rows[token_hash] = StoredRefreshToken(family_id, user_id, expires_at, False, False)

    async def take(self, token_hash: bytes) -> StoredRefreshToken | None:
        return self.rows.get(token_hash)

    async def mark_used(self, token_hash: bytes) -> None:
        self.rows[token_hash] = dataclasses.replace(self.rows[token_hash], used=True)

    async def revoke_family(self, family_id: uuid.UUID) -> int:
        return self._revoke(lambda row: row.family_id == family_id)

    async def revoke_user(self, user_id: int) -> int:
        return self._revoke(lambda row: row.user_id == user_id)

    async def purge_expired(self, limit: int = 100) -> None:
        moment = now()
        for key in [k for k, row in self.rows.items() if row.expires_at < moment][:limit]:
            del self.rows[key]

    def _revoke(self, matches: Callable[[StoredRefreshToken], bool]) -> int:
        hit = [k for k, row in self.rows.items() if matches(row) and not row.revoked]
        for key in hit:
            self.rows[key] = dataclasses.replace(self.rows[key], revoked=True)
        return len(hit)


class FakePromotionRepository(PromotionRepository):
    """Promotions in a dict; discount ids assigned when 0, as next_id() does."""

    def __init__(self, promotions: Iterable[Promotion] = ()) -> None:
        self.rows: dict[int, Promotion] = {p.id: p for p in promotions}

    async def get(self, promotion_id: int, *, for_update: bool = False) -> Promotion | None:
        return self.rows.get(promotion_id)

    async def search(self, query: PromotionQuery) -> tuple[list[Promotion], bool]:
        found = [
            p
            for p in self.rows.values()
            if (not query.id or p.id == query.id)
            and (not query.name or p.name == query.name)
            and (not query.customer_id or p.customer_id == query.customer_id)
            and (not query.product_id or any(x.id == query.product_id for x in p.products))
            and _on(query.valid_date, p.valid_from, p.valid_thru)
        ]
        return _page(found, query.limit, query.after_id)

    async def insert(self, draft: PromotionDraft) -> Promotion:
        return self._store(next(_ids), draft)

    async def update(self, draft: PromotionDraft) -> Promotion | None:
        return self._store(draft.id, draft) if draft.id in self.rows else None

    async def delete(self, promotion_id: int) -> int:
        return 1 if self.rows.pop(promotion_id, None) else 0

    def _store(self, promotion_id: int, draft: PromotionDraft) -> Promotion:
        assert draft.valid_from is not None and draft.valid_thru is not None
        promotion = Promotion(
            id=promotion_id,
            name=draft.name,
            description=draft.description,
            valid_from=draft.valid_from,
            valid_thru=draft.valid_thru,
            active=draft.active,
            customer_id=draft.customer_id,
            approval_status=draft.approval_status,
            prev_approval_status=draft.prev_approval_status,
            products=tuple(
                Product(
                    p.id,
                    p.upc_code,
                    tuple(dataclasses.replace(d, id=d.id or next(_ids)) for d in p.discounts),
                )
                for p in draft.products
            ),
        )
        self.rows[promotion_id] = promotion
        return promotion


class _FakeTransaction:
    """What both fake units of work share: events count only once committed, and the fake
    repositories' rows are put back unless the work was committed."""

    _repositories: tuple[Any, ...]  # fakes with a `rows` dict
    _committed_events: list[AuditEvent]
    committed: bool

    @property
    def conn(self) -> asyncpg.Connection:
        raise AssertionError("a use case reached past the repository for the connection")

    def emit(self, event: AuditEvent) -> None:
        self._pending.append(event)

    async def __aenter__(self) -> Self:
        self._saved = [dict(repository.rows) for repository in self._repositories]
        self._pending: list[AuditEvent] = []
        return self

    async def commit(self) -> None:
        self.committed = True
        self._committed_events += self._pending

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            for repository, rows in zip(self._repositories, self._saved, strict=True):
                repository.rows = rows


class FakeTokenRevocations(TokenRevocations):
    """The users whose tokens were revoked, in order (`rows`, put back with a rollback)."""

    def __init__(self) -> None:
        self.rows: dict[int, int] = {}  # user id -> revocations so far

    async def revoke(self, user_id: int) -> None:
        self.rows = {**self.rows, user_id: self.rows.get(user_id, 0) + 1}


class FakeUserUnitOfWork(_FakeTransaction, UserUnitOfWork):
    def __init__(
        self,
        users: FakeUserRepository,
        throttle: FakeLoginThrottle,
        events: list[AuditEvent],
        refresh_tokens: FakeRefreshTokens,
        revocations: FakeTokenRevocations,
    ) -> None:
        self.users = users
        self.throttle = throttle
        self.refresh_tokens = refresh_tokens
        self.revocations = revocations
        self._repositories = (users, refresh_tokens, revocations)
        self._committed_events = events
        self.committed = False


class FakePromotionUnitOfWork(_FakeTransaction, PromotionUnitOfWork):
    def __init__(self, promotions: FakePromotionRepository, events: list[AuditEvent]) -> None:
        self.promotions = promotions
        self._repositories = (promotions,)
        self._committed_events = events
        self.committed = False


class FakeUserStorage(UserStorage):
    """One fake repository for reads and units of work; `events` are the committed ones."""

    def __init__(
        self,
        users: FakeUserRepository | None = None,
        policy: ThrottlePolicy = DEFAULT_THROTTLE,
    ) -> None:
        self.users = users or FakeUserRepository()
        self.throttle = FakeLoginThrottle(policy)
        self.refresh_tokens = FakeRefreshTokens()
        self.revocations = FakeTokenRevocations()
        self.events: list[AuditEvent] = []
        self.units: list[FakeUserUnitOfWork] = []

    def unit_of_work(self) -> FakeUserUnitOfWork:
        self.units.append(
            FakeUserUnitOfWork(
                self.users, self.throttle, self.events, self.refresh_tokens, self.revocations
            )
        )
        return self.units[-1]

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[UserRepository]:
        yield self.users

    async def before_login(self, email: str, given: str) -> LoginLookup:
        return LoginLookup(
            await self.throttle.seconds_left(email),
            email in self.throttle.failures,
            await self.users.credentials(given),
        )

    async def record_login(
        self,
        email: str,
        event: AuditEvent,
        *,
        clear_failures: bool,
        count_failure: bool,
        refresh: NewRefreshToken | None,
    ) -> None:
        if clear_failures:
            await self.throttle.clear(email)
        if count_failure:
            await self.throttle.count_failure(email)
        if refresh is not None:
            await self.refresh_tokens.add(
                refresh.token_hash, refresh.family_id, refresh.user_id, refresh.expires_at
            )
        self.events.append(event)


class FakePromotionStorage(PromotionStorage):
    """One fake repository for reads and units of work; `events` are the committed ones."""

    def __init__(self, promotions: FakePromotionRepository | None = None) -> None:
        self.promotions = promotions or FakePromotionRepository()
        self.events: list[AuditEvent] = []
        self.units: list[FakePromotionUnitOfWork] = []

    def unit_of_work(self) -> FakePromotionUnitOfWork:
        self.units.append(FakePromotionUnitOfWork(self.promotions, self.events))
        return self.units[-1]

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PromotionRepository]:
        yield self.promotions


class FakePasswordHasher(PasswordHasher):
    """No bcrypt, no worker processes: the 'hash' is the password with a prefix."""

    async def start(self) -> None:
        return None

    async def hash(self, password: str) -> str:
        return f"fake:{password}"

    async def check(self, password: str, hashed: str | None) -> bool:
        return hashed == f"fake:{password}"
