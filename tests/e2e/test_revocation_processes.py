"""Whole processes: a user service, two promotion and two audit processes, which verify tokens
locally. A user deactivated, deleted or demoted through the user service has their earlier
token refused by all four (the REVOCATIONS bucket, followed by each), others' served."""

from __future__ import annotations

import asyncio
import time

import grpc

from audit.proto import audit_pb2, audit_pb2_grpc
from devtools.databases import service_db_env
from devtools.dev_secrets import AuditKeys, NatsKeys
from devtools.stack import EmbeddedPostgres
from global_utils.identity.principal import bearer_metadata
from promotion.proto import promotion_pb2, promotion_pb2_grpc
from tests.e2e.conftest import base_env
from tests.helpers import new_user
from user.proto import user_pb2, user_pb2_grpc

PASSWORD = "s3cret-pw"
# the guarantee is a second from the commit; a loaded test machine gets more room
REFUSED_WITHIN = 5.0


async def served(channel: grpc.aio.Channel, audit: bool, token: str) -> bool:
    md = bearer_metadata(token)
    try:
        if audit:
            await audit_pb2_grpc.AuditSrvStub(channel).GetAuditRecords(
                audit_pb2.SearchParams(page_size=1), metadata=md
            )
        else:
            await promotion_pb2_grpc.PromotionSrvStub(channel).GetPromotions(
                promotion_pb2.SearchParams(page_size=1), metadata=md
            )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() is grpc.StatusCode.UNAUTHENTICATED, exc
        return False
    return True


async def test_revoked_users_tokens_are_refused_by_every_process(
    user_env,
    promotion_env,
    postgres: EmbeddedPostgres,
    mdns_type: str,
    start_process,
    audit_keys: AuditKeys,
    nats_keys: NatsKeys,
) -> None:
    audit_env = base_env() | {
        "MDNS_SERVICE_TYPE": mdns_type,
        "MICRO_SERVER_ADDRESS": "127.0.0.1:0",
        **service_db_env(postgres, "audit"),
        "MICRO_BROKER_ADDRESS": user_env["MICRO_BROKER_ADDRESS"],
        **audit_keys.consumer_env(),
        **nats_keys.client_env("audit"),
    }
    user = start_process("user.server", user_env)
    verifiers = [
        (start_process("promotion.server", promotion_env), False),
        (start_process("promotion.server", promotion_env), False),
        (start_process("audit.server", audit_env), True),
        (start_process("audit.server", audit_env), True),
    ]
    user.wait_for_line("user ready")
    for process, audit in verifiers:
        process.wait_for_line("audit ready" if audit else "promotion ready")
    channels = [grpc.aio.insecure_channel(p.address) for p, _ in verifiers]
    try:
        async with grpc.aio.insecure_channel(user.address) as user_channel:
            users = user_pb2_grpc.UserSrvStub(user_channel)
            admin = bearer_metadata(
                (await users.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
            )

            async def sign_up(role: int) -> tuple[user_pb2.User, str]:
                made = await users.CreateUser(
                    new_user(active=True, pwd=PASSWORD, role=role), metadata=admin
                )
                login = await users.Auth(user_pb2.User(email=made.user.email, pwd=PASSWORD))
                return made.user, login.token

            async def everywhere(token: str) -> list[bool]:
                return [
                    await served(channel, audit, token)
                    for channel, (_, audit) in zip(channels, verifiers, strict=True)
                ]

            _, bystanders_token = await sign_up(user_pb2.ROLE_MEMBER)
            for kind in ("deactivated", "deleted", "demoted"):
                role = user_pb2.ROLE_ADMIN if kind == "demoted" else user_pb2.ROLE_MEMBER
                made, token = await sign_up(role)
                assert await everywhere(token) == [True] * 4, kind
                if kind == "demoted":
                    made.role = user_pb2.ROLE_MEMBER
                else:
                    made.active = False
                await users.UpdateUser(made, metadata=admin)
                if kind == "deleted":
                    await users.DeleteUser(user_pb2.SearchId(id=made.id), metadata=admin)
                deadline = time.monotonic() + REFUSED_WITHIN
                while (outcome := await everywhere(token)) != [False] * 4:
                    assert time.monotonic() < deadline, (kind, outcome)
                    await asyncio.sleep(0.02)
                assert await everywhere(bystanders_token) == [True] * 4, kind
    finally:
        for channel in channels:
            await channel.close()
    for process, _ in [(user, False), *verifiers]:
        assert process.terminate() == 0
