"""The user use cases: queries, validated writes with audit events, login and token checks.
Who may do what is decided here, through global_utils.identity.roles."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import Message

from global_errors import Failure, MessageKey, ResourceExhausted, Unauthenticated, ValidationFailed
from global_utils.events.audit_event import ActionType, AuditEvent
from global_utils.identity.principal import Principal, TokenVerifier
from global_utils.identity.token_cache import TokenCache
from global_utils.identity.token_keys import PublicKey
from global_utils.rules.validation import Refusal, id_failures, require_valid_id
from global_utils.runtime.timeutil import now
from user.server import authorization
from user.server.models import LoginAttempt, LoginOutcome, Standing, User, UserDraft, UserQuery
from user.server.passwords import PasswordHasher
from user.server.repository import UserRepository
from user.server.tokens import (
    REFRESH_LIFETIME,
    IssuedToken,
    TokenCodec,
    new_refresh_token,
    refresh_token_hash,
)
from user.server.unit_of_work import UserStorage
from user.server.validation import (
    MAX_EMAIL_CHARS,
    deletable,
    not_found,
    validate_draft,
    validate_query,
)

logger = logging.getLogger(__name__)

SERVICE_NAME = "user"
OBJECT_NAME = "user"
# Login events: the session is the object, the user's id its id.
SESSION_OBJECT_NAME = "session"
LOGIN_FUNC = "Auth"


@dataclass(frozen=True)
class Session:
    """What a login or a refresh hands out: an access token and the refresh token that can
    be exchanged, once, for the next pair."""

    access: IssuedToken
    refresh_token: str


class UserService:
    def __init__(
        self,
        storage: UserStorage,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        to_record: Callable[[User], Message],
        to_login_record: Callable[[LoginAttempt], Message],
        refresh_lifetime: timedelta = REFRESH_LIFETIME,
        signatures: TokenCache | None = None,
    ) -> None:
        self._storage = storage
        self._hasher = hasher
        self._tokens = tokens
        # Tokens whose signature was checked lately: an EdDSA verification costs ~175 µs, the
        # stored-user check below a quick read, and only the latter must happen on every call.
        # (`is None`, not `or`: an empty cache has length 0 and is falsy, and would be replaced)
        self._signatures = signatures if signatures is not None else TokenCache(max_entries=0)
        self._refresh_lifetime = refresh_lifetime
        # The audit payloads are protobuf records (the servicer owns those conversions).
        self._to_record = to_record
        self._to_login_record = to_login_record

    # queries: anyone authenticated may read. Their caller's token was verified for its
    # signature only (READ_METHODS): the caller's standing comes with the read, one round trip.
    async def get(self, user_id: int, caller: Principal) -> User:
        if failures := id_failures(user_id):
            await self._require_standing(caller)
            raise ValidationFailed(failures)
        async with self._storage.reading() as users:
            standing, user = await users.get_for(user_id, _user_id(caller))
        _require_may_log_in(standing)
        if user is None:
            raise not_found(user_id)
        return user

    async def search(self, query: UserQuery, caller: Principal) -> tuple[list[User], bool]:
        if failures := validate_query(query):
            await self._require_standing(caller)
            raise ValidationFailed(failures)
        async with self._storage.reading() as users:
            standing, found, more = await users.search_for(query, _user_id(caller))
        _require_may_log_in(standing)
        return found, more

    # dry runs: refused to whoever the change itself would be refused to
    async def check_create(self, draft: UserDraft, actor: Principal) -> list[Failure]:
        authorization.check_user_create(actor)
        return await self._check(draft, creating=True)

    async def check_update(self, draft: UserDraft, actor: Principal) -> list[Failure]:
        authorization.check_user_update_target(actor, draft.id)
        failures = await self._check(draft, creating=False)
        async with self._storage.reading() as users:
            await self._authorize_update(actor, draft, users, for_update=False)
        return failures

    async def check_delete(self, user_id: int, actor: Principal) -> list[Failure]:
        authorization.check_user_delete(actor)
        if failures := id_failures(user_id):
            return failures
        async with self._storage.reading() as users:
            found = deletable(user_id, await users.get(user_id))
        return [found.failure()] if isinstance(found, Refusal) else []

    async def _check(self, draft: UserDraft, *, creating: bool) -> list[Failure]:
        failures = validate_draft(draft, creating=creating)
        if draft.email and not any(f.field == "email" for f in failures):
            async with self._storage.reading() as users:
                if await users.email_taken(draft.email, except_id=draft.id):
                    failures.append(Failure("email", MessageKey.EMAIL_TAKEN))
        return failures

    @staticmethod
    async def _authorize_update(
        actor: Principal, draft: UserDraft, users: UserRepository, *, for_update: bool
    ) -> User | None:
        """The stored user, once actor may make this change to it (None: there is none)."""
        stored = await users.get(draft.id, for_update=for_update) if draft.id > 0 else None
        if stored is not None:
            authorization.check_user_update(actor, stored.terms, draft.terms)
        return stored

    # writes
    async def create(self, draft: UserDraft, actor: Principal) -> User:
        authorization.check_user_create(actor)
        failures = await self._check(draft, creating=True)
        if failures:
            raise ValidationFailed(failures)
        pwd_hash = await self._hasher.hash(draft.pwd)
        async with self._storage.unit_of_work() as uow:
            user = await uow.users.insert(draft, pwd_hash)
            uow.emit(self._event(user, ActionType.INSERT, "AfterCreateUser", actor))
            await uow.commit()
        return user

    async def update(self, draft: UserDraft, actor: Principal) -> User:
        authorization.check_user_update_target(actor, draft.id)
        failures = await self._check(draft, creating=False)
        if failures:
            raise ValidationFailed(failures)
        pwd_hash = await self._hasher.hash(draft.pwd) if draft.pwd else None
        async with self._storage.unit_of_work() as uow:
            stored = await self._authorize_update(actor, draft, uow.users, for_update=True)
            if stored is None:
                raise not_found(draft.id)
            user = await uow.users.update(draft, pwd_hash)
            if user is None:
                raise not_found(draft.id)
            # A new password or a deactivation ends every login's refreshes (access tokens
            # already out are refused here at once, elsewhere when they expire).
            if pwd_hash is not None or (stored.active and not user.active):
                await uow.refresh_tokens.revoke_user(user.id)
            uow.emit(self._event(user, ActionType.UPDATE, "AfterUpdateUser", actor))
            await uow.commit()
        return user

    async def delete(self, user_id: int, actor: Principal) -> User:
        authorization.check_user_delete(actor)
        require_valid_id(user_id)
        async with self._storage.unit_of_work() as uow:
            user = deletable(user_id, await uow.users.get(user_id, for_update=True))
            if isinstance(user, Refusal):
                raise user.error
            await uow.users.delete(user_id)
            uow.emit(self._event(user, ActionType.DELETE, "AfterDeleteUser", actor))
            await uow.commit()
        return user

    # authentication
    async def login(self, email: str, password: str) -> Session:
        """A signed token for the right password of a user who may log in now; one message
        for any other outcome; RESOURCE_EXHAUSTED, without hashing, while the email is
        throttled. Every outcome goes to the audit history."""
        key = email.lower()
        found = None
        # Input that cannot be a stored email is a wrong login, found without the database
        # (and not counted: no row could ever match it).
        storable = bool(email) and len(email) <= MAX_EMAIL_CHARS and "\x00" not in email
        if storable:
            async with self._storage.reading_logins() as (users, throttle):
                seconds_left = await throttle.seconds_left(key)
                if seconds_left is None:
                    found = await users.credentials(email)
            if seconds_left is not None:
                await self._refuse_throttled(key, seconds_left)
        user, pwd_hash = found if found else (None, None)
        password_ok = await self._hasher.check(password, pwd_hash)
        if password_ok and user is not None and user.may_log_in(now()):
            refresh = new_refresh_token()
            await self._record_login(
                key, user, LoginOutcome.SUCCEEDED, counted=storable, refresh_token=refresh
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
        async with self._storage.unit_of_work() as uow:
            if counted and outcome is LoginOutcome.SUCCEEDED:
                await uow.throttle.clear(email)
            elif counted:
                await uow.throttle.count_failure(email)
            if refresh_token is not None and user is not None:
                # a login starts a family of refresh tokens
                await uow.refresh_tokens.add(
                    refresh_token_hash(refresh_token),
                    uuid.uuid4(),
                    user.id,
                    now() + self._refresh_lifetime,
                )
            uow.emit(self._login_event(email, user, outcome))
            await uow.commit()

    async def _refuse_throttled(self, email: str, seconds_left: float) -> None:
        async with self._storage.unit_of_work() as uow:
            # Once per throttle window in the history, not once per attempt.
            if await uow.throttle.note_refused(email):
                found = await uow.users.credentials(email)
                user = found[0] if found else None
                uow.emit(self._login_event(email, user, LoginOutcome.THROTTLED))
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
        await self._require_standing(principal)
        return principal

    def verify_signature(self, token: str) -> Principal:
        """The principal of a token we signed (cached); its user's standing is not checked."""
        principal = self._signatures.get(token)
        if principal is None:
            principal = self._tokens.decode(token)
            self._signatures.put(token, principal)
        if not principal.user_id.isdecimal():  # signed by us, so never; but never trusted
            raise Unauthenticated(MessageKey.TOKEN_INVALID)
        return principal

    async def _require_standing(self, principal: Principal) -> None:
        async with self._storage.reading() as users:
            standing = await users.standing(_user_id(principal))
        _require_may_log_in(standing)

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

    def _event(
        self, user: User, action: ActionType, action_func: str, actor: Principal
    ) -> AuditEvent:
        return AuditEvent.for_record(
            service=SERVICE_NAME,
            action_func=action_func,
            action_type=action,
            object_name=OBJECT_NAME,
            object_id=user.id,
            performed_by=actor.user_id,
            record=self._to_record(user),
        )

    def _login_event(self, email: str, user: User | None, outcome: LoginOutcome) -> AuditEvent:
        """Who (the user's id, empty for an unknown email), when, and the outcome; a failed
        attempt was performed by nobody known."""
        user_id = str(user.id) if user is not None else ""
        succeeded = outcome is LoginOutcome.SUCCEEDED
        return AuditEvent.for_record(
            service=SERVICE_NAME,
            action_func=LOGIN_FUNC,
            action_type=ActionType.LOGIN if succeeded else ActionType.LOGIN_FAILED,
            object_name=SESSION_OBJECT_NAME,
            object_id=user_id,
            performed_by=user_id if succeeded else "",
            record=self._to_login_record(
                LoginAttempt(email[:MAX_EMAIL_CHARS], user.id if user else 0, outcome)
            ),
        )


def _user_id(principal: Principal) -> int:
    # verify_signature let only decimal ids through
    return int(principal.user_id)


def _require_may_log_in(standing: Standing | None) -> None:
    """A token counts only while its user exists and may log in."""
    if standing is None or not standing.may_log_in(now()):
        raise Unauthenticated(MessageKey.TOKEN_INVALID)


class _SignatureVerifier:
    def __init__(self, service: UserService) -> None:
        self._service = service

    async def verify(self, token: str) -> Principal:
        return self._service.verify_signature(token)
