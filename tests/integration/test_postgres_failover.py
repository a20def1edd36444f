"""PostgreSQL fail-over on the client side: a DSN naming a primary and its streaming replica
with target_session_attrs=read-write. The primary crashes, the replica is promoted (PostgreSQL's
own tools, on loopback), and the user service writes again without a restart — its pool and
its outbox relay's listener both find the new primary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from devtools.databases import provision_databases, runtime_dsn
from devtools.stack import EmbeddedPostgres
from global_utils.identity.principal import bearer_metadata
from tests.helpers import eventually, new_user, serving
from user.proto import user_pb2, user_pb2_grpc
from user.server.bootstrap import build
from user.server.settings import UserSettings


@pytest.fixture
def primary_and_replica(stack_dir: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    """A durable primary with the project's schema, and a streaming replica of it."""
    primary = EmbeddedPostgres(stack_dir / "fo-primary", durable=True).start()
    replica: EmbeddedPostgres | None = None
    try:
        provision_databases(primary)
        replica = primary.start_replica(stack_dir / "fo-replica")
        yield primary, replica
    finally:
        primary.stop()
        if replica is not None:
            replica.stop()


async def test_writes_resume_on_the_promoted_replica_without_a_restart(
    primary_and_replica: tuple[EmbeddedPostgres, EmbeddedPostgres],
    user_settings_factory: Callable[..., UserSettings],
) -> None:
    primary, replica = primary_and_replica
    # the runtime role's URL with both servers in it
    one_server = runtime_dsn(primary, "user")
    dsn = (
        one_server.replace(f":{primary.port}/", f":{primary.port},127.0.0.1:{replica.port}/")
        + "?target_session_attrs=read-write"
    )
    host = build(user_settings_factory(postgres_connect=dsn))
    async with serving(host) as channel:
        stub = user_pb2_grpc.UserSrvStub(channel)
        token = (await stub.Auth(user_pb2.User(email="duck@mymail.com", pwd="1234"))).token
        md = bearer_metadata(token)
        before = await stub.CreateUser(new_user(), metadata=md)
        assert before.user.id

        primary.kill()
        crashed = time.monotonic()
        # only a read-only replica is left: a write is "try again", never sent to it
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateUser(new_user(), metadata=md, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        replica.promote()
        promoted = time.monotonic()
        answers: list[grpc.StatusCode] = []

        async def writes() -> bool:
            try:
                await stub.CreateUser(new_user(), metadata=md, timeout=5)
            except grpc.aio.AioRpcError as exc:
                answers.append(exc.code())
                return False
            answers.append(grpc.StatusCode.OK)
            return True

        await eventually(writes, timeout=60, what="a write accepted by the promoted replica")
        print(
            f"\nfail-over: first write {time.monotonic() - promoted:.1f} s after the promotion "
            f"({time.monotonic() - crashed:.1f} s after the crash); answers {answers}"
        )
        # in between, only "try again": never INTERNAL
        assert set(answers) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, answers

        # the write and its audit event are on the new primary, and the relay sends the event
        conn = await asyncpg.connect(replica.dsn("appuser"))
        try:
            assert not await conn.fetchval("SELECT pg_is_in_recovery()")

            async def relayed() -> bool:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM audit_outbox WHERE sentat IS NULL"
                )
                return pending == 0

            await eventually(relayed, timeout=60, what="the outbox relayed on the new primary")
        finally:
            await conn.close()
        assert host.ready.is_set()
