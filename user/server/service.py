"""The user use cases: queries, validated writes with audit events, login and token checks."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from global_errors import Failure, MessageKey, Unauthenticated, ValidationFailed
from global_utils.audit import ActionType, AuditEvent
from global_utils.auth import Principal
from global_utils.validation import Refusal, id_failures, require_valid_id
from user.server.models import User, UserDraft, UserQuery
from user.server.passwords import PasswordHasher
from user.server.tokens import TokenCodec
from user.server.unit_of_work import UserStorage
from user.server.validation import (
    MAX_EMAIL_CHARS,
    deletable,
    not_found,
    validate_draft,
    validate_query,
)

SERVICE_NAME = "user"
OBJECT_NAME = "user"


class UserService:
    def __init__(
        self,
        storage: UserStorage,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        to_record: Callable[[User], Message],
    ) -> None:
        self._storage = storage
        self._hasher = hasher
        self._tokens = tokens
        # The audit payload is the protobuf record (the servicer owns that conversion).
        self._to_record = to_record

    # queries
    async def get(self, user_id: int) -> User:
        require_valid_id(user_id)
        async with self._storage.reading() as users:
            user = await users.get(user_id)
        if user is None:
            raise not_found(user_id)
        return user

    async def search(self, query: UserQuery) -> tuple[list[User], bool]:
        failures = validate_query(query)
        if failures:
            raise ValidationFailed(failures)
        async with self._storage.reading() as users:
            return await users.search(query)

    # dry runs
    async def check_create(self, draft: UserDraft) -> list[Failure]:
        return await self._check(draft, creating=True)

    async def check_update(self, draft: UserDraft) -> list[Failure]:
        return await self._check(draft, creating=False)

    async def check_delete(self, user_id: int) -> list[Failure]:
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

    # writes
    async def create(self, draft: UserDraft, actor: Principal) -> User:
        failures = await self.check_create(draft)
        if failures:
            raise ValidationFailed(failures)
        pwd_hash = await self._hasher.hash(draft.pwd)
        async with self._storage.unit_of_work() as uow:
            user = await uow.users.insert(draft, pwd_hash)
            uow.emit(self._event(user, ActionType.INSERT, "AfterCreateUser", actor))
            await uow.commit()
        return user

    async def update(self, draft: UserDraft, actor: Principal) -> User:
        failures = await self.check_update(draft)
        if failures:
            raise ValidationFailed(failures)
        pwd_hash = await self._hasher.hash(draft.pwd) if draft.pwd else None
        async with self._storage.unit_of_work() as uow:
            user = await uow.users.update(draft, pwd_hash)
            if user is None:
                raise not_found(draft.id)
            uow.emit(self._event(user, ActionType.UPDATE, "AfterUpdateUser", actor))
            await uow.commit()
        return user

    async def delete(self, user_id: int, actor: Principal) -> User:
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
    async def login(self, email: str, password: str) -> str:
        """A signed token for valid credentials; one message for any mismatch."""
        found = None
        # Input that cannot be a stored email is a wrong login, found without the database.
        if email and len(email) <= MAX_EMAIL_CHARS and "\x00" not in email:
            async with self._storage.reading() as users:
                found = await users.credentials(email)
        user, pwd_hash = found if found else (None, None)
        ok = await self._hasher.check(password, pwd_hash)
        if not ok or user is None:
            raise Unauthenticated(MessageKey.BAD_CREDENTIALS)
        return self._tokens.issue(user)

    def validate_token(self, token: str) -> Principal:
        return self._tokens.decode(token)

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
