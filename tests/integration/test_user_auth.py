"""Token requirements: every RPC but Auth, ValidateToken, RefreshToken and GetPublicKeys needs
one; both metadata styles work."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from user.proto import user_pb2

PROTECTED = {
    "GetUserById": user_pb2.SearchId(id=1),
    "GetUsers": user_pb2.SearchParams(),
    "GetUsersByEmail": user_pb2.SearchString(value="duck@mymail.com"),
    "CreateUser": user_pb2.User(),
    "UpdateUser": user_pb2.User(),
    "DeleteUser": user_pb2.SearchId(id=1),
    "BeforeCreateUser": user_pb2.User(),
    "BeforeUpdateUser": user_pb2.User(),
    "BeforeDeleteUser": user_pb2.User(),
}


def test_every_rpc_is_classified() -> None:
    methods = set(user_pb2.DESCRIPTOR.services_by_name["UserSrv"].methods_by_name)
    assert methods == set(PROTECTED) | {"Auth", "ValidateToken", "RefreshToken", "GetPublicKeys"}


@pytest.mark.parametrize("method", sorted(PROTECTED))
async def test_rpc_without_token_is_unauthenticated(user_stub, method: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(user_stub, method)(PROTECTED[method])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == "authentication token missing"


@pytest.mark.parametrize("method", sorted(PROTECTED))
async def test_rpc_with_bad_token_is_unauthenticated(user_stub, method: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(user_stub, method)(
            PROTECTED[method], metadata=(("authorization", "Bearer not.a.jwt"),)
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "metadata_for",
    [
        lambda t: (("authorization", f"Bearer {t}"),),
        lambda t: (("authorization", f"bearer {t}"),),
        lambda t: (("token", t),),
    ],
    ids=["authorization-bearer", "lowercase-bearer", "gotemp-token"],
)
async def test_token_accepted_in_either_metadata_style(user_stub, duck_token, metadata_for) -> None:
    reply = await user_stub.GetUsersByEmail(
        user_pb2.SearchString(value="duck@mymail.com"), metadata=metadata_for(duck_token)
    )
    assert [u.email for u in reply.user] == ["duck@mymail.com"]


async def test_auth_and_validate_token_need_no_token(user_stub) -> None:
    token = await user_stub.Auth(user_pb2.User(email="ant@mymail.com", pwd="1234"))
    assert token.valid and token.token
    checked = await user_stub.ValidateToken(user_pb2.Token(token=token.token))
    assert checked.valid


async def test_health_needs_no_token_and_reports_serving(user_channel) -> None:
    stub = health_pb2_grpc.HealthStub(user_channel)
    for service in ("", "user.UserSrv"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
