"""The failed-login throttle lives in PostgreSQL: two user-service processes share it."""

from __future__ import annotations

import uuid

import grpc

from user.proto import user_pb2, user_pb2_grpc


async def attempt(address: str, email: str, pwd: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await user_pb2_grpc.UserSrvStub(channel).Auth(user_pb2.User(email=email, pwd=pwd))
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_failures_on_two_processes_add_up(user_env, start_process) -> None:
    first = start_process("user.server", user_env)
    second = start_process("user.server", user_env)
    first.wait_for_line("user ready")
    second.wait_for_line("user ready")
    a, b = first.address, second.address
    email = f"shared-{uuid.uuid4().hex[:8]}@example.com"
    for address in (a, b, a, b, a):  # five failures, spread over both
        assert await attempt(address, email, "guess") == grpc.StatusCode.UNAUTHENTICATED
    assert await attempt(b, email, "guess") == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await attempt(a, email.upper(), "guess") == grpc.StatusCode.RESOURCE_EXHAUSTED
    # the seed admin, unaffected, still logs in on either
    assert await attempt(a, "duck@mymail.com", "1234") == grpc.StatusCode.OK
    assert await attempt(b, "duck@mymail.com", "1234") == grpc.StatusCode.OK
    assert first.terminate() == 0 and second.terminate() == 0
