"""The session use cases: login (throttled, every outcome audited), refresh-token rotation
with reuse detection, and checking access tokens (the user service's own token verifier)."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import Message

from global_errors import MessageKey, ResourceExhausted, Unauthenticated
from global_utils.identity.principal import Principal, TokenVerifier
from global_utils.identity.revocations import RevocationFeed
from global_utils.identity.token_cache import TokenCache
from global_utils.identity.token_keys import PublicKey
from global_utils.runtime.timeutil import now
from user.server.audit_events import login_event
from user.server.models import LoginAttempt, LoginOutcome, User
from user.server.passwords import PasswordHasher
from user.server.repository import LoginLookup, NewRefreshToken
from user.server.standing import require_standing
from user.server.tokens import (
    REFRESH_LIFETIME,
    IssuedToken,
    TokenCodec,
    new_refresh_token,
    refresh_token_hash,
)
from user.server.unit_of_work import UserStorage
from user.server.validation import MAX_EMAIL_CHARS

logger = logging.getLogger(__name__)

# A login with an email no row could hold: not throttled, nothing counted, no user.
NOT_STORABLE = LoginLookup(None, False, None)


@dataclass(frozen=True)
class Session:
    """What a login or a refresh hands out: an access token and the refresh token that can
    be exchanged, once, for the next pair."""

    access: IssuedToken
    refresh_token: str


class Sessions:
    """Logins, refreshes and token checks; also the TokenVerifier of the user service's own
    RPCs (signature and standing)."""

    def __init__(
        self,
        storage: UserStorage,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        to_login_record: Callable[[LoginAttempt], Message],
        refresh_lifetime: timedelta = REFRESH_LIFETIME,
        signatures: TokenCache | None = None,
        revocations: RevocationFeed | None = None,
    ) -> None:
        self._storage = storage
        self._hasher = hasher
        self._tokens = tokens
        # Tokens whose signature was checked lately: an EdDSA verification costs ~75 µs, the
        # stored-user check below a quick read, and only the latter must happen on every call.
        # (`is None`, not `or`: an empty cache has length 0 and is falsy, and would be replaced)
        self._signatures = signatures if signatures is not None else TokenCache(max_entries=0)
        self._refresh_lifetime = refresh_lifetime
        # What the stored user does not show: a revocation by refresh-token reuse (the feed
        # every verifier follows; while it is stale, the stored standing alone decides).
        self._revocations = revocations
        # The audit payloads are protobuf records (the servicer owns those conversions).
        self._to_login_record = to_login_record

    async def login(self, email: str, password: str) -> Session:
        """A signed token for the right password of a user who may log in now; one message
        for any other outcome; RESOURCE_EXHAUSTED, without hashing, while the email is
        throttled. Every outcome goes to the audit history."""
        key = email.lower()
        # Input that cannot be a stored email is a wrong login, found without the database
        # (and not counted: no row could ever match it).
        storable = bool(email) and len(email) <= MAX_EMAIL_CHARS and "\x00" not in email
        lookup = await self._storage.before_login(key, email) if storable else NOT_STORABLE
        user, pwd_hash = lookup.found or (None, None)
        if lookup.seconds_throttled is not None:
            await self._refuse_throttled(key, lookup.seconds_throttled, user)
        password_ok = await self._hasher.check(password, pwd_hash)
        if password_ok and user is not None and user.may_log_in(now()):
            refresh = new_refresh_token()
            await self._record_login(
                key,
                user,
                LoginOutcome.SUCCEEDED,
                counted=lookup.failures_counted,
                refresh_token=refresh,
            )
            return Session(self._tokens.issue(user), refresh)
        outcome = LoginOutcome.ACCOUNT_DISABLED if password_ok else LoginOutcome.BAD_CREDENTIALS
        await self._record_login(key, user, outcome, counted=storable)
        raise Unauthenticated(MessageKey.BAD_CREDENTIALS)

    async def _record_login(
        self,
        email: str,
        user: User | None,
        outcome: LoginOutcome,
        *,
        counted: bool,
        refresh_token: str | None = None,
    ) -> None:
        """Stores a login's outcome with its audit event: a success clears the email's
        counted failures (counted: there are some), any other outcome counts one more
        (counted: the email could be stored)."""
        succeeded = outcome is LoginOutcome.SUCCEEDED
        await self._storage.record_login(
            email,
            login_event(email, user, outcome, self._to_login_record),
            clear_failures=counted and succeeded,
            count_failure=counted and not succeeded,
            # a login starts a family of refresh tokens
            refresh=NewRefreshToken(
                refresh_token_hash(refresh_token),
                uuid.uuid4(),
                user.id,
                now() + self._refresh_lifetime,
            )
            if refresh_token is not None and user is not None
            else None,
        )

    async def _refuse_throttled(self, email: str, seconds_left: float, user: User | None) -> None:
        async with self._storage.unit_of_work() as uow:
            # Once per throttle window in the history, not once per attempt.
            if await uow.throttle.note_refused(email):
                uow.emit(login_event(email, user, LoginOutcome.THROTTLED, self._to_login_record))
                await uow.commit()
        raise ResourceExhausted(MessageKey.LOGIN_THROTTLED, seconds=max(1, math.ceil(seconds_left)))

    async def refresh(self, refresh_token: str) -> Session:
        """The next access and refresh tokens for a refresh token, which is used up. A used
        one presented again was copied: its whole family is revoked, the thief's tokens and
        the owner's alike. Any refusal is the same UNAUTHENTICATED."""
        rotated = await self._rotate(refresh_token_hash(refresh_token))
        if rotated is None:
            raise Unauthenticated(MessageKey.TOKEN_INVALID)
        user, following = rotated
        # the stored record, not the old token, decides role and company
        return Session(self._tokens.issue(user), following)

    async def _rotate(self, token_hash: bytes) -> tuple[User, str] | None:
        """The user and the next refresh token, stored; None (after committing the family's
        revocation when the token was already used) for a token that does not refresh."""
        async with self._storage.unit_of_work() as uow:
            stored = await uow.refresh_tokens.take(token_hash)
            if stored is None or stored.revoked:
                return None
            if stored.used:
                revoked = await uow.refresh_tokens.revoke_family(stored.family_id)
                # the access tokens handed out with the family may be the thief's too
                await uow.revocations.revoke(stored.user_id)
                await uow.commit()
                logger.warning(
                    "refresh token reused: user %s, family %s revoked (%d tokens)",
                    stored.user_id,
                    stored.family_id,
                    revoked,
                )
                return None
            user = await uow.users.get(stored.user_id)
            moment = now()
            if stored.expires_at <= moment or user is None or not user.may_log_in(moment):
                return None
            await uow.refresh_tokens.mark_used(token_hash)
            following = new_refresh_token()
            await uow.refresh_tokens.add(
                refresh_token_hash(following),
                stored.family_id,
                user.id,
                moment + self._refresh_lifetime,
            )
            await uow.refresh_tokens.purge_expired()
            await uow.commit()
        return user, following

    async def validate_token(self, token: str) -> Principal:
        """The token's principal, if its signature is good and its user may still log in:
        the user service owns the data, so a deactivated, out-of-validity or deleted user's
        token is refused at once."""
        principal = self.verify_signature(token)
        await require_standing(self._storage, principal)
        return principal

    def verify_signature(self, token: str) -> Principal:
        """The principal of a token we signed (cached) and not revoked since; its user's
        standing is not checked."""
        principal = self._signatures.get(token)
        if principal is None:
            principal = self._tokens.decode(token)
            self._signatures.put(token, principal)
        if not principal.user_id.isdecimal():  # signed by us, so never; but never trusted
            raise Unauthenticated(MessageKey.TOKEN_INVALID)
        self._require_not_revoked(principal)
        return principal

    def _require_not_revoked(self, principal: Principal) -> None:
        """Refuses a token issued before its user's revocation, as the feed says (while it is
        fresh; otherwise the stored user, checked by every use case, decides alone)."""
        feed = self._revocations
        if feed is not None and feed.fresh:
            not_before = feed.not_before(principal.user_id)
            if not_before is not None and principal.issued_at < not_before:
                raise Unauthenticated(MessageKey.TOKEN_INVALID)

    async def verify(self, token: str) -> Principal:
        """TokenVerifier for the user service's own RPCs: signature and standing."""
        return await self.validate_token(token)

    @property
    def signature_verifier(self) -> TokenVerifier:
        """TokenVerifier for READ_METHODS, whose use cases check the caller's standing in the
        read itself."""
        return _SignatureVerifier(self)

    @property
    def public_keys(self) -> list[PublicKey]:
        return self._tokens.public_keys


class _SignatureVerifier:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def verify(self, token: str) -> Principal:
        return self._sessions.verify_signature(token)
