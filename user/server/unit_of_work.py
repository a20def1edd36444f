"""Where the user use cases reach stored users: a unit of work (uow.users, uow.throttle,
uow.refresh_tokens, uow.revocations) for changes, a plain pooled connection for reads."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import asyncpg

from global_utils.data.database import Database, UnitOfWork
from global_utils.events.audit_event import AuditEmitter, AuditEvent
from user.server.repository import (
    LoginLookup,
    LoginThrottle,
    NewRefreshToken,
    RefreshTokens,
    ThrottlePolicy,
    UserRepository,
    login_changes,
)
from user.server.revocations import TokenRevocations


class UserUnitOfWork(UnitOfWork):
    """One transaction of the user service, with its repositories on it: uow.users and the
    failed-login counts, uow.throttle, the refresh tokens, uow.refresh_tokens, and the
    revocation of a user's access tokens, uow.revocations."""

    users: UserRepository
    throttle: LoginThrottle
    refresh_tokens: RefreshTokens
    revocations: TokenRevocations

    def __init__(self, database: Database, emitter: AuditEmitter, policy: ThrottlePolicy) -> None:
        super().__init__(database, emitter)
        self._policy = policy

    def _opened(self, conn: asyncpg.Connection) -> None:
        self.users = UserRepository(conn)
        self.throttle = LoginThrottle(conn, self._policy)
        self.refresh_tokens = RefreshTokens(conn)
        self.revocations = TokenRevocations(conn)


class UserStorage:
    """Hands the use cases their repositories: in a unit of work for changes; for reads on a
    pooled connection outside any transaction (a read needs no BEGIN and COMMIT round trips)."""

    def __init__(self, database: Database, emitter: AuditEmitter, policy: ThrottlePolicy) -> None:
        self._database = database
        self._emitter = emitter
        self._policy = policy

    def unit_of_work(self) -> UserUnitOfWork:
        return UserUnitOfWork(self._database, self._emitter, self._policy)

    def reading(self) -> AbstractAsyncContextManager[UserRepository]:
        return self._database.reading(UserRepository)

    async def before_login(self, email: str, given: str) -> LoginLookup:
        """What a login reads first (LoginThrottle.before_login), on a pooled connection."""
        async with self._database.connection() as conn:
            return await LoginThrottle(conn, self._policy).before_login(email, given)

    async def record_login(
        self,
        email: str,
        event: AuditEvent,
        *,
        clear_failures: bool,
        count_failure: bool,
        refresh: NewRefreshToken | None,
    ) -> None:
        """Stores a login's outcome (login_changes) with its audit event in one statement:
        known in full before it is written, it needs no transaction's BEGIN and COMMIT (a
        login's round trips are what reads beside it queue behind)."""
        changes, args = login_changes(
            email,
            self._policy,
            clear_failures=clear_failures,
            count_failure=count_failure,
            refresh=refresh,
        )
        async with self._database.connection() as conn:
            await self._emitter.record(conn, [event], changes, args)
        self._emitter.committed([event])
