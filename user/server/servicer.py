"""user.UserSrv: converts between protobuf messages and the domain, nothing more."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from global_errors import Failure, Language, MessageKey
from global_utils.grpc.protoconv import (
    decode_page_token,
    encode_page_token,
    failure_texts,
    page_limit,
    parse_id,
    read_time,
)
from global_utils.identity.principal import Role, current_principal
from global_utils.identity.token_keys import PublicKey
from global_utils.runtime.timeutil import to_timestamp
from user.proto import user_pb2, user_pb2_grpc
from user.server.accounts import Accounts
from user.server.models import LoginAttempt, LoginOutcome, User, UserDraft, UserQuery
from user.server.sessions import Session, Sessions

Context: TypeAlias = grpc.aio.ServicerContext
PAGE_KIND = "user"

ROLE_TO_PROTO = {Role.ADMIN: user_pb2.ROLE_ADMIN, Role.MEMBER: user_pb2.ROLE_MEMBER}
ROLE_FROM_PROTO = {number: role for role, number in ROLE_TO_PROTO.items()}
OUTCOME_TO_PROTO = {
    LoginOutcome.SUCCEEDED: user_pb2.LOGIN_OUTCOME_SUCCEEDED,
    LoginOutcome.BAD_CREDENTIALS: user_pb2.LOGIN_OUTCOME_BAD_CREDENTIALS,
    LoginOutcome.ACCOUNT_DISABLED: user_pb2.LOGIN_OUTCOME_ACCOUNT_DISABLED,
    LoginOutcome.THROTTLED: user_pb2.LOGIN_OUTCOME_THROTTLED,
}


def user_to_proto(user: User) -> user_pb2.User:
    """The wire form of a user; pwd stays empty, always."""
    return user_pb2.User(
        id=user.id,
        firstname=user.firstname,
        lastname=user.lastname,
        name=user.name,
        valid_from=to_timestamp(user.valid_from),
        valid_thru=to_timestamp(user.valid_thru),
        active=user.active,
        email=user.email,
        company=user.company,
        create_date=to_timestamp(user.create_date),
        update_date=to_timestamp(user.update_date),
        role=ROLE_TO_PROTO[user.role],
    )


def login_to_proto(attempt: LoginAttempt) -> user_pb2.LoginAttempt:
    """The detail of a login audit event."""
    return user_pb2.LoginAttempt(
        email=attempt.email, user_id=attempt.user_id, outcome=OUTCOME_TO_PROTO[attempt.outcome]
    )


def session_to_proto(session: Session) -> user_pb2.Token:
    return user_pb2.Token(
        token=session.access.token,
        valid=True,
        refresh_token=session.refresh_token,
        expires_at=to_timestamp(session.access.expires_at),
    )


def public_keys_to_proto(keys: list[PublicKey]) -> user_pb2.PublicKeys:
    fields = ("kid", "alg", "kty", "crv", "x")
    return user_pb2.PublicKeys(
        key=[user_pb2.PublicKey(**{f: k.jwk()[f] for f in fields}) for k in keys]
    )


def draft_from_proto(msg: user_pb2.User) -> UserDraft:
    draft = UserDraft(
        id=msg.id,
        firstname=msg.firstname,
        lastname=msg.lastname,
        active=msg.active,
        pwd=msg.pwd,
        email=msg.email.strip(),
        company=msg.company,
    )
    draft.valid_from = read_time(msg, "valid_from", draft.invalid)
    draft.valid_thru = read_time(msg, "valid_thru", draft.invalid)
    if msg.role != user_pb2.ROLE_UNSPECIFIED:
        draft.role = ROLE_FROM_PROTO.get(msg.role)
        if draft.role is None:  # a number outside the enum
            draft.invalid.append(Failure("role", MessageKey.FIELD_NOT_ALLOWED))
    return draft


def query_from_proto(msg: user_pb2.SearchParams) -> UserQuery:
    query = UserQuery(
        id=msg.id,
        firstname=msg.firstname,
        lastname=msg.lastname,
        email=msg.email.strip(),
        company=msg.company,
        limit=page_limit(msg.page_size),
    )
    query.valid_date = read_time(msg, "valid_date", query.invalid)
    query.after_id = decode_page_token(PAGE_KIND, msg.page_token, query.invalid, parse_id) or 0
    return query


def users_to_proto(users: list[User], more: bool) -> user_pb2.Users:
    reply = user_pb2.Users(user=[user_to_proto(u) for u in users])
    if more and users:
        reply.next_page_token = encode_page_token(PAGE_KIND, users[-1].id)
    return reply


def validation_reply(failures: list[Failure], language: Language) -> user_pb2.ValidationErr:
    return user_pb2.ValidationErr(failure_desc=failure_texts(failures, language))


class UserServicer(user_pb2_grpc.UserSrvServicer):
    def __init__(self, accounts: Accounts, sessions: Sessions, language: Language) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._language = language

    async def GetUserById(self, request: user_pb2.SearchId, context: Context) -> user_pb2.User:
        return user_to_proto(await self._accounts.get(request.id, current_principal()))

    async def GetUsers(self, request: user_pb2.SearchParams, context: Context) -> user_pb2.Users:
        query = query_from_proto(request)
        return users_to_proto(*await self._accounts.search(query, current_principal()))

    async def GetUsersByEmail(
        self, request: user_pb2.SearchString, context: Context
    ) -> user_pb2.Users:
        return await self.GetUsers(user_pb2.SearchParams(email=request.value), context)

    async def CreateUser(self, request: user_pb2.User, context: Context) -> user_pb2.Response:
        user = await self._accounts.create(draft_from_proto(request), current_principal())
        return user_pb2.Response(user=user_to_proto(user), affected_count=1)

    async def UpdateUser(self, request: user_pb2.User, context: Context) -> user_pb2.Response:
        user = await self._accounts.update(draft_from_proto(request), current_principal())
        return user_pb2.Response(user=user_to_proto(user), affected_count=1)

    async def DeleteUser(self, request: user_pb2.SearchId, context: Context) -> user_pb2.Response:
        user = await self._accounts.delete(request.id, current_principal())
        return user_pb2.Response(user=user_to_proto(user), affected_count=1)

    async def BeforeCreateUser(
        self, request: user_pb2.User, context: Context
    ) -> user_pb2.ValidationErr:
        failures = await self._accounts.check_create(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeUpdateUser(
        self, request: user_pb2.User, context: Context
    ) -> user_pb2.ValidationErr:
        failures = await self._accounts.check_update(draft_from_proto(request), current_principal())
        return validation_reply(failures, self._language)

    async def BeforeDeleteUser(
        self, request: user_pb2.User, context: Context
    ) -> user_pb2.ValidationErr:
        failures = await self._accounts.check_delete(request.id, current_principal())
        return validation_reply(failures, self._language)

    async def Auth(self, request: user_pb2.User, context: Context) -> user_pb2.Token:
        return session_to_proto(await self._sessions.login(request.email.strip(), request.pwd))

    async def RefreshToken(
        self, request: user_pb2.RefreshTokenRequest, context: Context
    ) -> user_pb2.Token:
        return session_to_proto(await self._sessions.refresh(request.refresh_token))

    async def GetPublicKeys(
        self, request: user_pb2.PublicKeysRequest, context: Context
    ) -> user_pb2.PublicKeys:
        return public_keys_to_proto(self._sessions.public_keys)

    async def ValidateToken(self, request: user_pb2.Token, context: Context) -> user_pb2.Token:
        principal = await self._sessions.validate_token(request.token)
        return user_pb2.Token(
            token=request.token,
            valid=True,
            e_uid=principal.user_id,
            role=ROLE_TO_PROTO[principal.role],
        )
