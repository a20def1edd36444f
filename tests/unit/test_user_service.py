"""The user rules through Accounts (and Sessions) on fakes (no database): delete guards and
their dry run, validation with the email-uniqueness check, paging."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from global_errors import (
    FailedPrecondition,
    Failure,
    MessageKey,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from global_utils.identity.principal import Principal, Role
from global_utils.rules.validation import MAX_PAGE_SIZE
from tests.fakes import FakePasswordHasher, FakeUserRepository, FakeUserStorage
from user.proto import user_pb2
from user.server.accounts import Accounts
from user.server.models import User, UserDraft, UserQuery
from user.server.servicer import login_to_proto, query_from_proto, user_to_proto, users_to_proto
from user.server.sessions import Sessions
from user.server.signing_keys import new_signing_key_pem, parse_signing_keys
from user.server.tokens import TokenCodec

T0 = datetime(2020, 1, 1, tzinfo=UTC)
T1 = datetime(2030, 1, 1, tzinfo=UTC)
ACTOR = Principal(user_id="42", role=Role.ADMIN)
# A caller of the reads, which check their caller's standing: user 1 is active.
READER = Principal(user_id="1", role=Role.MEMBER)


def stored(user_id: int, *, active: bool = False, email: str = "") -> tuple[User, str]:
    user = User(
        id=user_id,
        firstname="Ada",
        lastname=f"L{user_id}",
        name=f"Ada L{user_id}",
        valid_from=T0,
        valid_thru=T1,
        active=active,
        email=email or f"u{user_id}@example.com",
        company="acme",
        create_date=T0,
        update_date=T0,
    )
    return user, "fake:pw"


def draft(**fields: object) -> UserDraft:
    values: dict[str, Any] = {
        "firstname": "Grace",
        "lastname": "Hopper",
        "email": "grace@example.com",
        "pwd": "pw",
        "valid_from": T0,
        "valid_thru": T1,
    }
    values.update(fields)
    return UserDraft(**values)


@pytest.fixture
def storage() -> FakeUserStorage:
    """Users 1 (active), 2 (inactive) and 3 (inactive, ADA@example.com)."""
    return FakeUserStorage(
        FakeUserRepository([stored(1, active=True), stored(2), stored(3, email="ADA@example.com")])
    )


@pytest.fixture
def accounts(storage: FakeUserStorage) -> Accounts:
    """The account use cases on the fake storage, with a fake hasher."""
    return Accounts(storage, FakePasswordHasher(), user_to_proto)


@pytest.fixture
def sessions(storage: FakeUserStorage) -> Sessions:
    """The session use cases on the same fake storage, with a real token codec."""
    return Sessions(
        storage,
        FakePasswordHasher(),
        TokenCodec(parse_signing_keys(new_signing_key_pem())),
        login_to_proto,
    )


# delete guards: the same rule refuses the delete and answers its dry run


async def test_an_active_user_is_not_deleted(accounts: Accounts, storage: FakeUserStorage) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        await accounts.delete(1, ACTOR)
    assert refused.value.key is MessageKey.USER_ACTIVE_CANNOT_DELETE
    assert await storage.users.get(1) is not None
    assert storage.events == [] and not storage.units[-1].committed
    assert await accounts.check_delete(1, ACTOR) == [
        Failure("active", MessageKey.USER_ACTIVE_CANNOT_DELETE, {"id": 1})
    ]


async def test_a_missing_user_is_not_found_by_delete_and_its_dry_run(
    accounts: Accounts,
) -> None:
    with pytest.raises(NotFound) as missing:
        await accounts.delete(99, ACTOR)
    assert missing.value.params == {"entity": "user", "id": 99}
    assert await accounts.check_delete(99, ACTOR) == [
        Failure("id", MessageKey.RECORD_NOT_FOUND, {"entity": "user", "id": 99})
    ]


async def test_an_inactive_user_is_deleted_with_its_audit_event(
    accounts: Accounts, storage: FakeUserStorage
) -> None:
    assert await accounts.check_delete(2, ACTOR) == []
    deleted = await accounts.delete(2, ACTOR)
    assert deleted.id == 2 and await storage.users.get(2) is None
    [event] = storage.events
    assert (event.action_func, event.object_id, event.performed_by) == (
        "AfterDeleteUser",
        "2",
        "42",
    )


async def test_a_non_positive_id_is_invalid_for_delete_and_its_dry_run(
    accounts: Accounts,
) -> None:
    with pytest.raises(ValidationFailed):
        await accounts.delete(0, ACTOR)
    assert await accounts.check_delete(-1, ACTOR) == [Failure("id", MessageKey.FIELD_NOT_POSITIVE)]


# validation, with the email-uniqueness check against stored users


async def test_a_taken_email_is_refused_whatever_its_case(
    accounts: Accounts, storage: FakeUserStorage
) -> None:
    taken = draft(email="ada@EXAMPLE.com")
    assert await accounts.check_create(taken, ACTOR) == [Failure("email", MessageKey.EMAIL_TAKEN)]
    with pytest.raises(ValidationFailed) as refused:
        await accounts.create(taken, ACTOR)
    assert refused.value.failures == [Failure("email", MessageKey.EMAIL_TAKEN)]
    assert len(storage.users.rows) == 3 and storage.events == []


async def test_a_user_keeps_its_own_email_on_update(accounts: Accounts) -> None:
    same = draft(id=3, email="Ada@example.com", pwd="")
    assert await accounts.check_update(same, ACTOR) == []
    assert (await accounts.update(same, ACTOR)).email == "Ada@example.com"


async def test_a_malformed_email_is_not_looked_up(accounts: Accounts) -> None:
    assert await accounts.check_create(draft(email="not an email"), ACTOR) == [
        Failure("email", MessageKey.EMAIL_INVALID)
    ]


async def test_create_stores_the_hash_and_one_event(
    accounts: Accounts, sessions: Sessions, storage: FakeUserStorage
) -> None:
    user = await accounts.create(draft(active=True), ACTOR)
    assert storage.users.rows[user.id][1] == "fake:pw"
    assert [e.action_func for e in storage.events] == ["AfterCreateUser"]
    assert await sessions.login("grace@example.com", "pw")


async def test_update_of_a_missing_user_is_not_found_and_writes_nothing(
    accounts: Accounts, storage: FakeUserStorage
) -> None:
    with pytest.raises(NotFound):
        await accounts.update(draft(id=77), ACTOR)
    assert storage.events == [] and 77 not in storage.users.rows


# paging


async def test_pages_follow_each_other_through_the_page_token(
    accounts: Accounts, storage: FakeUserStorage
) -> None:
    for _ in range(4):
        await accounts.create(draft(email=f"g{len(storage.users.rows)}@example.com"), ACTOR)
    seen: list[int] = []
    token = ""
    for _ in range(10):
        query = query_from_proto(user_pb2.SearchParams(page_size=3, page_token=token))
        reply = users_to_proto(*await accounts.search(query, READER))
        seen += [u.id for u in reply.user]
        token = reply.next_page_token
        if not token:
            break
    assert seen == sorted(storage.users.rows) and len(seen) == 7


async def test_page_size_zero_is_the_maximum_and_beyond_it_is_capped(
    accounts: Accounts,
) -> None:
    assert query_from_proto(user_pb2.SearchParams()).limit == MAX_PAGE_SIZE
    assert query_from_proto(user_pb2.SearchParams(page_size=10_000)).limit == MAX_PAGE_SIZE
    query = query_from_proto(user_pb2.SearchParams(page_size=1))
    users, more = await accounts.search(query, READER)
    assert [u.id for u in users] == [1] and more


async def test_a_negative_page_size_is_invalid(accounts: Accounts) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await accounts.search(UserQuery(limit=-1), READER)
    assert refused.value.failures == [Failure("page_size", MessageKey.FIELD_OUT_OF_RANGE)]


# reads check their caller's standing in the read itself


@pytest.mark.parametrize(
    "caller",
    [
        Principal(user_id="2", role=Role.MEMBER),  # inactive
        Principal(user_id="99", role=Role.ADMIN),  # no such user (deleted)
    ],
)
async def test_reads_refuse_a_caller_who_may_no_longer_log_in(
    accounts: Accounts, caller: Principal
) -> None:
    for read in (
        accounts.get(1, caller),
        accounts.get(99, caller),
        accounts.search(UserQuery(limit=10), caller),
        # bad input too: the caller is refused before the input is judged
        accounts.get(0, caller),
        accounts.search(UserQuery(limit=-1), caller),
    ):
        with pytest.raises(Unauthenticated):
            await read


async def test_a_caller_who_may_log_in_reads(accounts: Accounts) -> None:
    assert (await accounts.get(3, READER)).email == "ADA@example.com"
    with pytest.raises(NotFound):
        await accounts.get(99, READER)
    with pytest.raises(ValidationFailed):
        await accounts.get(0, READER)
    users, more = await accounts.search(UserQuery(limit=10), READER)
    assert [u.id for u in users] == [1, 2, 3] and not more


# revocations: what ends a user's access tokens everywhere goes out with the change


@pytest.mark.parametrize(
    ("change", "revoked"),
    [
        ({"active": False}, True),
        ({"role": Role.ADMIN}, True),
        ({"valid_thru": datetime(2031, 1, 1, tzinfo=UTC)}, True),
        ({"firstname": "Augusta"}, False),
        ({"pwd": "another"}, False),
    ],
)
async def test_an_update_revokes_tokens_when_it_changes_what_they_stand_on(
    accounts: Accounts, storage: FakeUserStorage, change: dict[str, Any], revoked: bool
) -> None:
    before = await storage.users.get(1)
    assert before is not None
    same = draft(
        id=1,
        firstname=before.firstname,
        lastname=before.lastname,
        email=before.email,
        company=before.company,
        active=True,
        pwd="",
    )
    for field, value in change.items():
        setattr(same, field, value)
    await accounts.update(same, ACTOR)
    assert storage.revocations.rows == ({1: 1} if revoked else {})


async def test_a_delete_revokes_and_a_refused_one_does_not(
    accounts: Accounts, storage: FakeUserStorage
) -> None:
    with pytest.raises(FailedPrecondition):
        await accounts.delete(1, ACTOR)  # active
    assert storage.revocations.rows == {}
    await accounts.delete(2, ACTOR)
    assert storage.revocations.rows == {2: 1}


async def test_a_reused_refresh_token_revokes_its_users_access_tokens(
    accounts: Accounts, sessions: Sessions, storage: FakeUserStorage
) -> None:
    await accounts.create(draft(active=True, email="reuse@example.com"), ACTOR)
    first = await sessions.login("reuse@example.com", "pw")
    await sessions.refresh(first.refresh_token)
    assert storage.revocations.rows == {}
    with pytest.raises(Unauthenticated):
        await sessions.refresh(first.refresh_token)  # used already: copied
    [user_id] = storage.revocations.rows
    assert storage.revocations.rows == {user_id: 1}
