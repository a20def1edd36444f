"""Two user-service processes on one database: a user deactivated or deleted through one is
refused by the other on the very next call, its reads included (they check their caller in
their own query). A deactivation revokes the tokens issued before it: once active again, the
user signs in anew, and that token is served by both."""

from __future__ import annotations

import grpc

from global_utils.identity.principal import bearer_metadata
from tests.helpers import new_user
from user.proto import user_pb2, user_pb2_grpc

PASSWORD = "s3cret-pw"
CYCLES = 10


async def served(stub: user_pb2_grpc.UserSrvStub, user_id: int, md: object) -> bool:
    """True if both reads are served, False if both are refused as unauthenticated."""
    outcomes = []
    for call in (
        stub.GetUserById(user_pb2.SearchId(id=user_id), metadata=md),
        stub.GetUsers(user_pb2.SearchParams(id=user_id), metadata=md),
    ):
        try:
            await call
            outcomes.append(True)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAUTHENTICATED, exc
            outcomes.append(False)
    assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]


async def test_a_change_through_one_process_is_refused_by_the_other_at_once(
    user_env, start_process
) -> None:
    first = start_process("user.server", user_env)
    second = start_process("user.server", user_env)
    first.wait_for_line("user ready")
    second.wait_for_line("user ready")
    a_address, b_address = first.address, second.address
    async with (
        grpc.aio.insecure_channel(a_address) as a_channel,
        grpc.aio.insecure_channel(b_address) as b_channel,
    ):
        a, b = user_pb2_grpc.UserSrvStub(a_channel), user_pb2_grpc.UserSrvStub(b_channel)
        admin = bearer_metadata(
            (await a.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        )
        user = (await a.CreateUser(new_user(active=True, pwd=PASSWORD), metadata=admin)).user
        login = user_pb2.User(email=user.email, pwd=PASSWORD)
        for cycle in range(CYCLES):
            # changes through one, checks on the other, both ways round
            writer, checker = (a, b) if cycle % 2 == 0 else (b, a)
            mine = bearer_metadata((await writer.Auth(login)).token)
            assert await served(checker, user.id, mine), f"cycle {cycle}"
            user.active = False
            await writer.UpdateUser(user, metadata=admin)
            assert not await served(checker, user.id, mine), f"cycle {cycle}"
            user.active = True
            await writer.UpdateUser(user, metadata=admin)
            # the token of before the deactivation stays revoked
            assert not await served(checker, user.id, mine), f"cycle {cycle}"
        mine = bearer_metadata((await a.Auth(login)).token)
        assert await served(b, user.id, mine)
        user.active = False
        await a.UpdateUser(user, metadata=admin)
        await a.DeleteUser(user_pb2.SearchId(id=user.id), metadata=admin)
        assert not await served(b, user.id, mine)
    assert first.terminate() == 0 and second.terminate() == 0
