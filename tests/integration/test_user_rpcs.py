"""Every user RPC through a real gRPC channel, with each status it can return."""

from __future__ import annotations

from datetime import UTC, datetime

import bcrypt
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from devtools.stack import EmbeddedPostgres
from global_utils.runtime.timeutil import to_timestamp
from tests.helpers import new_user
from user.proto import user_pb2

Metadata = tuple[tuple[str, str], ...]


async def create(stub, auth: Metadata, **fields: object) -> user_pb2.User:
    return (await stub.CreateUser(new_user(**fields), metadata=auth)).user


async def test_get_user_by_id_returns_the_user_without_password(user_stub, auth) -> None:
    made = await create(user_stub, auth, firstname="Ada", lastname="Lovelace")
    got = await user_stub.GetUserById(user_pb2.SearchId(id=made.id), metadata=auth)
    assert (got.id, got.name, got.email) == (made.id, "Ada Lovelace", made.email)
    assert got.pwd == ""
    assert got.HasField("create_date") and got.HasField("update_date")


async def test_get_user_by_id_unknown_is_not_found(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.GetUserById(user_pb2.SearchId(id=123456789), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "123456789" in err.value.details()


async def test_get_users_without_filters_lists_seed_users(user_stub, auth) -> None:
    reply = await user_stub.GetUsers(user_pb2.SearchParams(), metadata=auth)
    emails = {u.email for u in reply.user}
    assert {"duck@mymail.com", "ant@mymail.com", "cow@mymail.com"} <= emails
    assert all(u.pwd == "" for u in reply.user)


async def test_get_users_filters_by_each_field(user_stub, auth) -> None:
    made = await create(user_stub, auth, firstname="Filter", lastname="Me", company="FilterCo")
    for params in (
        user_pb2.SearchParams(id=made.id),
        user_pb2.SearchParams(firstname="Filter", company="FilterCo"),
        user_pb2.SearchParams(lastname="Me", company="FilterCo"),
        user_pb2.SearchParams(email=made.email.upper()),
        user_pb2.SearchParams(company="FilterCo"),
    ):
        reply = await user_stub.GetUsers(params, metadata=auth)
        assert [u.id for u in reply.user] == [made.id], params


async def test_get_users_by_valid_date(user_stub, auth) -> None:
    past = datetime(1990, 6, 1, tzinfo=UTC)
    made = await create(
        user_stub,
        auth,
        company="DateCo",
        valid_from=to_timestamp(datetime(1990, 1, 1, tzinfo=UTC)),
        valid_thru=to_timestamp(datetime(1991, 1, 1, tzinfo=UTC)),
    )
    inside = await user_stub.GetUsers(
        user_pb2.SearchParams(company="DateCo", valid_date=to_timestamp(past)), metadata=auth
    )
    assert [u.id for u in inside.user] == [made.id]
    outside = await user_stub.GetUsers(
        user_pb2.SearchParams(company="DateCo", valid_date=to_timestamp(datetime.now(UTC))),
        metadata=auth,
    )
    assert list(outside.user) == []


async def test_get_users_pages_with_tokens(user_stub, auth) -> None:
    ids = [(await create(user_stub, auth, company="PageCo")).id for _ in range(5)]
    seen: list[int] = []
    token = ""
    while True:
        reply = await user_stub.GetUsers(
            user_pb2.SearchParams(company="PageCo", page_size=2, page_token=token), metadata=auth
        )
        seen += [u.id for u in reply.user]
        token = reply.next_page_token
        if not token:
            break
    assert seen == sorted(ids)


async def test_get_users_by_email_is_case_insensitive(user_stub, auth) -> None:
    reply = await user_stub.GetUsersByEmail(
        user_pb2.SearchString(value="DUCK@mymail.com"), metadata=auth
    )
    assert [u.name for u in reply.user] == ["Super Duck"]


async def test_create_user_stores_a_bcrypt_hash_never_returned(
    user_stub, auth, postgres: EmbeddedPostgres
) -> None:
    import asyncpg

    reply = await user_stub.CreateUser(new_user(pwd="my password"), metadata=auth)
    assert reply.affected_count == 1 and reply.user.id > 0 and reply.user.pwd == ""
    conn = await asyncpg.connect(postgres.dsn("appuser"))
    try:
        stored = await conn.fetchval("SELECT pwd FROM appuser WHERE id = $1", reply.user.id)
    finally:
        await conn.close()
    assert stored != "my password"
    assert bcrypt.checkpw(b"my password", stored.encode())


async def test_created_user_can_log_in(user_stub, auth) -> None:
    made = await create(user_stub, auth, pwd="letmein-123", active=True)  # may log in
    token = await user_stub.Auth(user_pb2.User(email=made.email, pwd="letmein-123"))
    checked = await user_stub.ValidateToken(user_pb2.Token(token=token.token))
    assert checked.valid and checked.e_uid == str(made.id)


async def test_create_user_reports_every_failure_with_bad_request_details(user_stub, auth) -> None:
    bad = user_pb2.User(
        firstname="",
        lastname="",
        email="not-an-email",
        valid_from=to_timestamp(datetime(2020, 1, 2, tzinfo=UTC)),
        valid_thru=to_timestamp(datetime(2020, 1, 1, tzinfo=UTC)),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.CreateUser(bad, metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None
    details = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(details)
    fields = {v.field for v in details.field_violations}
    assert fields == {"firstname", "lastname", "email", "pwd", "valid_thru"}
    for text in ("firstname is required", "must be after valid_from", "not a valid email"):
        assert text in err.value.details()


async def test_create_user_with_taken_email_is_invalid(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.CreateUser(new_user(email="Duck@MyMail.com"), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "already used" in err.value.details()


async def test_update_user_changes_fields_and_keeps_password_when_empty(user_stub, auth) -> None:
    made = await create(user_stub, auth, pwd="keep-me-1", active=True)  # may log in
    change = user_pb2.User()
    change.CopyFrom(made)
    change.lastname = "Renamed"
    change.pwd = ""
    reply = await user_stub.UpdateUser(change, metadata=auth)
    assert reply.user.name == "Test Renamed" and reply.affected_count == 1
    assert reply.user.update_date.ToDatetime() >= made.update_date.ToDatetime()
    await user_stub.Auth(user_pb2.User(email=made.email, pwd="keep-me-1"))


async def test_update_user_with_password_rehashes_it(user_stub, auth) -> None:
    made = await create(user_stub, auth, pwd="old-pass-1", active=True)  # may log in
    change = user_pb2.User()
    change.CopyFrom(made)
    change.pwd = "new-pass-2"
    await user_stub.UpdateUser(change, metadata=auth)
    await user_stub.Auth(user_pb2.User(email=made.email, pwd="new-pass-2"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.Auth(user_pb2.User(email=made.email, pwd="old-pass-1"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_update_unknown_user_is_not_found(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.UpdateUser(new_user(id=987654321), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_update_to_another_users_email_is_invalid(user_stub, auth) -> None:
    made = await create(user_stub, auth)
    change = user_pb2.User()
    change.CopyFrom(made)
    change.email = "ant@mymail.com"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.UpdateUser(change, metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_delete_active_user_is_failed_precondition(user_stub, auth) -> None:
    made = await create(user_stub, auth, active=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.DeleteUser(user_pb2.SearchId(id=made.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    still = await user_stub.GetUserById(user_pb2.SearchId(id=made.id), metadata=auth)
    assert still.id == made.id


async def test_delete_inactive_user_removes_it(user_stub, auth) -> None:
    made = await create(user_stub, auth, active=False)
    reply = await user_stub.DeleteUser(user_pb2.SearchId(id=made.id), metadata=auth)
    assert reply.affected_count == 1 and reply.user.id == made.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.GetUserById(user_pb2.SearchId(id=made.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_unknown_user_is_not_found(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.DeleteUser(user_pb2.SearchId(id=42), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_before_create_returns_failures_and_stores_nothing(user_stub, auth) -> None:
    draft = new_user(firstname="", company="DryRunCo")
    reply = await user_stub.BeforeCreateUser(draft, metadata=auth)
    assert list(reply.failure_desc) == ["firstname is required"]
    ok = await user_stub.BeforeCreateUser(new_user(company="DryRunCo"), metadata=auth)
    assert list(ok.failure_desc) == []
    found = await user_stub.GetUsers(user_pb2.SearchParams(company="DryRunCo"), metadata=auth)
    assert list(found.user) == []


async def test_before_update_checks_id_and_email(user_stub, auth) -> None:
    reply = await user_stub.BeforeUpdateUser(new_user(email="cow@mymail.com"), metadata=auth)
    assert "id is required" in reply.failure_desc
    assert any("already used" in text for text in reply.failure_desc)


async def test_before_delete_reports_active_and_missing_users(user_stub, auth) -> None:
    active = await create(user_stub, auth, active=True)
    inactive = await create(user_stub, auth, active=False)
    r1 = await user_stub.BeforeDeleteUser(user_pb2.User(id=active.id), metadata=auth)
    assert [f for f in r1.failure_desc if "active" in f]
    r2 = await user_stub.BeforeDeleteUser(user_pb2.User(id=inactive.id), metadata=auth)
    assert list(r2.failure_desc) == []
    r3 = await user_stub.BeforeDeleteUser(user_pb2.User(id=55), metadata=auth)
    assert [f for f in r3.failure_desc if "not found" in f]
    await user_stub.GetUserById(user_pb2.SearchId(id=inactive.id), metadata=auth)


async def test_auth_wrong_password_and_unknown_email_share_one_message(user_stub) -> None:
    messages = []
    for email, pwd in (("duck@mymail.com", "wrong"), ("nobody@mymail.com", "1234")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await user_stub.Auth(user_pb2.User(email=email, pwd=pwd))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        messages.append(err.value.details())
    assert messages[0] == messages[1] == "invalid email or password"


async def test_validate_token_accepts_good_and_rejects_bad(user_stub, duck_token) -> None:
    good = await user_stub.ValidateToken(user_pb2.Token(token=duck_token))
    assert good.valid and good.e_uid
    for bad in ("", "garbage", duck_token[:-3] + "abc"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await user_stub.ValidateToken(user_pb2.Token(token=bad))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
