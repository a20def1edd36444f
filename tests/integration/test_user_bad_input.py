"""Hostile and malformed input gets INVALID_ARGUMENT with a clear message, never INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.helpers import new_user
from user.proto import user_pb2


async def assert_invalid(call, *texts: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    for text in texts:
        assert text in err.value.details()


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"firstname": "x" * 10_000}, "firstname must be at most 100 characters"),
        ({"lastname": "y" * 101}, "lastname must be at most 100 characters"),
        ({"company": "z" * 100_000}, "company must be at most 200 characters"),
        ({"email": "a" * 300 + "@x.com"}, "email must be at most 254 characters"),
        ({"pwd": "p" * 73}, "pwd must be at most 72 bytes"),
        ({"pwd": "é" * 37}, "pwd must be at most 72 bytes"),
        ({"firstname": "nul\x00byte"}, "firstname contains characters that are not allowed"),
        ({"valid_from": Timestamp(seconds=2**62)}, "valid_from is out of range"),
        ({"valid_thru": Timestamp(seconds=-(2**62))}, "valid_thru is out of range"),
        ({"valid_thru": Timestamp(seconds=10**9, nanos=-5)}, "valid_thru is out of range"),
    ],
)
async def test_create_rejects_bad_fields(user_stub, auth, fields, text) -> None:
    await assert_invalid(user_stub.CreateUser(new_user(**fields), metadata=auth), text)
    await assert_invalid(user_stub.UpdateUser(new_user(id=1, **fields), metadata=auth), text)


@pytest.mark.parametrize(
    "params",
    [
        user_pb2.SearchParams(id=-5),
        user_pb2.SearchParams(email="e" * 1000),
        user_pb2.SearchParams(firstname="\x00"),
        user_pb2.SearchParams(company="c\x01"),
        user_pb2.SearchParams(valid_date=Timestamp(seconds=2**60)),
        user_pb2.SearchParams(page_size=-1),
        user_pb2.SearchParams(page_token="!!not-a-token!!"),
        user_pb2.SearchParams(page_token="dXNlcjphYmM="),  # "user:abc"
    ],
)
async def test_search_rejects_garbage(user_stub, auth, params) -> None:
    await assert_invalid(user_stub.GetUsers(params, metadata=auth))


async def test_sql_looking_search_values_are_plain_data(user_stub, auth) -> None:
    reply = await user_stub.GetUsers(
        user_pb2.SearchParams(firstname="' OR 1=1 --", lastname="x'); DROP TABLE appuser; --"),
        metadata=auth,
    )
    assert list(reply.user) == []
    still = await user_stub.GetUsersByEmail(
        user_pb2.SearchString(value="duck@mymail.com"), metadata=auth
    )
    assert len(still.user) == 1


@pytest.mark.parametrize("user_id", [0, -1, -(2**63)])
async def test_non_positive_ids_are_invalid(user_stub, auth, user_id) -> None:
    await assert_invalid(user_stub.GetUserById(user_pb2.SearchId(id=user_id), metadata=auth), "id")
    await assert_invalid(user_stub.DeleteUser(user_pb2.SearchId(id=user_id), metadata=auth), "id")


async def test_huge_id_is_simply_not_found(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.GetUserById(user_pb2.SearchId(id=2**63 - 1), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_overlong_password_at_login_is_just_wrong_credentials(user_stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="x" * 10_000))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_garbage_login_email_is_wrong_credentials(user_stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.Auth(user_pb2.User(email="\x00" * 10 + "z" * 5000, pwd="1234"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_message_over_the_size_limit_is_refused_cleanly(user_stub, auth) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await user_stub.CreateUser(new_user(company="c" * (5 * 1024 * 1024)), metadata=auth)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reply = await user_stub.GetUsersByEmail(
        user_pb2.SearchString(value="ant@mymail.com"), metadata=auth
    )
    assert len(reply.user) == 1
