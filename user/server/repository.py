"""All SQL of the user service (asyncpg, $n parameters); returns domain models."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from global_errors import AlreadyExists, MessageKey
from global_utils.data.sql import Filters
from global_utils.identity.principal import Role
from user.server.models import Standing, User, UserDraft, UserQuery

_COLUMNS = (
    "id, firstname, lastname, name, validfrom, validthru, active, email, company,"
    " createdate, updatedate, role"
)
# A read that also checks its caller: the caller's row (c) beside what the read finds.
_CALLER = (
    "c.active AS caller_active, c.validfrom AS caller_validfrom, c.validthru AS caller_validthru,"
    " c.role AS caller_role, c.tokensnotbefore AS caller_tokensnotbefore"
)
# Throttle rows whose window passed count for nothing; each failure purges up to this many.
THROTTLE_PURGE_BATCH = 100
_ADD_REFRESH_TOKEN = "INSERT INTO refresh_token (tokenhash, familyid, userid, expiresat)"


def build_search(query: UserQuery) -> tuple[str, list[Any]]:
    """SELECT for query: one $n parameter per given filter, values never pasted into SQL."""
    filters = Filters()
    if query.id:
        filters.add("id = {0}", query.id)
    if query.firstname:
        filters.add("firstname = {0}", query.firstname)
    if query.lastname:
        filters.add("lastname = {0}", query.lastname)
    if query.email:
        filters.add("lower(email) = lower({0})", query.email)
    if query.company:
        filters.add("company = {0}", query.company)
    if query.valid_date is not None:
        filters.add("validfrom <= {0} AND validthru >= {0}", query.valid_date)
    if query.after_id:
        filters.add("id > {0}", query.after_id)
    where = filters.where()
    # one extra row tells whether another page exists
    limit = filters.limit(query.limit + 1)
    return f"SELECT {_COLUMNS} FROM appuser{where} ORDER BY id{limit}", filters.args


def _to_user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        firstname=row["firstname"],
        lastname=row["lastname"],
        name=row["name"],
        valid_from=row["validfrom"],
        valid_thru=row["validthru"],
        active=row["active"],
        email=row["email"],
        company=row["company"],
        create_date=row["createdate"],
        update_date=row["updatedate"],
        role=Role(row["role"]),
    )


def _caller_standing(row: asyncpg.Record) -> Standing:
    return Standing(
        row["caller_active"],
        row["caller_validfrom"],
        row["caller_validthru"],
        Role(row["caller_role"]),
        row["caller_tokensnotbefore"],
    )


class UserRepository:
    """Reads and writes appuser rows on one connection (inside a unit of work for writes)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, user_id: int, *, for_update: bool = False) -> User | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM appuser WHERE id = $1{lock}", user_id
        )
        return _to_user(row) if row else None

    async def search(self, query: UserQuery) -> tuple[list[User], bool]:
        """Matching users (at most query.limit) and whether more remain."""
        sql, args = build_search(query)
        rows = await self._conn.fetch(sql, *args)
        return [_to_user(r) for r in rows[: query.limit]], len(rows) > query.limit

    async def standing(self, user_id: int) -> Standing | None:
        """Whether the user may log in (None: no such user)."""
        row = await self._conn.fetchrow(
            "SELECT active, validfrom, validthru, role, tokensnotbefore FROM appuser WHERE id = $1",
            user_id,
        )
        return Standing(row[0], row[1], row[2], Role(row[3]), row[4]) if row else None

    async def get_for(self, user_id: int, caller_id: int) -> tuple[Standing | None, User | None]:
        """The caller's standing and the user, in one round trip (None, None: no such caller)."""
        row = await self._conn.fetchrow(
            f"SELECT {_CALLER}, u.* FROM appuser c LEFT JOIN LATERAL"
            f" (SELECT {_COLUMNS} FROM appuser WHERE id = $1) u ON true WHERE c.id = $2",
            user_id,
            caller_id,
        )
        if row is None:
            return None, None
        return _caller_standing(row), _to_user(row) if row["id"] is not None else None

    async def search_for(
        self, query: UserQuery, caller_id: int
    ) -> tuple[Standing | None, list[User], bool]:
        """The caller's standing, then search()'s answer, in one round trip (None: no such
        caller, and nothing found)."""
        sql, args = build_search(query)
        rows = await self._conn.fetch(
            f"SELECT {_CALLER}, s.* FROM appuser c LEFT JOIN LATERAL ({sql}) s ON true"
            f" WHERE c.id = ${len(args) + 1} ORDER BY s.id",
            *args,
            caller_id,
        )
        if not rows:
            return None, [], False
        found = [r for r in rows if r["id"] is not None]
        users = [_to_user(r) for r in found[: query.limit]]
        return _caller_standing(rows[0]), users, len(found) > query.limit

    async def email_taken(self, email: str, *, except_id: int = 0) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM appuser WHERE lower(email) = lower($1) AND id <> $2)",
                email,
                except_id,
            )
        )

    async def insert(self, draft: UserDraft, pwd_hash: str) -> User:
        try:
            row = await self._conn.fetchrow(
                "INSERT INTO appuser (firstname, lastname, validfrom, validthru, active, pwd,"
                " email, company, role) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                f" RETURNING {_COLUMNS}",
                draft.firstname,
                draft.lastname,
                draft.valid_from,
                draft.valid_thru,
                draft.active,
                pwd_hash,
                draft.email,
                draft.company,
                draft.role or Role.MEMBER,
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyExists(MessageKey.RECORD_ALREADY_EXISTS, entity="user") from exc
        assert row is not None
        return _to_user(row)

    async def update(self, draft: UserDraft, pwd_hash: str | None) -> User | None:
        """Updates every field; pwd_hash None keeps the stored hash, draft.role None the role."""
        try:
            row = await self._conn.fetchrow(
                "UPDATE appuser SET firstname = $2, lastname = $3, validfrom = $4, validthru = $5,"
                " active = $6, pwd = COALESCE($7, pwd), email = $8, company = $9,"
                " role = COALESCE($10, role),"
                f" updatedate = now() WHERE id = $1 RETURNING {_COLUMNS}",
                draft.id,
                draft.firstname,
                draft.lastname,
                draft.valid_from,
                draft.valid_thru,
                draft.active,
                pwd_hash,
                draft.email,
                draft.company,
                draft.role,
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyExists(MessageKey.RECORD_ALREADY_EXISTS, entity="user") from exc
        return _to_user(row) if row else None

    async def delete(self, user_id: int) -> int:
        status = await self._conn.execute("DELETE FROM appuser WHERE id = $1", user_id)
        return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True)
class ThrottlePolicy:
    """After `attempts` failed logins for one email within `window`, refuse it for `window`."""

    attempts: int
    window: timedelta


@dataclass(frozen=True)
class LoginLookup:
    """What a login knows before hashing: seconds the email stays throttled (None: it may
    try), whether failures are counted for it (a success clears them), and the stored user
    with the password hash (None: no such user)."""

    seconds_throttled: float | None
    failures_counted: bool
    found: tuple[User, str] | None


class LoginThrottle:
    """Failed logins per email (lower-cased) in login_throttle, shared by every instance: a
    row counts the failures since its window start; the failure that reaches the limit starts
    the window again, and until it has passed every attempt is refused."""

    def __init__(self, conn: asyncpg.Connection, policy: ThrottlePolicy) -> None:
        self._conn = conn
        self._attempts = policy.attempts
        self._window = policy.window

    async def before_login(self, email: str, given: str) -> LoginLookup:
        """What a login reads first, in one round trip: how long email (lower-cased) stays
        throttled, whether failures are counted for it, and the user stored for the email as
        given, with the password hash."""
        row = await self._conn.fetchrow(
            "SELECT t.email IS NOT NULL AS counted, CASE WHEN t.failures >= $2::int"
            " AND t.windowstart > now() - $3::interval"
            " THEN extract(epoch FROM t.windowstart + $3::interval - now())::float8 END"
            " AS throttled, u.* FROM (SELECT) AS one LEFT JOIN login_throttle t ON t.email = $1"
            f" LEFT JOIN LATERAL (SELECT {_COLUMNS}, pwd FROM appuser"
            " WHERE lower(email) = lower($4)) u ON true",
            email,
            self._attempts,
            self._window,
            given,
        )
        assert row is not None  # the one-row join always answers a row
        found = (_to_user(row), row["pwd"]) if row["id"] is not None else None
        left = row["throttled"]
        return LoginLookup(float(left) if left is not None else None, row["counted"], found)

    async def note_refused(self, email: str) -> bool:
        """Marks email's throttled window as recorded; True only the first time per window."""
        return bool(
            await self._conn.fetchval(
                "UPDATE login_throttle SET throttlenoted = true WHERE email = $1"
                " AND failures >= $2::int AND windowstart > now() - $3::interval"
                " AND NOT throttlenoted RETURNING true",
                email,
                self._attempts,
                self._window,
            )
        )


@dataclass(frozen=True)
class NewRefreshToken:
    """The first refresh token of a login's family, to store (by its SHA-256)."""

    token_hash: bytes
    family_id: uuid.UUID
    user_id: int
    expires_at: datetime


def login_changes(
    email: str,
    policy: ThrottlePolicy,
    *,
    clear_failures: bool,
    count_failure: bool,
    refresh: NewRefreshToken | None,
) -> tuple[list[str], list[Any]]:
    """What a login's outcome changes, as data-modifying WITH items and their parameters for
    one statement with its audit event (AuditEmitter.record): the email's failures cleared (a
    success while some are counted) or one more counted, and a success's first refresh token.
    A counted failure also purges other emails' rows whose window has passed."""
    changes: list[str] = []
    args: list[Any] = []
    if clear_failures:
        args.append(email)
        changes.append("cleared AS (DELETE FROM login_throttle WHERE email = $1)")
    elif count_failure:
        args += [email, policy.attempts, policy.window, THROTTLE_PURGE_BATCH]
        changes += [
            # SKIP LOCKED: instances purging at once neither wait for nor deadlock on each other.
            "purged AS (DELETE FROM login_throttle WHERE email IN (SELECT email"
            " FROM login_throttle WHERE windowstart <= now() - $3::interval AND email <> $1"
            " ORDER BY windowstart LIMIT $4 FOR UPDATE SKIP LOCKED))",
            # SET expressions read the row as it was before this statement.
            "failed AS (INSERT INTO login_throttle AS t (email, windowstart, failures)"
            " VALUES ($1, now(), 1) ON CONFLICT (email) DO UPDATE SET"
            " failures = CASE WHEN t.windowstart <= now() - $3::interval THEN 1"
            " ELSE t.failures + 1 END,"
            " windowstart = CASE WHEN t.windowstart <= now() - $3::interval"
            " OR t.failures + 1 >= $2::int THEN now() ELSE t.windowstart END,"
            " throttlenoted = t.throttlenoted AND t.windowstart > now() - $3::interval)",
        ]
    if refresh is not None:
        n = len(args)
        args += [refresh.token_hash, refresh.family_id, refresh.user_id, refresh.expires_at]
        changes.append(
            f"token AS ({_ADD_REFRESH_TOKEN} VALUES (${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}))"
        )
    return changes, args


@dataclass(frozen=True)
class StoredRefreshToken:
    """A refresh token's row (its hash is the key it was found by)."""

    family_id: uuid.UUID
    user_id: int
    expires_at: datetime
    used: bool
    revoked: bool


class RefreshTokens:
    """Refresh tokens by their SHA-256, in families: one per login, each refresh adding the
    next token of it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(
        self, token_hash: bytes, family_id: uuid.UUID, user_id: int, expires_at: datetime
    ) -> None:
        await self._conn.execute(
            f"{_ADD_REFRESH_TOKEN} VALUES ($1, $2, $3, $4)",
            token_hash,
            family_id,
            user_id,
            expires_at,
        )

    async def take(self, token_hash: bytes) -> StoredRefreshToken | None:
        """The row, locked until the transaction ends (two refreshes with one token queue)."""
        row = await self._conn.fetchrow(
            "SELECT familyid, userid, expiresat, usedat IS NOT NULL AS used,"
            " revokedat IS NOT NULL AS revoked FROM refresh_token WHERE tokenhash = $1"
            " FOR UPDATE",
            token_hash,
        )
        if row is None:
            return None
        return StoredRefreshToken(
            row["familyid"], row["userid"], row["expiresat"], row["used"], row["revoked"]
        )

    async def mark_used(self, token_hash: bytes) -> None:
        await self._conn.execute(
            "UPDATE refresh_token SET usedat = now() WHERE tokenhash = $1", token_hash
        )

    async def revoke_family(self, family_id: uuid.UUID) -> int:
        status = await self._conn.execute(
            "UPDATE refresh_token SET revokedat = now() WHERE familyid = $1 AND revokedat IS NULL",
            family_id,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def revoke_user(self, user_id: int) -> int:
        """Revokes every refresh token of the user (deactivated, password changed...)."""
        status = await self._conn.execute(
            "UPDATE refresh_token SET revokedat = now() WHERE userid = $1 AND revokedat IS NULL",
            user_id,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def purge_expired(self, limit: int = THROTTLE_PURGE_BATCH) -> None:
        """Drops up to limit rows past their expiry (SKIP LOCKED: instances never wait)."""
        await self._conn.execute(
            "DELETE FROM refresh_token WHERE tokenhash IN (SELECT tokenhash FROM refresh_token"
            " WHERE expiresat < now() ORDER BY expiresat LIMIT $1 FOR UPDATE SKIP LOCKED)",
            limit,
        )
