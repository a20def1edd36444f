"""The account use cases: reading users, validated writes with their audit events, dry runs.
Who may do what is decided here, through user.server.authorization."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from global_errors import Failure, MessageKey, ValidationFailed
from global_utils.events.audit_event import ActionType, AuditEvent
from global_utils.identity.principal import Principal
from global_utils.rules.validation import Refusal, id_failures, require_valid_id
from user.server import authorization
from user.server.audit_events import user_event
from user.server.models import User, UserDraft, UserQuery
from user.server.passwords import PasswordHasher
from user.server.repository import UserRepository
from user.server.standing import caller_id, require_may_log_in, require_standing
from user.server.unit_of_work import UserStorage
from user.server.validation import deletable, not_found, validate_draft, validate_query


class Accounts:
    def __init__(
        self,
        storage: UserStorage,
        hasher: PasswordHasher,
        to_record: Callable[[User], Message],
    ) -> None:
        self._storage = storage
        self._hasher = hasher
        # The audit payloads are protobuf records (the servicer owns those conversions).
        self._to_record = to_record

    # queries: anyone authenticated may read. Their caller's token was verified for its
    # signature only (READ_METHODS): the caller's standing comes with the read, one round trip.
    async def get(self, user_id: int, caller: Principal) -> User:
        if failures := id_failures(user_id):
            await require_standing(self._storage, caller)
            raise ValidationFailed(failures)
        async with self._storage.reading() as users:
            standing, user = await users.get_for(user_id, caller_id(caller))
        require_may_log_in(standing, caller)
        if user is None:
            raise not_found(user_id)
        return user

    async def search(self, query: UserQuery, caller: Principal) -> tuple[list[User], bool]:
        if failures := validate_query(query):
            await require_standing(self._storage, caller)
            raise ValidationFailed(failures)
        async with self._storage.reading() as users:
            standing, found, more = await users.search_for(query, caller_id(caller))
        require_may_log_in(standing, caller)
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
            # A new password or a deactivation ends every login's refreshes.
            if pwd_hash is not None or (stored.active and not user.active):
                await uow.refresh_tokens.revoke_user(user.id)
            # A deactivation, a new role or validity window ends the access tokens already
            # out, everywhere (the other services hear it through the outbox).
            if revokes_tokens(stored, user):
                await uow.revocations.revoke(user.id)
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
            await uow.revocations.revoke(user_id)
            uow.emit(self._event(user, ActionType.DELETE, "AfterDeleteUser", actor))
            await uow.commit()
        return user

    def _event(
        self, user: User, action: ActionType, action_func: str, actor: Principal
    ) -> AuditEvent:
        return user_event(user, action, action_func, actor.user_id, self._to_record)


def revokes_tokens(stored: User, changed: User) -> bool:
    """Whether a change ends the user's access tokens: what they say (role) or what lets them
    count (active, the validity window) is no longer so."""
    return (
        (stored.active and not changed.active)
        or stored.role != changed.role
        or (stored.valid_from, stored.valid_thru) != (changed.valid_from, changed.valid_thru)
    )
